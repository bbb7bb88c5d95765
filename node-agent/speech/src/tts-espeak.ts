// Formant TTS: `espeak-ng --stdout` (22050 Hz WAV) piped through `sox` to PCM16 16 kHz.
// Both are spawned directly (no shell); the text goes in on espeak's stdin so a leading
// "-" can never be read as an option. The first chunk arrives ~25 ms after the call.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import type { Logger } from '@mirrormesh/broker'
import { EngineError, type EngineHealth, type TtsEngine } from './types.js'
import { abortReason, TailBuffer, which } from './proc.js'
import type { SpawnFn } from './spawn-host.js'

export interface EspeakOptions {
  /** espeak-ng voice, e.g. 'en-us' (default: espeak's default voice). */
  voice?: string
  /** Words per minute (espeak default 175). */
  speedWpm?: number
  espeakBin?: string
  soxBin?: string
  log?: Logger
  /** How to start espeak-ng and sox (default child_process.spawn; the hub passes SpawnHost.spawn). */
  spawn?: SpawnFn
}

// -D: no dither, so the same text gives the same bytes (stable bundle versions).
const SOX_ARGS = ['-D', '-t', 'wav', '-', '-t', 'raw', '-r', '16000', '-e', 'signed', '-b', '16', '-c', '1', '-']

export class EspeakTts implements TtsEngine {
  readonly name = 'espeak'
  /** 'not_installed' when down (the fallback metric label); `downDetail` names the binary. */
  readonly downReason: string | undefined
  readonly downDetail: string | undefined
  private readonly espeak: string | undefined
  private readonly sox: string | undefined
  /** The voice in use; undefined for espeak's default (also when the configured one is unknown). */
  readonly voice: string | undefined

  constructor(private readonly opts: EspeakOptions = {}) {
    this.espeak = which(opts.espeakBin ?? 'espeak-ng')
    this.sox = which(opts.soxBin ?? 'sox')
    if (!this.espeak) this.downDetail = `${opts.espeakBin ?? 'espeak-ng'} not found`
    else if (!this.sox) this.downDetail = `${opts.soxBin ?? 'sox'} not found`
    this.downReason = this.downDetail ? 'not_installed' : undefined
    if (this.downDetail) opts.log?.warn({ engine: this.name, reason: this.downDetail }, 'tts engine unavailable')
    this.voice = opts.voice && this.espeak && !voiceExists(this.espeak, opts.voice) ? undefined : opts.voice
    // With text on stdin espeak silently uses its default voice for an unknown one; say so once.
    if (opts.voice && !this.voice) opts.log?.warn({ engine: this.name, voice: opts.voice }, 'espeak-ng voice not found, using the default voice')
  }

  health(): EngineHealth {
    return this.downReason ? 'down' : 'ok'
  }

  async *synthesize(text: string, signal: AbortSignal): AsyncIterable<Int16Array> {
    if (!this.espeak || !this.sox) throw new EngineError('not_installed', `espeak: ${this.downDetail ?? 'unavailable'}`)
    if (signal.aborted) throw abortReason(signal)
    const args = ['--stdout']
    if (this.voice) args.push('-v', this.voice)
    if (this.opts.speedWpm) args.push('-s', String(Math.round(this.opts.speedWpm)))
    const run: SpawnFn = this.opts.spawn ?? ((file, a) => spawn(file, a, { stdio: ['pipe', 'pipe', 'pipe'] }))
    const espeak = run(this.espeak, args)
    const sox = run(this.sox, SOX_ARGS)
    const errs = { espeak: new TailBuffer(), sox: new TailBuffer() }
    espeak.stderr.on('data', (b: Buffer) => errs.espeak.push(b))
    sox.stderr.on('data', (b: Buffer) => errs.sox.push(b))
    // Broken pipes show up as exit codes below.
    espeak.stdin.on('error', () => {})
    sox.stdin.on('error', () => {})
    espeak.stdout.pipe(sox.stdin)
    espeak.stdin.end(text.replace(/\s+/g, ' ') + '\n')
    const exits = [exitOf(espeak), exitOf(sox)]

    const kill = (): void => {
      for (const c of [espeak, sox]) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
    }
    signal.addEventListener('abort', kill, { once: true })
    try {
      let odd: number | undefined
      for await (const chunk of sox.stdout as AsyncIterable<Buffer>) {
        if (signal.aborted) break
        const pcm = toPcm(chunk, odd)
        odd = pcm.odd
        if (pcm.samples.length > 0) yield pcm.samples
      }
      if (signal.aborted) throw abortReason(signal)
      const [e, s] = await Promise.all(exits)
      if (e !== 0) throw new EngineError('crashed', `espeak-ng exited ${e}: ${errs.espeak.reason()}`)
      if (s !== 0) throw new EngineError('crashed', `sox exited ${s}: ${errs.sox.reason()}`)
    } finally {
      // Also runs when the consumer stops iterating early.
      signal.removeEventListener('abort', kill)
      kill()
    }
  }
}

function voiceExists(espeak: string, voice: string): boolean {
  try {
    // -q: no audio; exits 1 with "voice does not exist". ~10 ms, once.
    execFileSync(espeak, ['-q', '-v', voice, 'x'], { stdio: 'ignore', timeout: 5000 })
    return true
  } catch {
    return false
  }
}

function exitOf(child: ChildProcess): Promise<number | string> {
  return once(child, 'close').then(
    ([code, sig]) => (code ?? sig) as number | string,
    (e: Error) => e.message,
  )
}

/** Little-endian PCM16 from a byte chunk, carrying a dangling odd byte to the next chunk. */
function toPcm(chunk: Buffer, carry: number | undefined): { samples: Int16Array; odd: number | undefined } {
  const bytes = carry === undefined ? chunk : Buffer.concat([Buffer.from([carry]), chunk])
  const n = bytes.length >> 1
  const samples = new Int16Array(n)
  for (let i = 0; i < n; i++) samples[i] = bytes.readInt16LE(i * 2)
  return { samples, odd: bytes.length % 2 === 1 ? bytes[bytes.length - 1] : undefined }
}
