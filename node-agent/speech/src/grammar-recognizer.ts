// Grammar recognition with a confidence verdict and an early endpoint, shared by the node's
// offline mode (the bundle's grammar) and the hub's online early end of turn (the skills'
// grammar, hub/src/pipeline/listen.ts): one set of criteria on both sides.
// Pocketsphinx 0.8 with a grammar either prints an in-grammar phrase or nothing, and
// its word posteriors (`-time yes`, `pprob` in the backtrace) are always 1.000 with a JSGF
// search (a one-path lattice), so they say nothing. What we check instead, cheaply:
//   - empty output                  → 'empty' (no grammar path: most out-of-grammar speech, noise)
//   - more than one utterance       → 'multiple'
//   - little audio above the noise  → 'too_short' / 'too_quiet'
//   - coverage: the decoder's word alignment (`-backtrace yes`, 10 ms frames) against the speech
//     we measured. Out-of-grammar speech forced onto a phrase leaves most of the speech in
//     <sil> segments ("what is the weather like tomorrow" → "what day is it" aligned over
//     0.4 s of 1.4 s of speech) → 'uncovered_speech'. Without a backtrace, a syllable-count
//     estimate of the phrase's length stands in → 'duration_mismatch'.
// The decoder process is PocketsphinxProcess (shared with PocketsphinxAsr), with its stderr
// log kept, because the backtrace is in it.
//
// Early endpoint (offline replies within ~150 ms of the end of speech): the listener ends an
// utterance only after VAD_END_SILENCE_MS of silence plus Silero's own lag (~0.5 s in all).
// Offline phrases are short closed-set commands, so two decoders stream the same audio and,
// once it has been quiet for `endpointSilenceMs` (default 100 ms; level 30 dB under the
// utterance's peak), one of them is ended (the probe): pocketsphinx then gives its final
// hypothesis for the audio so far in 10-30 ms. After 100 ms of quiet that hypothesis was the
// one the VAD's end gets for 174 of 175 synthesized commands and all 75 non-commands (after
// 80 ms, 4 differed: hence not less). It is used (onEndpoint) only when it passes the usual
// confidence checks AND looks whole: a phrase cut short by a pause ("volume …", "switch on the
// kitchen …") gets forced onto the nearest grammar phrase with the missing words squeezed to
// the decoder's floor of 3 frames (30 ms) per phone, so every word must be above that floor and
// the last one at ≥ 5 frames per phone (phrase-final lengthening). Nor may speech have resumed
// while the probe decoded. After a rejected probe the other decoder goes on and a new one is fed
// everything so far, for the same pause once it has lasted `endpointRetrySilenceMs` (200 ms) and
// for the next pause (at most `maxProbes`, and only while the utterance is
// short enough to be a command). Without an early endpoint, finish() ends a decoder that heard
// the whole utterance: exactly the old path. Cost: a second pocketsphinx (~6 % of a core while
// speech streams; with the grammar-only dictionary it starts in ~30 ms with ~16 MB), and with the
// second opinion a second phone loop (~5 % of a core).
import { readFileSync } from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import type { Logger } from '@mirrormesh/broker'
import { EngineError } from './types.js'
import { EXTRA_PRONUNCIATIONS, GRAMMAR_BEAMS, PocketsphinxAsr, type PocketsphinxOptions } from './asr-pocketsphinx.js'
import { DEFAULT_MIN_MARGIN, hypothesisScore, judgeMargin, PhoneLoop, thresholdFor } from './second-opinion.js'
import { PocketsphinxProcess } from './pocketsphinx-process.js'
import { which } from './proc.js'

export type UnconfidentReason = 'empty' | 'multiple' | 'too_quiet' | 'too_short' | 'uncovered_speech' | 'duration_mismatch' | 'second_opinion'

export interface AlignedWord {
  word: string
  /** 10 ms frames, inclusive. */
  start: number
  end: number
}

