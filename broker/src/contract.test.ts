import { describe, expect, it } from 'vitest'
import { decode, encode, filterFor, parseTopic, topicFor, type NodeHeartbeat } from './contract.js'

const base = 'mirrormesh'

const heartbeat: NodeHeartbeat = {
  v: 1, ts: 1_700_000_000_000, seq: 3, uptimeS: 12.5, cpuPct: 7, memPct: 40, rssMb: 80,
  temperatureC: 51, versions: { agent: '0.1.0' }, mode: 'online',
}
const json = (v: unknown) => Buffer.from(JSON.stringify(v))

describe('topicFor', () => {
  it('builds a topic under the base with the id filled in', () => {
    expect(topicFor(base, 'nodeHeartbeat', { node: 'kitchen' })).toBe('mirrormesh/nodes/kitchen/heartbeat')
    expect(topicFor(base, 'hubStatus', { hub: 'main' })).toBe('mirrormesh/hub/main/status')
    expect(topicFor(base, 'clientsOnline')).toBe('mirrormesh/clients/online')
  })

  it.each([
    ['missing', undefined],
    ['empty', ''],
    ['single-level wildcard', 'a+b'],
    ['multi-level wildcard', '#'],
    ['level separator', 'kitchen/extra'],
    ['leading dot', '.hidden'],
    ['too long', 'a'.repeat(65)],
  ])('refuses an invalid id (%s)', (_what, node) => {
    expect(() => topicFor(base, 'nodeStatus', { node })).toThrow(/needs a valid node id/)
  })
})

describe('filterFor', () => {
  it('uses + for every parameter not given', () => {
    expect(filterFor(base, 'nodeStatus')).toBe('mirrormesh/nodes/+/status')
    expect(filterFor(base, 'hubHeartbeat', { hub: 'main' })).toBe('mirrormesh/hub/main/heartbeat')
  })
})

describe('parseTopic', () => {
  it('recognises node, hub, component and parameterless topics', () => {
    expect(parseTopic(base, 'mirrormesh/nodes/kitchen/status')).toEqual({ name: 'nodeStatus', params: { node: 'kitchen' } })
    expect(parseTopic(base, 'mirrormesh/nodes/hall-2/audio/in')).toEqual({ name: 'nodeAudioIn', params: { node: 'hall-2' } })
    expect(parseTopic(base, 'mirrormesh/hub/main/heartbeat')).toEqual({ name: 'hubHeartbeat', params: { hub: 'main' } })
    expect(parseTopic(base, 'mirrormesh/health/hub')).toEqual({ name: 'health', params: { component: 'hub' } })
    expect(parseTopic(base, 'mirrormesh/clients/online')).toEqual({ name: 'clientsOnline', params: {} })
  })

  it.each([
    ['wrong base', 'other/nodes/kitchen/status'],
    ['base prefix only', 'mirrormeshx/nodes/kitchen/status'],
    ['base alone', 'mirrormesh'],
    ['extra level', 'mirrormesh/nodes/kitchen/status/extra'],
    ['missing level', 'mirrormesh/nodes/kitchen'],
    ['unknown leaf', 'mirrormesh/nodes/kitchen/secrets'],
    ['+ as id', 'mirrormesh/nodes/+/status'],
    ['# as id', 'mirrormesh/nodes/#/status'],
    ['empty id', 'mirrormesh/nodes//status'],
  ])('returns undefined for %s', (_what, topic) => {
    expect(parseTopic(base, topic)).toBeUndefined()
  })

  it('works with a multi-level base', () => {
    expect(parseTopic('home/mesh', 'home/mesh/nodes/a/events')).toEqual({ name: 'nodeEvents', params: { node: 'a' } })
    expect(parseTopic('home/mesh', 'home/nodes/a/events')).toBeUndefined()
  })
})

