import { describe, expect, it } from 'vitest'
import { settingsInEnv, turnRecords } from './http/debug.js'
import { LogRing } from './log-ring.js'

const line = (o: Record<string, unknown>) => JSON.stringify({ level: 30, ...o }) + '\n'

describe('LogRing', () => {
  it('keeps the last lines within its count and byte bounds, passes every line on, drops pii', () => {
    const ring = new LogRing({ capacity: 3, maxBytes: 10_000 })
    const written: string[] = []
    const dest = ring.tee({ write: (l: string) => written.push(l) })
    for (let i = 1; i <= 5; i++) dest.write(line({ time: i, msg: `m${i}`, pii: { transcript: 'hello' } }))
    dest.write('not json\n')
    expect(written).toHaveLength(6)
    expect(ring.records().map((r) => r.msg)).toEqual(['m4', 'm5'])
    expect(ring.records().some((r) => 'pii' in r)).toBe(false)

    const small = new LogRing({ capacity: 100, maxBytes: 120 })
    for (let i = 1; i <= 5; i++) small.push(line({ time: i, msg: 'x'.repeat(20) }))
    expect(small.records().map((r) => r.time)).toEqual([4, 5])
  })

  it('finds a turn by id (and node) with the records around it', () => {
    const all = [
      { time: 1000, level: 30, msg: 'old' },
      { time: 5000, level: 30, msg: 'before' },
      { time: 9000, level: 30, turnId: 7, nodeId: 'a', msg: 'turn finished' },
      { time: 9100, level: 30, turnId: 7, nodeId: 'b', msg: 'turn finished' },
      { time: 12_000, level: 30, msg: 'after' },
      { time: 30_000, level: 30, msg: 'late' },
    ]
    const r = turnRecords(all, 7, 'a', 5000)
    expect(r.records.map((x) => x.nodeId)).toEqual(['a'])
    expect(r.context.map((x) => x.msg)).toEqual(['before', 'turn finished', 'turn finished', 'after'])
    expect(turnRecords(all, 7, undefined, 0).records).toHaveLength(2)
    expect(turnRecords(all, 8, undefined, 5000)).toEqual({ records: [], context: [] })
  })
})

describe('settingsInEnv', () => {
  it('lists the names of the settings set and scrubs secret and path values, never other ones', () => {
    const env = {
      MQTT_PASSWORD: 'p4ss"word', LLM_MODEL: '/home/alice/models/x.gguf', MIRRORMESH_STATE_DIR: '/var/lib/mirrormesh',
      HTTP_PORT: '8080', LOG_LEVEL: 'info', MIRRORMESH_API_SECRET: 'abcdef', UNRELATED: 'x', MQTT_URL: 'mqtt://u:pw@broker:1883',
    }
    const { settingsSet, scrub } = settingsInEnv(env)
    expect(settingsSet).toEqual(['HTTP_PORT', 'LLM_MODEL', 'LOG_LEVEL', 'MIRRORMESH_API_SECRET', 'MIRRORMESH_STATE_DIR', 'MQTT_PASSWORD', 'MQTT_URL'])
    const text = JSON.stringify({ a: 'p4ss"word', b: 'loading /home/alice/models/x.gguf', c: '/var/lib/mirrormesh/broker-db', d: 'port 8080 info', e: 'abcdef', f: 'mqtt://u:pw@broker:1883' })
    const out = scrub(text)
    expect(JSON.parse(out)).toEqual({ a: '[MQTT_PASSWORD]', b: 'loading [LLM_MODEL]', c: '[MIRRORMESH_STATE_DIR]/broker-db', d: 'port 8080 info', e: '[MIRRORMESH_API_SECRET]', f: '[MQTT_URL]' })
  })
})
