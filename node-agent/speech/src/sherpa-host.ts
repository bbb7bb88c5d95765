// Runs a sherpa-onnx OfflineRecognizer or OfflineTts off the main thread. onnxruntime
// aborts the whole process on a wrong-kind or corrupt model (a worker thread dies with it),
// so a model is first loaded and run once in a short-lived child process; only if that
// exits cleanly is it loaded again in a worker thread, whose synchronous decode/generate
// then never blocks the event loop. The engine code is plain CJS shared by both, so it
// runs the same from TypeScript sources (vitest) and from dist.
import { Worker } from 'node:worker_threads'
import { probeInChild, sherpaPath } from './child-probe.js'
import { EngineError } from './types.js'

export type SherpaKind = 'asr' | 'tts'

const ENGINE_JS = `
const sherpa = require(SHERPA_PATH)
function create(kind, config) {
  return kind === 'asr' ? new sherpa.OfflineRecognizer(config) : new sherpa.OfflineTts(config)
}
function run(kind, engine, job) {
  if (kind === 'asr') {
    const stream = engine.createStream()
    stream.acceptWaveform({ samples: job.samples, sampleRate: 16000 })
    engine.decode(stream)
    return { text: engine.getResult(stream).text }
  }
  const audio = engine.generate({ text: job.text, sid: job.sid, speed: job.speed, enableExternalBuffer: false })
  let f = audio.samples
  if (audio.sampleRate !== 16000) f = new sherpa.LinearResampler(audio.sampleRate, 16000).flush(f)
  const pcm = new Int16Array(f.length)
  for (let i = 0; i < f.length; i++) pcm[i] = Math.max(-32768, Math.min(32767, Math.round(f[i] * 32767)))
  return { pcm }
}
`

const PROBE_JS = `${ENGINE_JS}
const [kind, config] = [process.argv[1], JSON.parse(process.argv[2])]
const engine = create(kind, config)
run(kind, engine, kind === 'asr' ? { samples: new Float32Array(8000) } : { text: 'hello.', sid: 0, speed: 1 })
process.stdout.write('ok')
`

const WORKER_JS = `${ENGINE_JS}
const { parentPort, workerData } = require('node:worker_threads')
let engine
try {
  engine = create(workerData.kind, workerData.config)
  parentPort.postMessage({ ready: true })
} catch (e) {
  parentPort.postMessage({ ready: false, error: String((e && e.message) || e) })
}
parentPort.on('message', (job) => {
  try {
    const out = run(workerData.kind, engine, job)
    parentPort.postMessage({ id: job.id, ok: true, ...out }, out.pcm ? [out.pcm.buffer] : [])
  } catch (e) {
    parentPort.postMessage({ id: job.id, ok: false, error: String((e && e.message) || e) })
  }
})
`

function withPath(js: string): string {
  return `const SHERPA_PATH = ${JSON.stringify(sherpaPath())}\n${js}`
}

/** Loads and runs the model once in a child process; rejects with model_invalid if that fails or crashes. */
export async function probeSherpa(kind: SherpaKind, config: object, timeoutMs = 120_000): Promise<void> {
  await probeInChild(`sherpa ${kind} model`, PROBE_JS, [kind, JSON.stringify(config)], timeoutMs)
}

type Reply = { id: number; ok: true; text?: string; pcm?: Int16Array } | { id: number; ok: false; error: string }

/** A worker thread owning one native engine; jobs run one at a time in arrival order. */
export class SherpaWorker {
  private readonly pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>()
  private nextId = 1
  private deadReason: string | undefined

  private constructor(private readonly worker: Worker) {
    worker.on('message', (m: Reply) => {
      const p = this.pending.get(m.id)
      this.pending.delete(m.id)
      p?.resolve(m)
    })
    worker.on('error', (e) => this.die(`worker error: ${e.message}`))
    worker.on('exit', (code) => this.die(`worker exited ${code}`))
  }

  static async start(kind: SherpaKind, config: object): Promise<SherpaWorker> {
    const worker = new Worker(withPath(WORKER_JS), { eval: true, workerData: { kind, config } })
    const ready = await new Promise<{ ready: boolean; error?: string }>((resolve) => {
      worker.once('message', resolve)
      worker.once('error', (e) => resolve({ ready: false, error: e.message }))
    })
    if (!ready.ready) {
      await worker.terminate()
      throw new EngineError('model_invalid', `sherpa ${kind} model failed to load: ${ready.error ?? 'unknown'}`)
    }
    return new SherpaWorker(worker)
  }

  get alive(): boolean {
    return this.deadReason === undefined
  }

  get downDetail(): string | undefined {
    return this.deadReason
  }

  run(job: object, transfer: ArrayBuffer[] = []): Promise<Reply> {
    if (this.deadReason) return Promise.reject(new EngineError('crashed', `sherpa: ${this.deadReason}`))
    const id = this.nextId++
    return new Promise<Reply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      this.worker.postMessage({ ...job, id }, transfer)
    })
  }

  async close(): Promise<void> {
    this.die('closed')
    await this.worker.terminate()
  }

  private die(reason: string): void {
    this.deadReason ??= reason
    for (const p of this.pending.values()) p.reject(new EngineError('crashed', `sherpa: ${reason}`))
    this.pending.clear()
  }
}