describe('decode', () => {
  it('rejects an unknown topic', () => {
    expect(decode(base, 'mirrormesh/nope', Buffer.from('x'))).toEqual({
      ok: false, name: 'unknown', params: {}, reason: 'unknown_topic', detail: 'mirrormesh/nope',
    })
  })

  it('rejects a payload over the topic size limit before parsing it', () => {
    const res = decode(base, 'mirrormesh/nodes/kitchen/status', Buffer.from('online'.repeat(3)))
    expect(res).toMatchObject({ ok: false, name: 'nodeStatus', params: { node: 'kitchen' }, reason: 'too_large', detail: '18 bytes > 16' })
  })

  it('rejects a JSON topic whose payload is not JSON', () => {
    const res = decode(base, 'mirrormesh/nodes/kitchen/heartbeat', Buffer.from('{"v":1,'))
    expect(res).toMatchObject({ ok: false, name: 'nodeHeartbeat', reason: 'not_json' })
  })

  it('rejects a schema violation and names the field', () => {
    const res = decode(base, 'mirrormesh/nodes/kitchen/heartbeat', json({ ...heartbeat, cpuPct: 150 }))
    expect(res.ok).toBe(false)
    if (res.ok) return
    expect(res.reason).toBe('schema')
    expect(res.detail).toMatch(/^cpuPct: /)
  })

  it('reports a root-level schema violation for text topics', () => {
    const res = decode(base, 'mirrormesh/hub/main/status', Buffer.from('sleeping'))
    expect(res).toMatchObject({ ok: false, name: 'hubStatus', reason: 'schema' })
    if (!res.ok) expect(res.detail).toMatch(/^\(root\): /)
  })

  it('accepts a valid heartbeat', () => {
    expect(decode(base, 'mirrormesh/nodes/kitchen/heartbeat', json(heartbeat))).toEqual({
      ok: true, name: 'nodeHeartbeat', params: { node: 'kitchen' }, data: heartbeat,
    })
  })

  it('drops unknown keys from strict JSON topics', () => {
    const res = decode(base, 'mirrormesh/nodes/kitchen/heartbeat', json({ ...heartbeat, extra: 'x' }))
    expect(res.ok && res.data).toEqual(heartbeat)
  })

  it('passes binary payloads through untouched, still size-checked', () => {
    const pcm = Buffer.from([0xff, 0xfe, 0x00, 0x80])
    const res = decode(base, 'mirrormesh/nodes/kitchen/audio/in', pcm)
    expect(res.ok).toBe(true)
    expect(res.ok && res.data).toBe(pcm)
    expect(decode(base, 'mirrormesh/nodes/kitchen/audio/in', Buffer.alloc(65537))).toMatchObject({ ok: false, reason: 'too_large' })
  })
})

describe('offline journal replay topics', () => {
  const turn = { id: 'e1', at: 1_700_000_000_000, transcript: 'what time is it', reply: "It's 9", skill: 'clock' }
  const req = { v: 1, ts: 1_700_000_000_000, transaction: 'abc-1', turns: [turn] }

  it('parses the request and response topics with the node id', () => {
    expect(parseTopic(base, 'mirrormesh/nodes/kitchen/request/replay')).toEqual({ name: 'nodeReplayRequest', params: { node: 'kitchen' } })
    expect(parseTopic(base, 'mirrormesh/nodes/kitchen/response/replay')).toEqual({ name: 'nodeReplayResponse', params: { node: 'kitchen' } })
  })

  it('accepts a request whose turns are malformed: the hub answers each one, the batch is not dropped', () => {
    const res = decode(base, 'mirrormesh/nodes/kitchen/request/replay', json({ ...req, turns: [turn, { id: 'bad', at: 'yesterday' }, 7] }))
    expect(res.ok && (res.data as { turns: unknown[] }).turns).toHaveLength(3)
  })

  it.each([
    ['no transaction', { ...req, transaction: undefined }],
    ['empty batch', { ...req, turns: [] }],
    ['too many turns', { ...req, turns: Array.from({ length: 101 }, () => turn) }],
  ])('refuses a request with %s', (_what, payload) => {
    expect(decode(base, 'mirrormesh/nodes/kitchen/request/replay', json(payload))).toMatchObject({ ok: false, reason: 'schema' })
  })

  it('accepts ok and error responses and nothing else', () => {
    const ok = { v: 1, ts: 1_700_000_000_000, transaction: 'abc-1', status: 'ok', data: { kept: ['e1'], duplicate: [], invalid: [{ id: 'bad', error: 'at: expected number' }] } }
    const err = { v: 1, ts: 1_700_000_000_000, transaction: 'abc-1', status: 'error', error: 'disk full' }
    const topic = 'mirrormesh/nodes/kitchen/response/replay'
    expect(decode(base, topic, json(ok))).toMatchObject({ ok: true, data: ok })
    expect(decode(base, topic, json(err))).toMatchObject({ ok: true, data: err })
    expect(decode(base, topic, json({ ...ok, status: 'maybe' }))).toMatchObject({ ok: false, reason: 'schema' })
    expect(decode(base, topic, json({ ...ok, data: undefined }))).toMatchObject({ ok: false, reason: 'schema' })
  })

  it('no longer carries replayed turns or acks on the events topic', () => {
    for (const type of ['offline_turn', 'journal_ack']) {
      expect(decode(base, 'mirrormesh/nodes/kitchen/events', json({ v: 1, ts: 1_700_000_000_000, type, id: 'e1', ids: ['e1'] }))).toMatchObject({ ok: false, reason: 'schema' })
    }
  })
})

describe('encode', () => {
  it('serialises a valid payload that decode accepts again', () => {
    expect(encode('nodeStatus', 'online').toString()).toBe('online')
    const res = decode(base, 'mirrormesh/nodes/kitchen/heartbeat', encode('nodeHeartbeat', heartbeat))
    expect(res.ok && res.data).toEqual(heartbeat)
  })

  it('refuses to serialise an invalid payload', () => {
    expect(() => encode('nodeHeartbeat', { ...heartbeat, mode: 'asleep' } as unknown as NodeHeartbeat)).toThrow()
    expect(() => encode('hubStatus', 'maybe' as 'online')).toThrow()
  })
})
