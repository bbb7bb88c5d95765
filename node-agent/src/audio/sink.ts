// Speaker-side audio. A sink queues PCM16 16 kHz mono per turn and releases it in real time
// (a few tens of ms ahead), so stop() silences at once: nothing long sits in a pipe buffer.
import { spawn, type ChildProcessByStdio } from 'node:child_process'
import { appendFileSync, writeFileSync } from 'node:fs'
import type { Readable, Writable } from 'node:stream'
import { which } from '@mirrormesh/speech'
import { AudioSourceError, SAMPLE_RATE } from './source.js'

export interface PlayOptions {
  turnId: number
}

export interface FirstSample {
  turnId: number
  /** Date.now() when the turn's first sample was released to the device. */
  at: number
}

export interface AudioSink {
  /** Queue audio for a turn (returns at once). */
  play(pcm: Int16Array, opts: PlayOptions): void
  /** Stop at once and drop everything queued. */
  stop(): void
  /** Called once per turn id when its first sample is released. */
  onFirstSample(cb: (e: FirstSample) => void): void
  /** Resolves when everything queued so far has played out (or was stopped). */
  readonly idle: Promise<void>
  readonly playing: boolean
  /**
   * Playback volume, percent (default 100: samples as given). Applied as a PCM gain of
   * (volume/100)² — loudness follows the square more closely than the level — on audio
   * released from now on, so a change is heard within the sink's lead (tens of ms).
   */
  volume: number
  close(): Promise<void>
}

interface Queued {
  pcm: Int16Array
  turnId: number
  off: number
  queuedAt: number
}

/** Turn segment as recorded by fileSink. Times are Date.now() ms. */
export interface PlayRecord {
  turnId: number
  /** First play() of the segment. */
  startAt: number
  /** When its first sample was released. */
  firstSampleAt: number
  /** Samples actually released (fewer than queued when stopped). */
  samples: number
  stopped?: boolean
}

const TICK_MS = 10

/** Real-time pacing shared by the sinks; subclasses get `emit` calls with released audio. */
abstract class PacedSink implements AudioSink {
  private queue: Queued[] = []
  /** Date.now() up to which audio has been released. */
  private releasedUntil = 0
  private timer: NodeJS.Timeout | undefined
  private idleTimer: NodeJS.Timeout | undefined
  private idlePromise: Promise<void> = Promise.resolve()
  private resolveIdle: (() => void) | undefined
  private readonly firstCbs: ((e: FirstSample) => void)[] = []
  private readonly seenTurns: number[] = []
  protected segment: PlayRecord | undefined
  protected closed = false
  private gain = 1
  private level = 100

  constructor(private readonly leadMs: number) {}

  get idle(): Promise<void> {
    return this.idlePromise
  }

  get playing(): boolean {
    return this.resolveIdle !== undefined
  }

  get volume(): number {
    return this.level
  }

  set volume(v: number) {
    if (!Number.isFinite(v) || v < 0 || v > 100) throw new RangeError(`volume must be 0–100, got ${v}`)
    this.level = v
    this.gain = (v / 100) ** 2
  }

  onFirstSample(cb: (e: FirstSample) => void): void {
    this.firstCbs.push(cb)
  }

  play(pcm: Int16Array, { turnId }: PlayOptions): void {
    if (this.closed || pcm.length === 0) return
    this.queue.push({ pcm, turnId, off: 0, queuedAt: Date.now() })
    if (!this.resolveIdle) this.idlePromise = new Promise((r) => (this.resolveIdle = r))
    if (this.idleTimer) {
      clearTimeout(this.idleTimer)
      this.idleTimer = undefined
    }
    if (!this.timer) this.timer = setInterval(() => this.tick(), TICK_MS)
    this.tick()
  }

  stop(): void {
    this.queue = []
    if (this.timer) clearInterval(this.timer)
    if (this.idleTimer) clearTimeout(this.idleTimer)
    this.timer = this.idleTimer = undefined
    this.releasedUntil = 0
    this.halt()
    this.endSegment(true)
    this.settleIdle()
  }

  async close(): Promise<void> {
    this.stop()
    this.closed = true
  }

  private tick(): void {
    const now = Date.now()
    if (this.releasedUntil < now) this.releasedUntil = now // underrun or a fresh start
    const target = now + this.leadMs
    while (this.queue.length && this.releasedUntil < target) {
      const q = this.queue[0]!
      const want = Math.max(320, Math.ceil(((target - this.releasedUntil) * SAMPLE_RATE) / 1000))
      const chunk = q.pcm.subarray(q.off, Math.min(q.pcm.length, q.off + want))
      if (this.segment?.turnId !== q.turnId) {
        this.endSegment(false)
        this.segment = { turnId: q.turnId, startAt: q.queuedAt, firstSampleAt: 0, samples: 0 }
      }
      const seg = this.segment!
      if (seg.firstSampleAt === 0) seg.firstSampleAt = this.releasedUntil
      if (!this.seenTurns.includes(q.turnId)) {
        this.seenTurns.push(q.turnId)
        if (this.seenTurns.length > 64) this.seenTurns.shift()
        for (const cb of this.firstCbs) cb({ turnId: q.turnId, at: this.releasedUntil })
      }
      this.emit(this.gain === 1 ? chunk : applyGain(chunk, this.gain), q.turnId)
      seg.samples += chunk.length
      this.releasedUntil += (chunk.length * 1000) / SAMPLE_RATE
      q.off += chunk.length
      if (q.off >= q.pcm.length) this.queue.shift()
    }
    if (!this.queue.length) {
      if (this.timer) clearInterval(this.timer)
      this.timer = undefined
      if (!this.idleTimer) {
        this.idleTimer = setTimeout(() => {
          this.idleTimer = undefined
          this.endSegment(false)
          this.drained()
          this.settleIdle()
        }, Math.max(0, this.releasedUntil - Date.now()))
      }
    }
  }