export interface Recognition {
  /** The recognized grammar phrase ('' when none; utterances joined by a space if several). */
  text: string
  confident: boolean
  reason?: UnconfidentReason
  /** Audio above the speech threshold, ms. */
  speechMs: number
  /** Peak 20 ms frame level, dBFS. */
  peakDbfs: number
  /** ms the decoder aligned to words (not <sil>/fillers); null without a backtrace. */
  wordMs: number | null
  /** wordMs / speechMs, or the syllable estimate / speechMs without a backtrace; NaN when text is empty. */
  coverage: number
  /** From the end of audio (finish, or the start of the early probe) to the result, ms. */
  latencyMs: number
  /** True when an early endpoint produced it (see onEndpoint), before the listener's end of utterance. */
  early?: boolean
  /** Second-opinion margin per frame (grammar vs phone loop, @mirrormesh/speech second-opinion.ts). */
  margin?: number
  /** The second opinion's own verdict (another reason may have refused the phrase first); unset when it did not run. */
  trusted?: boolean
}

export interface OfflineRecognizerOptions extends Omit<PocketsphinxOptions, 'log'> {
  log: Logger
  /** Less speech than this is unconfident (default 200 ms). */
  minSpeechMs?: number
  /** A peak frame quieter than this is unconfident (default -45 dBFS). */
  minPeakDbfs?: number
  /** Frames within this many dB of the peak (and above the floor) count as speech (default 30). */
  speechRangeDb?: number
  /** Least share of the speech the phrase's words must cover (default 0.6). */
  minCoverage?: number
  /** Most (default 1.8): the words cannot stretch much beyond the measured speech. */
  maxCoverage?: number
  /** Pronunciation dictionary (default the model's cmudict); see writeGrammarDictionary. */
  dictPath?: string
  /** Quiet after speech that triggers an early-endpoint probe, ms (default 100); 0 turns early endpoints off. */
  endpointSilenceMs?: number
  /**
   * After a probe that found no whole phrase, one more at the same pause once it has been quiet
   * this long, ms (default 200; 0, or not above endpointSilenceMs: none). At 100 ms the decoder often still forces one more word
   * into the quiet ("what is the date" → "what is the date today" with "today" squeezed); 100 ms
   * later it no longer does, and the turn ends there instead of at the VAD's end (~600 ms).
   */
  endpointRetrySilenceMs?: number
  /** Probes per utterance (default 3). */
  maxProbes?: number
  /** No probe once the utterance is longer than this, ms (default 5000): no command is that long. */
  maxProbeAudioMs?: number
  /**
   * The hub's second opinion: a phone loop decodes the same audio and a grammar phrase whose
   * margin per frame is below minMargin (actionMinMargin for a phrase that `acts`: changes
   * something) is unconfident ('second_opinion'). Default on; false: off.
   */
  secondOpinion?: { minMargin?: number; actionMinMargin?: number; acts?: (phrase: string) => boolean } | false
}

export interface SessionHooks {
  /**
   * A confident, complete-looking grammar phrase followed by `endpointSilenceMs` of quiet.
   * Return true when the utterance is being ended for it (finish() then resolves with `r`);
   * false to keep listening (the session probes again at the next pause).
   */
  onEndpoint?: (r: Recognition) => boolean
  /** Audio heard before this utterance that belongs to it (speech resumed after an early answer); not probed again. */
  prefix?: Int16Array[]
  /** Every probe's verdict, whether or not it ends the utterance (the hub starts its open-vocabulary decode on a distrusted one). */
  onProbe?: (r: Recognition) => void
}

const FRAME = 320 // 20 ms at 16 kHz
/**
 * Frames under this are never speech. It was -55: for a speaker ~18 dB quieter than the set's
 * clean voices (peak ~ -27 dBFS, a few metres from the mic) it sat above peak - 30 dB, so the
 * weak sounds inside words ("th" of "three") and a breath before "please" read as quiet, and
 * the early end fired mid-sentence (7 of 189 quiet utterances cut off; -65: 1).
 */
export const SPEECH_FLOOR_DBFS = -65
const DEFAULT_MODEL_DIR = '/usr/share/pocketsphinx/model/en-us'
/** The decoder's floor: 3 10-ms frames per phone (3-state HMMs); a word at it was squeezed in. */
const FLOOR_FRAMES_PER_PHONE = 3
/** The phrase's last word needs this many frames per phone (phrase-final lengthening). */
const MIN_LAST_FRAMES_PER_PHONE = 5

