// Offline speech recognition: pocketsphinx with the bundle's JSGF grammar, plus a confidence
// verdict. Pocketsphinx 0.8 with a grammar either prints an in-grammar phrase or nothing, and
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
// The decoder is run here (not through PocketsphinxAsr) because the backtrace is on stderr.
import { spawn, type ChildProcessByStdio } from 'node:child_process'
import path from 'node:path'
import type { Readable, Writable } from 'node:stream'
import type { Logger } from '@mirrormesh/broker'
import { PocketsphinxAsr, type PocketsphinxOptions } from '../speech/asr-pocketsphinx.js'
import { abortReason, killGroup, TailBuffer, which } from '../speech/proc.js'
import { EngineError } from '../speech/types.js'

export type UnconfidentReason = 'empty' | 'multiple' | 'too_quiet' | 'too_short' | 'uncovered_speech' | 'duration_mismatch'

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
  /** From the end of audio (finish) to the result, ms. */
  latencyMs: number
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
}

const FRAME = 320 // 20 ms at 16 kHz
const FLOOR_DBFS = -55

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

  push(pcm: Int16Array): void {
    for (let i = 0; i < pcm.length; i++) {
      const s = pcm[i]!
      this.acc += s * s
      if (++this.n === FRAME) {
        this.frames.push(this.db(this.acc / FRAME))
        this.acc = 0
        this.n = 0
      }
    }
  }

  private db(meanSquare: number): number {
    return meanSquare > 0 ? 10 * Math.log10(meanSquare / (32768 * 32768)) : -120
  }

  /** Peak frame level and the ms of frames within `rangeDb` of it (and above the floor). */
  summary(rangeDb: number): { peakDbfs: number; speechMs: number } {
    const frames = this.n > FRAME / 4 ? [...this.frames, this.db(this.acc / this.n)] : this.frames
    const peak = frames.reduce((m, f) => Math.max(m, f), -120)
    const thr = Math.max(peak - rangeDb, FLOOR_DBFS)
    return { peakDbfs: peak, speechMs: frames.filter((f) => f >= thr).length * 20 }
  }
}

export interface RecognitionSession {
  write(pcm: Int16Array): void
  finish(): Promise<Recognition>
}

interface Decoded { lines: string[]; words: AlignedWord[] | null }

const BT_ROW = /^(\S+)\s+(\d+)\s+(\d+)\s+[\d.]+\s+-?\d+\s+-?\d+\s+\d+\s*$/
const SESSION_LIMIT_MS = 120_000

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

/** One pocketsphinx_continuous child for one utterance, keeping its backtrace. */
class DecoderSession {
  private readonly result: Promise<Decoded>
  private finishing: Promise<Decoded> | undefined
  private timer: NodeJS.Timeout | undefined
  private failure: EngineError | undefined
  private exited = false

  constructor(private readonly child: ChildProcessByStdio<Writable, Readable, Readable>, signal: AbortSignal, private readonly timeoutMs: number) {
    const out: string[] = []
    const err: string[] = []
    const tail = new TailBuffer()
    child.stdout.setEncoding('utf8').on('data', (s: string) => out.push(s))
    // The whole log is kept: a few kB per utterance, and the backtrace is in it.
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      err.push(s)
      tail.push(s)
    })
    child.stdin.on('error', () => {})
    const onAbort = (): void => this.kill()
    signal.addEventListener('abort', onAbort, { once: true })
    if (signal.aborted) this.kill()
    const lifetime = setTimeout(() => this.kill(), SESSION_LIMIT_MS).unref()
    this.result = new Promise<Decoded>((resolve, reject) => {
      child.on('error', (e) => {
        this.exited = true
        clearTimeout(this.timer)
        clearTimeout(lifetime)
        reject(new EngineError('not_installed', `pocketsphinx failed to start: ${e.message}`))
      })
      child.on('close', (code, sig) => {
        this.exited = true
        clearTimeout(this.timer)
        clearTimeout(lifetime)
        signal.removeEventListener('abort', onAbort)
        if (signal.aborted) return reject(abortReason(signal))
        if (this.failure) return reject(this.failure)
        if (code !== 0) return reject(new EngineError('crashed', `pocketsphinx exited ${code ?? sig}: ${tail.reason()}`, true))
        const lines = out.join('').split('\n').map((l) => l.trim()).filter(Boolean)
        resolve({ lines, words: parseBacktrace(err.join('')) })
      })
    })
    this.result.catch(() => {})
  }

  write(pcm: Int16Array): void {
    if (this.finishing || this.exited || !this.child.stdin.writable) return
    this.child.stdin.write(Buffer.from(new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength)))
  }

  finish(): Promise<Decoded> {
    if (this.finishing) return this.finishing
    this.child.stdin.end()
    if (!this.exited) this.timer = setTimeout(() => {
      this.failure = new EngineError('timeout', `pocketsphinx gave no transcript within ${this.timeoutMs} ms`, true)
      this.kill()
    }, this.timeoutMs)
    this.finishing = this.result
    return this.finishing
  }

  private kill(): void {
    if (!this.exited) killGroup(this.child)
  }
}

