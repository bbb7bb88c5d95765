import { describe, expect, it } from 'vitest'
import { createLogger } from './log.js'
import { FeatureHost, type Feature, type FeatureStatus, type Message } from './features.js'

const log = createLogger({ name: 'test', level: 'silent' })
const heartbeat = (seq: number): Message<'nodeHeartbeat'> => ({
  name: 'nodeHeartbeat', params: { node: 'n1' },
  data: { v: 1, ts: Date.now(), seq, uptimeS: 1, cpuPct: null, memPct: null, rssMb: 1, temperatureC: null, versions: {}, mode: 'online' },
})

describe('FeatureHost', () => {
  it('keeps the others running when a feature throws at start, and reports it', async () => {
    const host = new FeatureHost(log)
    const seen: number[] = []
    const changes: FeatureStatus[] = []
    host.on('state', (s) => changes.push(s))
    host.add({ name: 'broken', start: () => { throw new Error('model missing') }, handlers: { nodeHeartbeat: () => { throw new Error('never called') } } })
    host.add({ name: 'registry', handlers: { nodeHeartbeat: (m) => seen.push(m.data.seq) } })
    await host.start()
    expect(host.states()).toEqual([{ name: 'broken', state: 'failed', reason: 'model missing' }, { name: 'registry', state: 'running' }])
    expect(changes.filter((c) => c.state === 'failed')).toEqual([{ name: 'broken', state: 'failed', reason: 'model missing' }])
    host.route(heartbeat(7))
    expect(seen).toEqual([7])
  })

  it('stops start-up when a critical feature fails', async () => {
    const host = new FeatureHost(log)
    const started: string[] = []
    host.add({ name: 'mqtt', critical: true, start: () => { throw new Error('bad credentials') } })
    host.add({ name: 'http', start: () => { started.push('http') } })
    await expect(host.start()).rejects.toThrow('bad credentials')
    expect(started).toEqual([])
  })

  it('routes each message only to the features that declared its topic; a throwing handler does not stop the next', async () => {
    const host = new FeatureHost(log)
    const got: string[] = []
    host.add({ name: 'a', handlers: { nodeHeartbeat: () => { throw new Error('boom') } } })
    host.add({ name: 'b', handlers: { nodeHeartbeat: () => got.push('b') } })
    host.add({ name: 'c', handlers: { nodeStatus: () => got.push('c') } })
    await host.start()
    expect(host.topics().sort()).toEqual(['nodeHeartbeat', 'nodeStatus'])
    host.route(heartbeat(1))
    host.route({ name: 'weather', params: {}, data: { v: 1, ts: 1, summary: 'sun' } })
    expect(got).toEqual(['b'])
  })

  it('stops in reverse order, past a stop that throws', async () => {
    const host = new FeatureHost(log)
    const order: string[] = []
    const f = (name: string, fail = false): Feature => ({ name, stop: () => { order.push(name); if (fail) throw new Error('x') } })
    host.add(f('first')); host.add(f('second', true)); host.add(f('third'))
    await host.start()
    await host.stop()
    expect(order).toEqual(['third', 'second', 'first'])
    expect(host.states().every((s) => s.state === 'stopped')).toBe(true)
  })

  it('a stop during start-up (SIGTERM while a model loads) lets the starting feature finish, starts no other, stops it', async () => {
    const host = new FeatureHost(log)
    const events: string[] = []
    let release!: () => void
    const slow = new Promise<void>((r) => { release = r })
    host.add({ name: 'voice', start: async () => { events.push('voice start'); await slow; events.push('voice started') }, stop: () => { events.push('voice stop') } })
    host.add({ name: 'http', start: () => { events.push('http start') }, stop: () => { events.push('http stop') } })
    const starting = host.start()
    await Promise.resolve()
    const stopping = host.stop()
    expect(host.stopped).toBe(true)
    release()
    await starting
    await stopping
    expect(events).toEqual(['voice start', 'voice started', 'voice stop'])
    expect(host.states().map((s) => s.state)).toEqual(['stopped', 'stopped'])
  })
})