/** Rough syllable count: vowel groups per word, at least one per word. */
export function syllables(text: string): number {
  return text.toLowerCase().split(/\s+/).filter(Boolean)
    .reduce((n, w) => n + Math.max(1, (w.replace(/e$/, '').match(/[aeiouy]+/g) ?? []).length), 0)
}

/** Per-frame levels of an utterance, accumulated as audio streams in. */
export class LevelMeter {
  private readonly frames: number[] = []
  private acc = 0
  private n = 0
  private peak = -120
  /** Consecutive quiet frames at the end (quieter than peak - rangeDb and the floor). */
  private quiet = 0
  /** Loud (speech) frames so far. */
  loudFrames = 0

  constructor(private readonly rangeDb = 30) {}

  push(pcm: Int16Array): void {
    for (let i = 0; i < pcm.length; i++) {
      const s = pcm[i]!
      this.acc += s * s
      if (++this.n === FRAME) {
        const f = this.db(this.acc / FRAME)
        this.frames.push(f)
        this.peak = Math.max(this.peak, f)
        if (f < Math.max(this.peak - this.rangeDb, SPEECH_FLOOR_DBFS)) this.quiet++
        else {
          this.quiet = 0
          this.loudFrames++
        }
        this.acc = 0
        this.n = 0
      }
    }
  }

  /** ms of quiet at the end of what was pushed (whole 20 ms frames). */
  get trailingQuietMs(): number {
    return this.quiet * 20
  }

  /** ms pushed (whole frames). */
  get ms(): number {
    return this.frames.length * 20
  }

  private db(meanSquare: number): number {
    return meanSquare > 0 ? 10 * Math.log10(meanSquare / (32768 * 32768)) : -120
  }

  /** Peak frame level and the ms of frames within `rangeDb` of it (and above the floor). */
  summary(rangeDb: number): { peakDbfs: number; speechMs: number } {
    const frames = this.n > FRAME / 4 ? [...this.frames, this.db(this.acc / this.n)] : this.frames
    const peak = frames.reduce((m, f) => Math.max(m, f), -120)
    const thr = Math.max(peak - rangeDb, SPEECH_FLOOR_DBFS)
    return { peakDbfs: peak, speechMs: frames.filter((f) => f >= thr).length * 20 }
  }
}

export interface RecognitionSession {
  write(pcm: Int16Array): void
  finish(): Promise<Recognition>
  /** Stop every decoder now; no result is wanted (the hub's detector once its turn has ended another way). */
  kill(): void
}

/** Phones per dictionary entry ("today(2)" → 4) for the words in `words`; entries of other words skipped. */
export function phoneCounts(dictText: string, words: ReadonlySet<string>): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of dictText.split('\n')) {
    const parts = line.trim().split(/\s+/)
    const entry = parts[0]
    if (entry && parts.length > 1 && words.has(entry.replace(/\(\d+\)$/, ''))) out.set(entry, parts.length - 1)
  }
  return out
}

