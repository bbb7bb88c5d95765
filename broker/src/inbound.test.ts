import { Writable } from 'node:stream'
import { Registry } from 'prom-client'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { InboundValidator } from './inbound.js'
import { createLogger } from './log.js'

const heartbeat = {
  v: 1, ts: 1_700_000_000_000, seq: 1, uptimeS: 1, cpuPct: null, memPct: null, rssMb: 50,
  temperatureC: null, versions: {}, mode: 'online',
}

let registry: Registry
let lines: Array<Record<string, unknown>>
let validator: InboundValidator

beforeEach(() => {
  registry = new Registry()
  lines = []
  const destination = new Writable({ write(chunk, _enc, cb) { lines.push(JSON.parse(String(chunk))); cb() } })
  validator = new InboundValidator('mirrormesh', registry, createLogger({ name: 'test', destination }))
})
afterEach(() => {
  vi.useRealTimers()
})

async function rejected(labels: { topic: string; reason: string }): Promise<number> {
  const metric = await registry.getSingleMetric('mirrormesh_payload_rejected_total')!.get()
  return metric.values.find((v) => v.labels.topic === labels.topic && v.labels.reason === labels.reason)?.value ?? 0
}

describe('InboundValidator', () => {
  it('returns the decoded message for a valid payload', () => {
    expect(validator.accept('mirrormesh/nodes/kitchen/heartbeat', Buffer.from(JSON.stringify(heartbeat)))).toEqual({
      ok: true, name: 'nodeHeartbeat', params: { node: 'kitchen' }, data: heartbeat,
    })
    expect(lines).toEqual([])
  })

  it('drops and counts bad payloads by topic kind and reason', async () => {
    expect(validator.accept('mirrormesh/nodes/kitchen/heartbeat', Buffer.from('nope'))).toBeUndefined()
    expect(validator.accept('mirrormesh/nodes/hall/heartbeat', Buffer.from('nope'))).toBeUndefined()
    expect(validator.accept('mirrormesh/nodes/hall/status', Buffer.from('sleeping'))).toBeUndefined()
    expect(validator.accept('mirrormesh/bogus', Buffer.from('x'))).toBeUndefined()
    await expect(rejected({ topic: 'nodeHeartbeat', reason: 'not_json' })).resolves.toBe(2)
    await expect(rejected({ topic: 'nodeStatus', reason: 'schema' })).resolves.toBe(1)
    await expect(rejected({ topic: 'unknown', reason: 'unknown_topic' })).resolves.toBe(1)
    const text = await registry.metrics()
    expect(text).toContain('mirrormesh_payload_rejected_total{topic="nodeHeartbeat",reason="not_json"} 2')
  })

  it('shares the counter when a second validator uses the same registry', async () => {
    const other = new InboundValidator('mirrormesh', registry, createLogger({ name: 'test', level: 'silent' }))
    other.accept('mirrormesh/nodes/kitchen/heartbeat', Buffer.from('nope'))
    validator.accept('mirrormesh/nodes/kitchen/heartbeat', Buffer.from('nope'))
    await expect(rejected({ topic: 'nodeHeartbeat', reason: 'not_json' })).resolves.toBe(2)
  })

  it('logs at most once per source per minute', () => {
    vi.useFakeTimers({ now: 1_700_000_000_000 })
    for (let i = 0; i < 5; i++) validator.accept('mirrormesh/nodes/kitchen/heartbeat', Buffer.from('nope'))
    validator.accept('mirrormesh/nodes/kitchen/status', Buffer.from('sleeping')) // same source, other topic
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatchObject({ level: 40, msg: 'payload rejected', source: 'kitchen', reason: 'not_json', bytes: 4 })

    validator.accept('mirrormesh/nodes/hall/heartbeat', Buffer.from('nope'))
    expect(lines.map((l) => l.source)).toEqual(['kitchen', 'hall'])

    vi.advanceTimersByTime(59_999)
    validator.accept('mirrormesh/nodes/kitchen/heartbeat', Buffer.from('nope'))
    expect(lines).toHaveLength(2)
    vi.advanceTimersByTime(1)
    validator.accept('mirrormesh/nodes/kitchen/heartbeat', Buffer.from('nope'))
    expect(lines.map((l) => l.source)).toEqual(['kitchen', 'hall', 'kitchen'])
  })
})
