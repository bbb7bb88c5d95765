// Small fake engines and helpers for the stage unit tests: source → stage → sink. Test-only:
// hub/tsconfig.json leaves it out of dist.
// (The end-to-end tests in test/pipeline.test.ts run the real engines.)
import { createLogger } from '@mirrormesh/broker'
import type { AsrEngine, AsrSession, EngineHealth, LlmEngine, LlmRequest, TtsEngine, VadEngine, VadSession } from '@mirrormesh/speech'
import { EngineError } from '@mirrormesh/speech'
import { Registry } from 'prom-client'
import type { Frame, ReplyContext } from './frames.js'
import { pipelineMetrics } from './metrics.js'
import { AsyncQueue, sleep } from './queue.js'
import type { SkillEnv } from './skills.js'

export const silentLog = createLogger({ name: 'test', level: 'silent' })

export function testMetrics() {
  const registry = new Registry()
  const metrics = pipelineMetrics(registry)
  /** Sum of a counter's series matching `labels`. */
  const value = async (name: string, labels: Record<string, string> = {}): Promise<number> => {
    const m = registry.getSingleMetric(name)
    if (!m) throw new Error(`no metric ${name}`)
    const { values } = await m.get()
    return values
      .filter((v) => Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want))
      .reduce((s, v) => s + v.value, 0)
  }
  /** Observations of a histogram matching `labels`. */
  const count = async (name: string, labels: Record<string, string> = {}): Promise<number> => {
    const m = registry.getSingleMetric(name)
    if (!m) throw new Error(`no metric ${name}`)
    const { values } = await m.get()
    return values
      .filter((v) => (v as { metricName?: string }).metricName === `${name}_count`)
      .filter((v) => Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want))
      .reduce((s, v) => s + v.value, 0)
  }
  return { registry, metrics, value, count }
}

/** A finished queue holding `frames`. */
export function source(frames: Frame[], end = true): AsyncQueue<Frame> {
  const q = new AsyncQueue<Frame>()
  for (const f of frames) q.push(f)
  if (end) q.end()
  return q
}

export function pcm(samples: number, value = 1000): Int16Array {
  return new Int16Array(samples).fill(value)
}

export interface FakeCtx extends ReplyContext {
  ctl: AbortController
  errors: Array<{ stage: string; err: unknown }>
  marks: Record<string, number>
  env: SkillEnv & { acts: unknown[]; notes: unknown[]; timers: Array<[number, string]> }
}

export function fakeCtx(opts: { room?: string | null; weather?: { summary: string; temperatureC?: number } | null; now?: Date } = {}): FakeCtx {
  const ctl = new AbortController()
  const errors: FakeCtx['errors'] = []
  const marks: Record<string, number> = {}
  const env: FakeCtx['env'] = {
    nodeId: 'kitchen', now: opts.now ?? new Date(2026, 0, 5, 14, 7), acts: [], notes: [], timers: [],
    act(component, action) { env.acts.push({ component, ...action }) },
    notify(event) { env.notes.push(event) },
    weather: () => opts.weather ?? null,
    setTimer(ms, label) { env.timers.push([ms, label]) },
  }
  return {
    nodeId: 'kitchen', turnId: 7, signal: ctl.signal, room: opts.room ?? null, ctl, errors, marks, env,
    skillEnv: () => env,
    error(stage, err) { errors.push({ stage, err }); ctl.abort(new Error('error')) },
    mark(name, at = Date.now()) { marks[name] ??= at },
  }
}

/** Collects what a stage writes. */
export function sink() {
  const frames: Frame[] = []
  return { frames, out: (f: Frame) => void frames.push(f), types: () => frames.map((f) => f.type) }
}

export class FakeAsr implements AsrEngine {
  readonly written: Int16Array[] = []
  starts = 0
  constructor(readonly name: string, private readonly behaviour: { text?: string; fail?: 'start' | 'finish'; reason?: string; health?: EngineHealth } = {}) {}
  health(): EngineHealth { return this.behaviour.health ?? 'ok' }
  get samples(): number { return this.written.reduce((n, p) => n + p.length, 0) }
  start(signal: AbortSignal): AsrSession {
    this.starts++
    const fail = () => new EngineError(this.behaviour.reason ?? 'crashed', `${this.name} failed`)
    if (this.behaviour.fail === 'start') throw fail()
    return {
      write: (p) => void this.written.push(p),
      finish: async () => {
        await sleep(1, signal)
        if (this.behaviour.fail === 'finish') throw fail()
        return { text: this.behaviour.text ?? '' }
      },
    }
  }
}

export class FakeVad implements VadEngine {
  readonly name = 'fakevad'
  /** Speech ends after this many frames have been pushed. */
  constructor(private readonly endAfter: number) {}
  health(): EngineHealth { return 'ok' }
  start(): VadSession {
    let n = 0
    return { push: () => ++n >= this.endAfter, get speechDetected() { return n > 0 } }
  }
}

export class FakeTts implements TtsEngine {
  readonly said: string[] = []
  constructor(readonly name: string, private readonly behaviour: { samplesPerChunk?: number; chunks?: number; fail?: boolean; health?: EngineHealth } = {}) {}
  health(): EngineHealth { return this.behaviour.health ?? 'ok' }
  async *synthesize(text: string, signal: AbortSignal): AsyncIterable<Int16Array> {
    this.said.push(text)
    if (this.behaviour.fail) throw new EngineError('crashed', `${this.name} failed`)
    for (let i = 0; i < (this.behaviour.chunks ?? 1); i++) {
      await sleep(1, signal)
      yield pcm(this.behaviour.samplesPerChunk ?? 640, 500)
    }
  }
}

export class FakeLlm implements LlmEngine {
  prompts: LlmRequest[] = []
  constructor(readonly name: string, private readonly pieces: string[], private readonly behaviour: { failAfter?: number; health?: EngineHealth; gapMs?: number } = {}) {}
  health(): EngineHealth { return this.behaviour.health ?? 'ok' }
  async generate(req: LlmRequest): Promise<string> {
    this.prompts.push(req)
    let text = ''
    for (let i = 0; i < this.pieces.length; i++) {
      if (i === this.behaviour.failAfter) throw new EngineError('crashed', 'llm died')
      await sleep(this.behaviour.gapMs ?? 1, req.signal)
      text += this.pieces[i]
      req.onText(this.pieces[i]!)
    }
    if (this.behaviour.failAfter === this.pieces.length) throw new EngineError('crashed', 'llm died')
    return text
  }
}
