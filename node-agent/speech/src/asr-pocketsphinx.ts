// Grammar-constrained ASR with CMU pocketsphinx 0.8 (`pocketsphinx_continuous`). The generic
// language model is useless on synthetic or far-field speech; a JSGF grammar of the known
// commands is accurate and fast. One child per utterance, spawned at start() so its model
// load (~0.1 s) overlaps the speech; it decodes while audio streams in and prints one line
// per utterance, flushing the last one at EOF.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import type { Logger } from '@mirrormesh/broker'
import { EngineError, type AsrEngine, type AsrSession, type EngineHealth, type Transcript } from './types.js'
import { which } from './proc.js'
import { PocketsphinxProcess } from './pocketsphinx-process.js'
import { DEFAULT_HUB_MIN_MARGIN, hypothesisScore, judgeMargin, PhoneLoop, thresholdFor } from './second-opinion.js'
import type { SpawnFn } from './spawn-host.js'

export interface PocketsphinxOptions {
  grammarPath: string
  /** Executable name or path (default `pocketsphinx_continuous`). */
  bin?: string
  /** Holds `en-us/` (acoustic model) and `cmudict-en-us.dict` (Debian pocketsphinx-en-us layout). */
  modelDir?: string
  /**
   * Pronunciation dictionary. Default: the grammar's words with EXTRA_PRONUNCIATIONS, written
   * next to the grammar as `<grammarPath>.dict` (the model's cmudict when that fails).
   */
  dictPath?: string
  /** Limit from finish() to the transcript (default 10 s). */
  timeoutMs?: number
  log: Logger
  /** How to start the decoder (default child_process.spawn; the hub passes SpawnHost.spawn). */
  spawn?: SpawnFn
  /**
   * Check every grammar result against a phone loop (second-opinion.ts) and return '' with
   * `rejected` when the margin per frame is below minMargin (default DEFAULT_HUB_MIN_MARGIN), or
   * below actionMinMargin for a phrase that `acts` (changes something). false turns the check off.
   */
  secondOpinion?: { minMargin?: number; actionMinMargin?: number; acts?: (phrase: string) => boolean; openVocabulary?: boolean } | false
}

const DEFAULT_MODEL_DIR = '/usr/share/pocketsphinx/model/en-us'

/**
 * Beams for the skill grammar. With the many-wordings grammar (~1900 phrases) the defaults
 * (1e-48 / 1e-48 / 7e-29) lost the only path on some utterances ("Final result does not match
 * the grammar": no transcript at all); these wider ones did not, on the accuracy set.
 */
export const GRAMMAR_BEAMS = ['-beam', '1e-60', '-pbeam', '1e-60', '-wbeam', '1e-40'] as const

export interface JsgfOptions {
  /** Known words (see readDictionaryWords); phrases with other words are left out. */
  dictionary?: ReadonlySet<string>
  onDropped?: (phrase: string, unknownWords: string[]) => void
}

/**
 * A JSGF grammar accepting exactly one of `phrases`. Words are lowercased and reduced to
 * letters and inner apostrophes (what the CMU dictionary holds). A word missing from the
 * dictionary makes pocketsphinx exit at once, so pass `dictionary` to drop such phrases.
 */