export class OfflineRecognizer {
  /** Used for its health check (binary, model, grammar present). */
  readonly asr: PocketsphinxAsr
  private readonly bin: string | undefined
  private readonly args: string[]

  constructor(private readonly opts: OfflineRecognizerOptions) {
    this.asr = new PocketsphinxAsr(opts)
    this.bin = which(opts.bin ?? 'pocketsphinx_continuous')
    const modelDir = opts.modelDir ?? '/usr/share/pocketsphinx/model/en-us'
    this.args = ['-infile', '/dev/stdin', '-jsgf', opts.grammarPath, '-hmm', path.join(modelDir, 'en-us'),
      '-dict', path.join(modelDir, 'cmudict-en-us.dict'), '-backtrace', 'yes']
  }

  health(): 'ok' | 'down' {
    return this.asr.health() === 'ok' && this.bin ? 'ok' : 'down'
  }

  /** Streams an utterance (decoding overlaps speech); finish() once it has ended. */
  start(signal: AbortSignal): RecognitionSession {
    if (this.health() !== 'ok') {
      const err = new EngineError(this.asr.downReason ?? 'not_installed', `pocketsphinx: ${this.asr.downDetail ?? 'unavailable'}`)
      return { write: () => {}, finish: () => Promise.reject(err) }
    }
    // Same pipe trick as PocketsphinxAsr: `-infile /dev/stdin` needs a real pipe.
    const child = spawn('/bin/sh', ['-c', 'cat | "$@"', 'sh', this.bin!, ...this.args], { stdio: ['pipe', 'pipe', 'pipe'], detached: true })
    const session = new DecoderSession(child, signal, this.opts.timeoutMs ?? 10_000)
    const meter = new LevelMeter()
    return {
      write: (pcm) => {
        meter.push(pcm)
        session.write(pcm)
      },
      finish: async () => {
        const t0 = performance.now()
        const d = await session.finish()
        return this.judge(d, meter, performance.now() - t0)
      },
    }
  }

  async recognize(pcm: Int16Array, signal: AbortSignal): Promise<Recognition> {
    const s = this.start(signal)
    for (let i = 0; i < pcm.length; i += 4 * FRAME) s.write(pcm.subarray(i, i + 4 * FRAME))
    return s.finish()
  }

  private judge(d: Decoded, meter: LevelMeter, latencyMs: number): Recognition {
    const o = this.opts
    const text = d.lines.join(' ')
    const { peakDbfs, speechMs } = meter.summary(o.speechRangeDb ?? 30)
    const wordMs = d.words ? d.words.filter((w) => !isFiller(w.word)).reduce((n, w) => n + (w.end - w.start + 1) * 10, 0) : null
    const coverage = !text ? NaN : (wordMs ?? syllables(text) * 200) / Math.max(speechMs, 1)
    const reason: UnconfidentReason | undefined = !text ? 'empty'
      : d.lines.length > 1 ? 'multiple'
      : peakDbfs < (o.minPeakDbfs ?? -45) ? 'too_quiet'
      : speechMs < (o.minSpeechMs ?? 200) ? 'too_short'
      : coverage < (o.minCoverage ?? 0.6) || coverage > (o.maxCoverage ?? 1.8) ? (wordMs === null ? 'duration_mismatch' : 'uncovered_speech')
      : undefined
    const r: Recognition = {
      text, confident: !reason, speechMs, peakDbfs: Math.round(peakDbfs * 10) / 10, wordMs,
      coverage: Math.round(coverage * 100) / 100, latencyMs: Math.round(latencyMs),
    }
    if (reason) r.reason = reason
    o.log.debug({ pii: { text }, confident: r.confident, reason, speechMs, wordMs, peakDbfs: r.peakDbfs, coverage: r.coverage, latencyMs: r.latencyMs }, 'offline recognition')
    return r
  }
}