/** The words of a JSGF grammar written by jsgfFromPhrases. */
export function grammarWords(jsgf: string): Set<string> {
  return new Set(jsgf.replace(/^[\s\S]*?public <cmd> =/, '').match(/[a-z']+/g) ?? [])
}

/**
 * Writes a dictionary holding only the grammar's words (all their pronunciations) to `file`.
 * pocketsphinx then starts in ~30 ms with ~16 MB instead of ~150 ms and ~38 MB (the full
 * cmudict has 135k words); decoding is the same, the grammar never uses other words.
 */
export async function writeGrammarDictionary(phrases: string[], file: string, source = path.join(DEFAULT_MODEL_DIR, 'cmudict-en-us.dict')): Promise<void> {
  const words = new Set(phrases.flatMap((p) => p.split(' ')))
  const text = await fs.readFile(source, 'utf8')
  const keep: string[] = []
  const variants = new Map<string, number>()
  // Line by line without splitting the 3 MB text into 135k strings (the agent's memory peak).
  for (let i = 0; i < text.length;) {
    const nl = text.indexOf('\n', i)
    const end = nl < 0 ? text.length : nl
    const sp = text.indexOf(' ', i)
    const word = sp > i && sp < end ? text.slice(i, sp).replace(/\(\d+\)$/, '') : ''
    if (word && words.has(word)) { keep.push(text.slice(i, end)); variants.set(word, (variants.get(word) ?? 0) + 1) }
    i = end + 1
  }
  // The same extra variants as the hub's grammar ("off" also as AA F, else heard as "on").
  for (const [word, prons] of Object.entries(EXTRA_PRONUNCIATIONS)) {
    let n = variants.get(word)
    if (n === undefined) continue
    for (const p of prons) keep.push(`${word}(${++n}) ${p}`)
  }
  const tmp = `${file}.tmp`
  try {
    await fs.writeFile(tmp, `${keep.join('\n')}\n`)
    await fs.rename(tmp, file)
  } catch (err) {
    await fs.rm(tmp, { force: true }).catch(() => undefined) // no partial file left taking space (disk full)
    throw err
  }
}

/**
 * Why an alignment does not look like a whole phrase (see the header), or undefined. Words
 * without a known phone count make it incomplete: no early answer without the check.
 */
export function squeezedWord(words: AlignedWord[], phones: ReadonlyMap<string, number>): string | undefined {
  const ws = words.filter((w) => !isFiller(w.word))
  if (!ws.length) return '(no words)'
  for (let i = 0; i < ws.length; i++) {
    const w = ws[i]!
    const p = phones.get(w.word)
    if (!p) return w.word
    const frames = w.end - w.start + 1
    if (frames <= FLOOR_FRAMES_PER_PHONE * p || (i === ws.length - 1 && frames < MIN_LAST_FRAMES_PER_PHONE * p)) return `${w.word}:${frames}`
  }
  return undefined
}

interface Decoded {
  lines: string[]
  words: AlignedWord[] | null
  score?: number | undefined
  /** The phone loop's score for the same audio (second opinion), and how much audio both heard. */
  loopScore?: number | undefined
  samples: number
}

const BT_ROW = /^(\S+)\s+(\d+)\s+(\d+)\s+[\d.]+\s+-?\d+\s+-?\d+\s+\d+\s*$/

/** Word rows of the `-backtrace yes` tables in pocketsphinx's log (all utterances); null if none. */
export function parseBacktrace(log: string): AlignedWord[] | null {
  let seen = false
  const words: AlignedWord[] = []
  for (const line of log.split('\n')) {
    if (/^word\s+start\s+end\s+pprob/.test(line)) {
      seen = true
      continue
    }
    const m = seen ? BT_ROW.exec(line) : null
    if (m) words.push({ word: m[1]!, start: Number(m[2]), end: Number(m[3]) })
  }
  return seen ? words : null
}

const isFiller = (w: string): boolean => w.startsWith('<') || w.startsWith('++') || w.startsWith('[')

/**
 * One decoder for one utterance, keeping its log for the backtrace, with the second opinion's
 * phone loop (when on) hearing exactly the same audio: wherever a decoder is handed over (active,
 * standby, probe) its loop goes with it.
 */
class DecoderSession {
  private samples = 0

  constructor(private readonly proc: PocketsphinxProcess, private readonly loop?: PhoneLoop) {}

  write(pcm: Int16Array): void {
    this.samples += pcm.length
    this.proc.write(pcm)
    this.loop?.write(pcm)
  }

  finish(): Promise<Decoded> {
    return Promise.all([this.proc.finish(), this.loop?.score()]).then(([{ lines, log }, loopScore]) =>
      ({ lines, words: parseBacktrace(log ?? ''), score: hypothesisScore(log ?? ''), loopScore, samples: this.samples }))
  }

  /** Stop the decoder and its loop; their results are no longer wanted. */
  kill(): void {
    this.proc.kill()
    this.loop?.kill()
  }
}

export class OfflineRecognizer {
  /** Used for its health check (binary, model, grammar present). */
  readonly asr: PocketsphinxAsr
  private readonly bin: string | undefined
  private readonly args: string[]
  /** Phones per dictionary entry of the grammar's words; empty (no early endpoints) if unreadable. */
  private readonly phones: Map<string, number>

  constructor(private readonly opts: OfflineRecognizerOptions) {
    this.asr = new PocketsphinxAsr(opts)
    this.bin = which(opts.bin ?? 'pocketsphinx_continuous')
    const modelDir = opts.modelDir ?? DEFAULT_MODEL_DIR
    const dict = opts.dictPath ?? path.join(modelDir, 'cmudict-en-us.dict')
    this.args = ['-infile', '/dev/stdin', '-jsgf', opts.grammarPath, '-hmm', path.join(modelDir, 'en-us'),
      '-dict', dict, ...GRAMMAR_BEAMS, '-backtrace', 'yes']
    try {
      this.phones = phoneCounts(readFileSync(dict, 'utf8'), grammarWords(readFileSync(opts.grammarPath, 'utf8')))
    } catch {
      this.phones = new Map()
    }
  }

  health(): 'ok' | 'down' {
    return this.asr.health() === 'ok' && this.bin ? 'ok' : 'down'
  }

  private decoder(signal: AbortSignal, secondOpinion: boolean): DecoderSession {
    const o = this.opts
    const spawn = o.spawn ? { spawn: o.spawn } : {}
    const loop = secondOpinion ? new PhoneLoop({ bin: this.bin!, ...(o.modelDir ? { modelDir: o.modelDir } : {}), ...(o.dictPath ? { dictPath: o.dictPath } : {}), ...spawn, signal }) : undefined
    return new DecoderSession(new PocketsphinxProcess({ bin: this.bin!, args: this.args, signal, timeoutMs: o.timeoutMs ?? 10_000, keepLog: true, ...spawn }), loop)
  }

  /**
   * Streams an utterance (decoding overlaps speech); finish() once it has ended. With
   * hooks.onEndpoint, a probe decoder looks for an early endpoint (see the header).
   */
  start(signal: AbortSignal, hooks: SessionHooks = {}): RecognitionSession {
    if (this.health() !== 'ok') {
      const err = new EngineError(this.asr.downReason ?? 'not_installed', `pocketsphinx: ${this.asr.downDetail ?? 'unavailable'}`)
      return { write: () => {}, finish: () => Promise.reject(err), kill: () => {} }
    }
    const o = this.opts
    const meter = new LevelMeter(o.speechRangeDb ?? 30)
    const silenceMs = o.endpointSilenceMs ?? 100
    const retryMs = o.endpointRetrySilenceMs ?? 200
    const onEndpoint = silenceMs > 0 && this.phones.size > 0 ? hooks.onEndpoint : undefined
    // Two decoders stream the same audio. At a pause the active one is ended (the probe) and the
    // standby, current all along, takes over; a new standby is fed everything so far in the
    // background. So no probe waits for a decoder to catch up, and at the listener's end the
    // active decoder has heard the whole utterance, as the single decoder did before. Each carries
    // its own phone loop (second opinion): a single loop, fed everything anew at each probe, made
    // the second probe at a pause (~100 ms after the first) wait ~140 ms for it to catch up.
    const so = o.secondOpinion === false ? undefined
      : { threshold: thresholdFor(o.secondOpinion?.minMargin ?? DEFAULT_MIN_MARGIN, o.secondOpinion?.actionMinMargin, o.secondOpinion?.acts) }
    const decoder = (): DecoderSession => this.decoder(signal, !!so)
    let active = decoder()
    let standby = onEndpoint ? decoder() : undefined
    const audio: Int16Array[] = [] // everything so far, for the next standby
    let probes = 0
    let probing = false
    let probedAtLoud = 0 // loud frames when the last probe started: a new probe needs new speech
    let retried = false // this pause has had its second, later probe
    let early: Recognition | undefined
    let done = false
    const canProbe = (): boolean => probes < (o.maxProbes ?? 3) && meter.ms <= (o.maxProbeAudioMs ?? 5000)

    const runProbe = (): void => {
      const d = active
      active = standby!
      standby = undefined
      probing = true
      probes++
      probedAtLoud = meter.loudFrames
      const t0 = performance.now()
      d.finish().then((dec) => {
        probing = false
        if (done) return
        const r = this.judge(dec, meter, performance.now() - t0, false, so?.threshold)
        // Speech after the probe started: the user had not finished.
        const resumed = meter.loudFrames > probedAtLoud
        const squeezed = r.confident && !resumed ? squeezedWord(dec.words ?? [], this.phones) : undefined
        const ok = r.confident && !resumed && squeezed === undefined
        o.log.debug({ pii: { text: r.text }, ok, reason: r.reason, resumed, squeezed, coverage: r.coverage, latencyMs: r.latencyMs, probe: probes }, 'offline endpoint probe')
        try {
          hooks.onProbe?.(r)
        } catch (err) {
          o.log.error({ err }, 'endpoint probe handler failed')
        }
        if (ok) {
          early = { ...r, early: true }
          try {
            if (onEndpoint!(early)) return
          } catch (err) {
            o.log.error({ err }, 'offline endpoint handler failed')
          }
          early = undefined
        }
        // Not (yet) a whole phrase: a new standby for the next pause.
        if (canProbe()) {
          standby = decoder()
          for (const a of audio) standby.write(a)
        } else {
          audio.length = 0
        }
      }, () => {
        probing = false
      })
    }

    const write = (pcm: Int16Array): void => {
      meter.push(pcm)
      active.write(pcm)
      if (!onEndpoint || done || (!standby && !probing)) return
      audio.push(pcm)
      standby?.write(pcm)
      if (!standby || probing) return
      // New speech since the last probe (≥ 100 ms: not a click), then the quiet.
      if (meter.trailingQuietMs >= silenceMs && meter.loudFrames >= probedAtLoud + 5) {
        retried = false
        runProbe()
      } else if (retryMs > silenceMs && !retried && probes > 0 && meter.loudFrames === probedAtLoud && meter.trailingQuietMs >= retryMs) {
        // The same pause, longer: the probe before it found no whole phrase.
        retried = true
        runProbe()
      }
    }
    // The prefix was answered already: a probe needs speech after it.
    probedAtLoud = Infinity
    for (const a of hooks.prefix ?? []) write(a)
    probedAtLoud = meter.loudFrames

    return {
      write,
      kill: () => {
        done = true
        standby?.kill()
        active.kill()
      },
      finish: async () => {
        done = true
        standby?.kill()
        if (early) {
          active.kill()
          return early
        }
        const t0 = performance.now()
        const d = await active.finish()
        return this.judge(d, meter, performance.now() - t0, true, so?.threshold)
      },
    }
  }

  async recognize(pcm: Int16Array, signal: AbortSignal): Promise<Recognition> {
    const s = this.start(signal)
    for (let i = 0; i < pcm.length; i += 4 * FRAME) s.write(pcm.subarray(i, i + 4 * FRAME))
    return s.finish()
  }

  /** `threshold`: the second opinion's least margin for a phrase (undefined: it is off). */
  private judge(d: Decoded, meter: LevelMeter, latencyMs: number, log = true, threshold?: (phrase: string) => number): Recognition {
    const o = this.opts
    const text = d.lines.join(' ')
    const { peakDbfs, speechMs } = meter.summary(o.speechRangeDb ?? 30)
    const wordMs = d.words ? d.words.filter((w) => !isFiller(w.word)).reduce((n, w) => n + (w.end - w.start + 1) * 10, 0) : null
    const coverage = !text ? NaN : (wordMs ?? syllables(text) * 200) / Math.max(speechMs, 1)
    let reason: UnconfidentReason | undefined = !text ? 'empty'
      : d.lines.length > 1 ? 'multiple'
      : peakDbfs < (o.minPeakDbfs ?? -45) ? 'too_quiet'
      : speechMs < (o.minSpeechMs ?? 200) ? 'too_short'
      : coverage < (o.minCoverage ?? 0.6) || coverage > (o.maxCoverage ?? 1.8) ? (wordMs === null ? 'duration_mismatch' : 'uncovered_speech')
      : undefined
    const v = threshold !== undefined && text ? judgeMargin(d.score, d.loopScore, d.samples, threshold(text)) : undefined
    if (!reason && v && !v.trusted && v.margin !== undefined) reason = 'second_opinion'
    const r: Recognition = {
      text, confident: !reason, speechMs, peakDbfs: Math.round(peakDbfs * 10) / 10, wordMs,
      coverage: Math.round(coverage * 100) / 100, latencyMs: Math.round(latencyMs),
    }
    if (reason) r.reason = reason
    if (v?.margin !== undefined) {
      r.margin = v.margin
      r.trusted = v.trusted
    }
    if (log) o.log.debug({ pii: { text }, margin: r.margin, confident: r.confident, reason, speechMs, wordMs, peakDbfs: r.peakDbfs, coverage: r.coverage, latencyMs: r.latencyMs }, 'offline recognition')
    return r
  }
}