export function jsgfFromPhrases(phrases: string[], opts: JsgfOptions = {}): string {
  const alts = new Set<string>()
  for (const phrase of phrases) {
    const words = phrase.normalize('NFKD').toLowerCase()
      .replace(/[^a-z']+/g, ' ')
      .split(' ')
      .map((w) => w.replace(/^'+|'+$/g, ''))
      .filter(Boolean)
    const unknown = opts.dictionary ? words.filter((w) => !opts.dictionary!.has(w)) : []
    if (unknown.length > 0) opts.onDropped?.(phrase, unknown)
    else if (words.length > 0) alts.add(words.join(' '))
  }
  if (alts.size === 0) throw new RangeError('jsgfFromPhrases: no usable phrase')
  const list = [...alts]
  return `#JSGF V1.0;\ngrammar mm;\npublic <cmd> = ${list.length > TRIE_ABOVE ? trieRule(list) : list.join(' | ')} ;\n`
}

/**
 * Above this many phrases the grammar is written as a prefix tree: a flat list of the ~1900
 * generated sentences decoded too slowly (past the 10 s limit under load) or lost its path.
 * Small grammars stay flat, as they were.
 */
const TRIE_ABOVE = 300

interface TrieNode { end: boolean; next: Map<string, TrieNode> }

/**
 * The phrases as one JSGF expression sharing their common prefixes ("turn (on the (kitchen ...
 * | hall ...) | off ...)"). A flat list of ~2000 phrases makes pocketsphinx's FSG so wide that
 * its beam loses the path ("Final result does not match the grammar"); the prefix tree accepts
 * exactly the same phrases with a fraction of the states.
 */
function trieRule(phrases: string[]): string {
  const root: TrieNode = { end: false, next: new Map() }
  for (const p of phrases) {
    let n = root
    for (const w of p.split(' ')) {
      let c = n.next.get(w)
      if (!c) n.next.set(w, (c = { end: false, next: new Map() }))
      n = c
    }
    n.end = true
  }
  // A word that ends a phrase and also continues is written twice ("it | it ( now | right now )"),
  // not as an optional tail: `[ … ]` becomes a null transition in the FSG, and with it a pause
  // after "what time is it" decoded as "what time is it now" with "now" squeezed in.
  const body = (n: TrieNode): string => {
    const branches = [...n.next].flatMap(([w, c]) => (!c.next.size ? [w] : c.end ? [w, `${w} ${body(c)}`] : [`${w} ${body(c)}`]))
    return branches.length === 1 ? branches[0]! : `( ${branches.join(' | ')} )`
  }
  return body(root)
}

/**
 * Pronunciations the skill words need that cmudict lacks. cmudict has "off" only as AO F, while
 * "on" is AA N or AO N: a speaker who says "off" with the vowel of "on" (the cot-caught merger of
 * most North American English; espeak-ng's en-us voice) had "turn off the bedroom light" decoded
 * as "turn on …", the opposite action, with a margin the second opinion trusted.
 */
export const EXTRA_PRONUNCIATIONS: Readonly<Record<string, readonly string[]>> = { off: ['AA F'] }

/**
 * A dictionary holding only `words`: their lines from `source` plus EXTRA_PRONUNCIATIONS as
 * further variants ("off(2) AA F"). Smaller is also faster: pocketsphinx loads ~30 ms instead of ~150 ms.
 */
export function grammarDictionary(words: ReadonlySet<string>, source = path.join(DEFAULT_MODEL_DIR, 'cmudict-en-us.dict')): string {
  const keep: string[] = []
  const count = new Map<string, number>()
  for (const line of readFileSync(source, 'utf8').split('\n')) {
    const word = line.slice(0, line.indexOf(' ')).replace(/\(\d+\)$/, '')
    if (!word || !words.has(word)) continue
    keep.push(line)
    count.set(word, (count.get(word) ?? 0) + 1)
  }
  for (const [word, prons] of Object.entries(EXTRA_PRONUNCIATIONS)) {
    if (!count.has(word)) continue // not in the grammar
    let n = count.get(word)!
    for (const p of prons) keep.push(`${word}(${++n}) ${p}`)
  }
  return `${keep.join('\n')}\n`
}

/** The words a JSGF grammar (as jsgfFromPhrases writes it) uses. */
export function jsgfWords(jsgf: string): Set<string> {
  const body = jsgf.slice(jsgf.indexOf('=') + 1)
  return new Set(body.split(/[\s()|;[\]]+/).filter((w) => /^[a-z']+$/.test(w)))
}

/** The words of a pocketsphinx dictionary (default: the Debian en-us one; ~126k words, ~100 ms). */
export function readDictionaryWords(dictPath = path.join(DEFAULT_MODEL_DIR, 'cmudict-en-us.dict')): Set<string> {
  const words = new Set<string>()
  for (const line of readFileSync(dictPath, 'utf8').split('\n')) {
    const word = line.slice(0, line.indexOf(' ')).replace(/\(\d+\)$/, '')
    if (word) words.add(word)
  }
  return words
}

export class PocketsphinxAsr implements AsrEngine {
  readonly name = 'pocketsphinx'
  /** Why health() is 'down' as a short code (not_installed, model_missing, grammar_missing); `downDetail` says more. */
  readonly downReason: string | undefined
  readonly downDetail: string | undefined
  private readonly bin: string | undefined
  private readonly args: string[]
  private readonly openArgs: string[]
  private readonly dictPath: string

  constructor(private readonly opts: PocketsphinxOptions) {
    this.bin = which(opts.bin ?? 'pocketsphinx_continuous')
    const modelDir = opts.modelDir ?? DEFAULT_MODEL_DIR
    const hmm = path.join(modelDir, 'en-us')
    const cmudict = path.join(modelDir, 'cmudict-en-us.dict')
    const dict = opts.dictPath ?? writeDictionaryFor(opts.grammarPath, cmudict, opts.log) ?? cmudict
    this.dictPath = dict
    // -backtrace: the hypothesis line with its path score, which the second opinion compares.
    this.args = ['-infile', '/dev/stdin', '-jsgf', opts.grammarPath, '-hmm', hmm, '-dict', dict, ...GRAMMAR_BEAMS, ...(opts.secondOpinion ? ['-backtrace', 'yes'] : [])]
    this.openArgs = ['-infile', '/dev/stdin', '-lm', path.join(modelDir, 'en-us.lm.bin'), '-hmm', hmm, '-dict', cmudict]
    const down = !this.bin ? ['not_installed', `${opts.bin ?? 'pocketsphinx_continuous'} not found`]
      : !existsSync(hmm) || !existsSync(cmudict) ? ['model_missing', `pocketsphinx model missing in ${modelDir}`]
      : !existsSync(opts.grammarPath) ? ['grammar_missing', `grammar not found: ${opts.grammarPath}`]
      : undefined
    this.downReason = down?.[0]
    this.downDetail = down?.[1]
    if (down) opts.log.warn({ engine: this.name, reason: this.downReason, err: this.downDetail }, 'asr engine unavailable')
  }

  health(): EngineHealth {
    return this.downReason ? 'down' : 'ok'
  }

  start(signal: AbortSignal): AsrSession | PocketsphinxSession {
    if (!this.bin || this.downReason) {
      const err = new EngineError(this.downReason ?? 'not_installed', `pocketsphinx: ${this.downDetail ?? 'unavailable'}`)
      return { write: () => {}, finish: () => Promise.reject(err) }
    }
    const so = this.opts.secondOpinion
    const spawnOpt = this.opts.spawn ? { spawn: this.opts.spawn } : {}
    const proc = new PocketsphinxProcess({ bin: this.bin, args: this.args, signal, timeoutMs: this.opts.timeoutMs ?? 10_000, keepLog: !!so, ...spawnOpt })
    const loop = so ? new PhoneLoop({ bin: this.bin, ...(this.opts.modelDir ? { modelDir: this.opts.modelDir } : {}), dictPath: this.dictPath, signal, ...spawnOpt }) : undefined
    // An untrusted grammar result is decoded again with the general en-us LM: that open
    // transcript goes to the LLM (never to a skill); ~1-2 s, only for out-of-skill speech.
    const open = so && so.openVocabulary ? (): PocketsphinxProcess => new PocketsphinxProcess({ bin: this.bin!, args: this.openArgs, signal, timeoutMs: this.opts.timeoutMs ?? 10_000, ...spawnOpt }) : undefined
    const threshold = so ? thresholdFor(so.minMargin ?? DEFAULT_HUB_MIN_MARGIN, so.actionMinMargin, so.acts) : () => 0
    return new PocketsphinxSession(proc, this.opts.log, loop, threshold, open)
  }
}

/** Writes `<grammarPath>.dict` (grammarDictionary) and returns its path; undefined when it cannot. */
function writeDictionaryFor(grammarPath: string, cmudict: string, log: Logger): string | undefined {
  if (!existsSync(grammarPath) || !existsSync(cmudict)) return undefined
  const file = `${grammarPath}.dict`
  try {
    writeFileSync(`${file}.tmp`, grammarDictionary(jsgfWords(readFileSync(grammarPath, 'utf8')), cmudict))
    renameSync(`${file}.tmp`, file)
    return file
  } catch (err) {
    log.warn({ engine: 'pocketsphinx', err: (err as Error).message }, 'grammar dictionary not written; using the full one')
    return undefined
  }
}

/** An ASR session on one decoder process: its stdout lines joined are the transcript. */
export class PocketsphinxSession implements AsrSession {
  private finishing: Promise<Transcript> | undefined

  /** The utterance, kept only when an open-vocabulary decode may need it and none has started. */
  private readonly audio: Int16Array[] = []
  /** The open-vocabulary decoder once started (expectUntrusted, or an untrusted result). */
  private openProc: PocketsphinxProcess | undefined

  constructor(private readonly proc: PocketsphinxProcess, private readonly log: Logger,
    private readonly loop?: PhoneLoop, private readonly threshold: (phrase: string) => number = () => 0, private readonly open?: () => PocketsphinxProcess) {}

  /** Process group of the decoder (sh, cat, pocketsphinx). */
  get pid(): number | undefined {
    return this.proc.pid
  }

  write(pcm: Int16Array): void {
    this.proc.write(pcm)
    this.loop?.write(pcm)
    if (this.openProc) this.openProc.write(pcm)
    else if (this.open) this.audio.push(pcm.slice())
  }

  /**
   * Starts the open-vocabulary decode now and streams the rest of the utterance to it. Without
   * the hint it starts at an untrusted result, after the turn has ended, and its model load
   * (~0.3 s: the full dictionary and the en-us LM) and decode (~0.2 s CPU per second of speech)
   * delayed every refused turn's "Sorry, I can't answer that yet" by both.
   */
  expectUntrusted(): void {
    if (!this.finishing) this.startOpen()
  }

  private startOpen(): PocketsphinxProcess | undefined {
    if (!this.open || this.openProc) return this.openProc
    this.openProc = this.open()
    for (const a of this.audio.splice(0)) this.openProc.write(a)
    return this.openProc
  }

  finish(): Promise<Transcript> {
    if (this.finishing) return this.finishing
    const started = performance.now()
    const loopScore = this.loop?.score()
    this.finishing = this.proc.finish().then(async ({ lines, log }) => {
      const text = lines.join(' ')
      if (!this.loop || !text) {
        this.loop?.kill()
        this.openProc?.kill()
        this.log.debug({ engine: 'pocketsphinx', ms: Math.round(performance.now() - started) }, 'asr finished')
        return { text }
      }
      const minMargin = this.threshold(text)
      const v = judgeMargin(hypothesisScore(log ?? ''), await loopScore, this.loop.sampleCount, minMargin)
      this.log.debug({ engine: 'pocketsphinx', ms: Math.round(performance.now() - started), margin: v.margin, minMargin, trusted: v.trusted }, 'asr finished')
      const margin = v.margin !== undefined ? { margin: v.margin } : {}
      if (v.trusted) {
        this.openProc?.kill()
        return { text, ...margin }
      }
      return { text: await this.openText(), rejected: 'second_opinion', heard: text, ...margin }
    }, (err: unknown) => {
      this.loop?.kill()
      this.openProc?.kill()
      throw err
    })
    return this.finishing
  }

  /** The open-vocabulary transcript of the utterance ('' without one, or when it fails). */
  private async openText(): Promise<string> {
    const p = this.startOpen()
    if (!p) return ''
    try {
      return (await p.finish()).lines.join(' ')
    } catch (err) {
      this.log.warn({ engine: 'pocketsphinx', err: (err as Error).message }, 'open-vocabulary decode failed')
      return ''
    }
  }
}