  private settleIdle(): void {
    const r = this.resolveIdle
    this.resolveIdle = undefined
    r?.()
  }

  private endSegment(stopped: boolean): void {
    const seg = this.segment
    this.segment = undefined
    if (seg && seg.samples > 0) this.record(stopped ? { ...seg, stopped: true } : seg)
  }

  /** Audio released now (chunk references the queued array). */
  protected abstract emit(chunk: Int16Array, turnId: number): void
  /** stop(): drop whatever the device still holds. */
  protected abstract halt(): void
  /** Everything played out. */
  protected drained(): void {}
  protected record(_r: PlayRecord): void {}
}

/** A scaled copy (the queued audio is the caller's and is not changed). */
function applyGain(pcm: Int16Array, gain: number): Int16Array {
  const out = new Int16Array(pcm.length)
  for (let i = 0; i < pcm.length; i++) out[i] = Math.round(pcm[i]! * gain)
  return out
}

export interface AplaySinkOptions {
  device?: string
  bin?: string
  /** How far ahead of real time audio is written (default 60 ms). */
  leadMs?: number
  onError?: (err: Error) => void
}

/** `aplay -D <device> -q -t raw -f S16_LE -r 16000 -c 1 -`, started on demand, killed on stop(). */
export function aplaySink(opts: AplaySinkOptions = {}): AudioSink {
  const binName = opts.bin ?? 'aplay'
  const bin = which(binName)
  if (!bin) throw new AudioSourceError('not_installed', `${binName} not found (apt install alsa-utils)`)
  return new AplaySink(bin, opts)
}

class AplaySink extends PacedSink {
  private child: ChildProcessByStdio<Writable, null, Readable> | undefined
  private stderr = ''

  constructor(private readonly bin: string, private readonly opts: AplaySinkOptions) {
    super(opts.leadMs ?? 60)
  }

  protected emit(chunk: Int16Array): void {
    const child = this.child ?? this.spawn()
    child.stdin.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))
  }

  private spawn(): ChildProcessByStdio<Writable, null, Readable> {
    const args = ['-D', this.opts.device ?? 'default', '-q', '-t', 'raw', '-f', 'S16_LE', '-r', String(SAMPLE_RATE), '-c', '1', '--buffer-time=100000', '-']
    const child = spawn(this.bin, args, { stdio: ['pipe', 'ignore', 'pipe'] })
    this.stderr = ''
    child.stderr.on('data', (b: Buffer) => (this.stderr = (this.stderr + b.toString()).slice(-500)))
    child.stdin.on('error', () => {})
    child.on('error', (e) => this.opts.onError?.(e))
    child.on('close', (code, sig) => {
      if (this.child === child) this.child = undefined
      if (code !== 0 && sig !== 'SIGKILL') this.opts.onError?.(new Error(`aplay exited ${code ?? sig}: ${this.stderr.trim()}`))
    })
    this.child = child
    return child
  }

  protected halt(): void {
    this.child?.kill('SIGKILL')
    this.child = undefined
  }

  protected override drained(): void {
    // Close the device between answers: end stdin so aplay drains and exits.
    this.child?.stdin.end()
    this.child = undefined
  }
}

export interface FileSink extends AudioSink {
  /** Finished segments, in order. */
  readonly records: PlayRecord[]
  /** All samples released so far (for assertions). */
  readonly playedSamples: number
}

/**
 * A sink with no device: real-time pacing on timers, each finished turn segment recorded
 * (in memory and, unless `file` is null, appended to `file` as JSONL).
 */
export function fileSink(file: string | null, opts: { leadMs?: number } = {}): FileSink {
  if (file) writeFileSync(file, '')
  return new RecordingSink(file, opts.leadMs ?? 20)
}

class RecordingSink extends PacedSink implements FileSink {
  readonly records: PlayRecord[] = []
  playedSamples = 0
  constructor(private readonly file: string | null, leadMs: number) {
    super(leadMs)
  }
  protected emit(chunk: Int16Array): void {
    this.playedSamples += chunk.length
  }
  protected halt(): void {}
  protected override record(r: PlayRecord): void {
    this.records.push(r)
    if (this.file) appendFileSync(this.file, JSON.stringify(r) + '\n')
  }
}
