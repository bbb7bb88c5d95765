import { describe, expect, it } from 'vitest'
import { createLogger } from '@mirrormesh/broker'
import { Counter, Registry } from 'prom-client'
import { FallbackChain, reasonOf } from './fallback.js'
import { EngineError, type Engine, type EngineHealth } from './types.js'
import { Unavailable } from './unavailable.js'

class Fake implements Engine {
  constructor(readonly name: string, public state: EngineHealth = 'ok') {}
  health(): EngineHealth { return this.state }
}

function setup(engines: Engine[]) {
  const registry = new Registry()
  const fallback = new Counter({ name: 'fallback_total', help: 'x', labelNames: ['stage', 'from', 'to', 'reason'], registers: [registry] })
  const lines: string[] = []
  const log = createLogger({ name: 'test', level: 'warn', destination: { write: (s: string) => { lines.push(s); return true } } as unknown as NodeJS.WritableStream })
  const chain = new FallbackChain('tts', engines, { fallback }, log)
  const steps = async () => (await fallback.get()).values.map((v) => ({ ...v.labels, n: v.value }))
  return { chain, steps, lines }
}

describe('FallbackChain', () => {
  it('candidates: the healthy engines in order; each down one skipped is counted with its reason', async () => {
    const a = new Unavailable('sherpa', 'model_missing')
    const b = new Fake('espeak')
    const c = new Fake('beep', 'degraded')
    const { chain, steps } = setup([a, b, c])
    expect(chain.candidates()).toEqual([b, c])
    expect(await steps()).toEqual([{ stage: 'tts', from: 'sherpa', to: 'espeak', reason: 'model_missing', n: 1 }])
  })

  it('candidates: all down → none, the step to none counted', async () => {
    const { chain, steps } = setup([new Fake('a', 'down'), new Fake('b', 'down')])
    expect(chain.candidates()).toEqual([])
    expect(await steps()).toEqual([{ stage: 'tts', from: 'a', to: 'none', reason: 'unhealthy', n: 1 }])
  })

  it('run: the first engine that succeeds answers; failures before it are counted by reason', async () => {
    const a = new Fake('a')
    const b = new Fake('b')
    const { chain, steps } = setup([a, b])
    const tried: string[] = []
    const r = await chain.run(async (e) => {
      tried.push(e.name)
      if (e === a) throw new EngineError('timeout', 'slow')
      return 'spoken'
    })
    expect(r).toEqual({ engine: b, result: 'spoken' })
    expect(tried).toEqual(['a', 'b'])
    expect(await steps()).toEqual([{ stage: 'tts', from: 'a', to: 'b', reason: 'timeout', n: 1 }])
  })

  it('run: all fail → throws the last error; a plain Error counts as reason "error"', async () => {
    const { chain, steps } = setup([new Fake('a'), new Fake('b')])
    await expect(chain.run(async (e) => { throw new Error(`${e.name} broke`) })).rejects.toThrow('b broke')
    expect(await steps()).toEqual([
      { stage: 'tts', from: 'a', to: 'b', reason: 'error', n: 1 },
      { stage: 'tts', from: 'b', to: 'none', reason: 'error', n: 1 },
    ])
  })

  it('run: no engine at all → EngineError no_engine', async () => {
    const { chain } = setup([])
    await expect(chain.run(async () => 1)).rejects.toMatchObject({ name: 'EngineError', reason: 'no_engine' })
  })

  it('run: aborted → rethrows at once, tries no further engine, counts nothing', async () => {
    const ctl = new AbortController()
    const { chain, steps } = setup([new Fake('a'), new Fake('b')])
    const tried: string[] = []
    await expect(chain.run(async (e) => {
      tried.push(e.name)
      ctl.abort()
      throw new Error('aborted')
    }, ctl.signal)).rejects.toThrow('aborted')
    expect(tried).toEqual(['a'])
    expect(await steps()).toEqual([])
  })

  it('each step is counted every time but logged once per window', async () => {
    const { chain, steps, lines } = setup([new Fake('a')])
    chain.step('a', 'b', 'crashed')
    chain.step('a', 'b', 'crashed')
    chain.step('a', 'b', 'timeout')
    expect(await steps()).toEqual([
      { stage: 'tts', from: 'a', to: 'b', reason: 'crashed', n: 2 },
      { stage: 'tts', from: 'a', to: 'b', reason: 'timeout', n: 1 },
    ])
    await new Promise((r) => setTimeout(r, 50)) // pino writes asynchronously
    expect(lines.filter((l) => l.includes('fallback taken'))).toHaveLength(2)
  })

  it('reasonOf: an EngineError\'s reason, else "error"', () => {
    expect(reasonOf(new EngineError('model_missing', 'x'))).toBe('model_missing')
    expect(reasonOf(new Error('x'))).toBe('error')
    expect(reasonOf('boom')).toBe('error')
  })
})
