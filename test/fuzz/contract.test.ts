// Property-based fuzzing of every validator on the MQTT boundary: the contract's decode()
// (all topics, all payload schemas incl. events and replay), the topic parser and the
// audio framing. Validators never throw, accept every well-formed payload and reject
// everything else with a reason that names what is wrong.
import fc from 'fast-check'
import { afterAll, describe, expect, it } from 'vitest'
import {
  AUDIO_HEADER_BYTES, AUDIO_MAX_SAMPLES, decode, decodeAudioFrame, encode, encodeAudioFrame, isPrintable, parseTopic,
  topicFor, topics, type TopicName, type TopicParams,
} from '@mirrormesh/broker'
import { fuzzParams, hostilePayload, rssMb } from '../support/fuzz.js'

afterAll(() => { console.log(`fuzz contract: test process RSS after ${rssMb()} MB`) })

const BASE = 'mirrormesh'
const reasons = ['unknown_topic', 'too_large', 'not_json', 'schema']
const audioErrors = ['short', 'magic', 'version', 'odd_length', 'too_long', 'bad_flags']

const id = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/)
// The wire's bounds (contract.ts): timestamps before 2100, strings without control characters,
// NUL or bidi overrides. Well-formed payloads stay inside them; hostile ones probe past them.
const ts = fc.integer({ min: 1, max: 4_102_444_800_000 })
const pct = fc.option(fc.double({ min: 0, max: 100, noNaN: true }), { nil: null })
const short = (n: number) => fc.string({ maxLength: n, unit: 'grapheme' }).filter((s) => s.length <= n && isPrintable(s))
const versions = fc.dictionary(short(32), short(64), { maxKeys: 16 })
const turnId = fc.integer({ min: 0, max: 0xffffffff })
const text = short(4000)
const sha = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((a) => Buffer.from(a).toString('hex'))
const env = { v: fc.constant(1 as const), ts }
const b64 = fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a).toString('base64'))
const transaction = fc.string({ minLength: 1, maxLength: 64 })

/** A well-formed payload for every topic that has a schema (binary topics take any bytes). */
const valid: Record<TopicName, fc.Arbitrary<unknown>> = {
  nodeStatus: fc.constantFrom('online', 'offline'),
  nodeHeartbeat: fc.record({ ...env, seq: fc.nat(), uptimeS: fc.double({ min: 0, max: 1e9, noNaN: true }), cpuPct: pct, memPct: pct, rssMb: fc.double({ min: 0, max: 1e6, noNaN: true }),
    temperatureC: fc.option(fc.double({ min: -50, max: 150, noNaN: true }), { nil: null }), versions, mode: fc.constantFrom('online', 'offline', 'recovering'),
    room: fc.option(short(64), { nil: null }) }),
  nodePresence: fc.record({ ...env, present: fc.boolean(), since: ts, source: short(64) }),
  nodeAudioIn: fc.uint8Array({ maxLength: 2000 }).map((a) => Buffer.from(a)),
  nodeAudioOut: fc.uint8Array({ maxLength: 2000 }).map((a) => Buffer.from(a)),
  nodeEvents: fc.oneof(
    fc.record({ ...env, type: fc.constant('transcript'), turnId, text }),
    fc.record({ ...env, type: fc.constant('reply_partial'), turnId, text }),
    fc.record({ ...env, type: fc.constant('reply'), turnId, text, kind: fc.constantFrom('skill', 'llm', 'unavailable', 'none', 'busy'), audio: fc.boolean() }),
    fc.record({ ...env, type: fc.constant('turn_error'), turnId, reason: short(64) }),
    fc.record({ ...env, type: fc.constant('busy'), turnId }),
    fc.record({ ...env, type: fc.constant('timer_done'), label: fc.option(short(128), { nil: undefined }) }, { requiredKeys: ['v', 'ts', 'type'] }),
    fc.record({ ...env, type: fc.constant('volume'), change: fc.constantFrom('up', 'down'), level: fc.integer({ min: 0, max: 100 }) }, { requiredKeys: ['v', 'ts', 'type'] }),
    fc.record({ ...env, type: fc.constant('stop') }),
    fc.record({ ...env, type: fc.constant('ttfa'), turnId, ms: fc.double({ min: 0, max: 600_000, noNaN: true }), kind: short(16) }),
    fc.record({ ...env, type: fc.constant('wake'), turnId, score: fc.double({ min: 0, max: 1, noNaN: true }) }),
  ),
  nodeReplayRequest: fc.record({ ...env, transaction: fc.string({ minLength: 1, maxLength: 64 }), turns: fc.array(fc.jsonValue({ maxDepth: 2 }), { minLength: 1, maxLength: 20 }) }),
  nodeReplayResponse: fc.oneof(
    fc.record({ ...env, transaction: fc.string({ minLength: 1, maxLength: 64 }), status: fc.constant('ok'),
      data: fc.record({ kept: fc.array(fc.string({ minLength: 1, maxLength: 128 }), { maxLength: 10 }), duplicate: fc.array(fc.string({ minLength: 1, maxLength: 128 }), { maxLength: 10 }),
        invalid: fc.array(fc.record({ id: fc.string({ minLength: 1, maxLength: 128 }), error: short(256) }), { maxLength: 10 }) }) }),
    fc.record({ ...env, transaction: fc.string({ minLength: 1, maxLength: 64 }), status: fc.constant('error'), error: short(256) }),
  ),
  nodeConfig: fc.record({ ...env, room: fc.option(short(64), { nil: null }), name: short(64), wakeWord: fc.option(short(64), { nil: null }), volume: fc.integer({ min: 0, max: 100 }), timeZone: fc.constantFrom('UTC', 'Europe/Berlin', 'Asia/Kolkata', 'America/New_York'), clock: fc.constantFrom('12h' as const, '24h' as const) }, { requiredKeys: ['v', 'ts'] }),
  nodeCmd: fc.oneof(
    fc.record({ ...env, transaction, op: fc.constant('rebuild') }),
    fc.record({ ...env, transaction, op: fc.constant('identity'), id,
      password: fc.record({ cost: fc.integer({ min: 1024, max: 1 << 20 }), salt: b64, iv: b64, data: b64, tag: b64 }) }),
  ),
  nodeCmdAck: fc.record({ ...env, transaction, op: fc.constantFrom('rebuild', 'identity'), status: fc.constantFrom('ok', 'error'), error: short(256) }, { requiredKeys: ['v', 'ts', 'transaction', 'op', 'status'] }),
  nodeSet: fc.oneof(fc.record({ ptt: fc.boolean() }), fc.record({ present: fc.boolean(), v: fc.constant(1), ts }, { requiredKeys: ['present'] }), fc.record({ mute: fc.boolean() })),
  nodeTurnText: fc.record({ v: fc.constant(1 as const), ts, text: short(200).filter((t) => t.trim().length > 0), user: fc.stringMatching(/^[a-z0-9 ._-]{1,64}$/) }, { requiredKeys: ['text'] }),
  nodeTurnEnd: fc.record({ ...env, turnId, reason: fc.constant('early_end') }),
  nodeAssign: fc.record({ ...env, hub: id, epoch: fc.integer({ min: 1, max: 2 ** 31 }) }),
  nodeProbe: short(256).filter((s) => Buffer.byteLength(s) <= 256),
  hubStatus: fc.constantFrom('online', 'draining', 'offline'),
  hubHeartbeat: fc.record({ ...env, seq: fc.nat(), uptimeS: fc.nat(), load: fc.double({ min: 0, max: 64, noNaN: true }), sessions: fc.nat(100), queueDepth: fc.nat(100), nodesOnline: fc.nat(1000),
    engines: fc.dictionary(short(32), fc.constantFrom('ok', 'degraded', 'down'), { maxKeys: 8 }), versions }),
  health: fc.record({ ...env, state: fc.constantFrom('ok', 'degraded', 'down'), reason: short(256) }, { requiredKeys: ['v', 'ts', 'state'] }),
  clientsOnline: fc.record({ ...env, nodes: fc.array(fc.record({ id, room: fc.option(short(32), { nil: null }), since: ts, version: fc.option(short(32), { nil: null }) }), { maxLength: 20 }) }),
  cacheManifest: fc.record({ ...env, version: short(64), sha256: sha, url: short(512), httpPort: fc.integer({ min: 1, max: 65535 }) }, { requiredKeys: ['v', 'ts', 'version', 'sha256'] }),
  hubManifest: fc.record({ ...env, version: short(64), sha256: sha, url: short(512), httpPort: fc.integer({ min: 1, max: 65535 }) }, { requiredKeys: ['v', 'ts', 'version', 'sha256'] }),
  action: fc.record({ ...env, action: short(64), room: fc.option(short(64), { nil: null }), state: short(64), nodeId: short(64) }, { requiredKeys: ['v', 'ts', 'action', 'room', 'nodeId'] }),
  weather: fc.record({ ...env, summary: short(128), temperatureC: fc.double({ min: -90, max: 70, noNaN: true }) }, { requiredKeys: ['v', 'ts', 'summary'] }),
}

const names = Object.keys(topics) as TopicName[]
const paramsFor = (name: TopicName): fc.Arbitrary<TopicParams> => fc.record({ node: id, hub: id, component: id }).map((p) => {
  const path = topics[name].path
  return Object.fromEntries(Object.entries(p).filter(([k]) => path.includes(`{${k}}`)))
})
const serialize = (name: TopicName, v: unknown): Buffer => {
  const f = topics[name].format
  return Buffer.isBuffer(v) ? v : Buffer.from(f === 'json' ? JSON.stringify(v) : String(v))
}

/** decode() never throws and gives either data or a reason from the contract's list with a detail. */
function checkShape(res: ReturnType<typeof decode>): void {
  if (res.ok) return
  expect(reasons).toContain(res.reason)
  expect(typeof res.detail).toBe('string')
  // unknown_topic's detail is the topic itself (MQTT never delivers an empty one).
  if (res.reason !== 'unknown_topic') expect(res.detail.length).toBeGreaterThan(0)
}

describe('contract validators (fast-check)', () => {
  for (const name of names) {
    const def = topics[name]
    it(`${name}: accepts every well-formed payload (and encode() agrees)`, () => {
      fc.assert(fc.property(paramsFor(name), valid[name], (params, value) => {
        const payload = serialize(name, value)
        fc.pre(payload.length <= def.maxBytes)
        const res = decode(BASE, topicFor(BASE, name, params), payload)
        if (!res.ok) throw new Error(`rejected a valid ${name}: ${res.reason} ${res.detail} — ${payload.toString().slice(0, 300)}`)
        expect(res.name).toBe(name)
        expect(res.params).toEqual(params)
        if (def.format !== 'binary') expect(() => encode(name, res.data as never)).not.toThrow()
      }), fuzzParams())
    })

    it(`${name}: hostile payloads never throw; rejections carry a reason`, () => {
      fc.assert(fc.property(paramsFor(name), hostilePayload, (params, payload) => {
        const res = decode(BASE, topicFor(BASE, name, params), payload)
        checkShape(res)
        if (payload.length > def.maxBytes) expect(res).toMatchObject({ ok: false, reason: 'too_large' })
      }), fuzzParams())
    })

    if (def.format === 'json') {
      it(`${name}: one field of a valid payload set to a wrong value is rejected naming that field`, () => {
        const wrong = fc.constantFrom<unknown>(null, -1, 1.5, 'x'.repeat(5000), [], {}, true, '', 2 ** 53, Number.MAX_VALUE, 'NaN')
        fc.assert(fc.property(paramsFor(name), valid[name].filter((v) => typeof v === 'object' && v !== null && Object.keys(v).length > 0), fc.nat(), wrong, (params, value, pick, bad) => {
          const obj = { ...(value as Record<string, unknown>) }
          const keys = Object.keys(obj)
          const key = keys[pick % keys.length]!
          obj[key] = bad
          const res = decode(BASE, topicFor(BASE, name, params), Buffer.from(JSON.stringify(obj)))
          checkShape(res)
          // Some substitutions are still valid (an empty string, a null where null is allowed);
          // what is refused must say which field, or that the payload was too large.
          if (!res.ok && res.reason === 'schema') expect(res.detail, JSON.stringify({ key, bad })).toMatch(/^(\(root\)|[\w.]+):/)
        }), fuzzParams())
      })
    }
  }

  // Strings that reach terminals, dashboards and the mirror: one unsafe character anywhere
  // (ESC, NUL, DEL, C1, a bidi override) and the payload is refused, naming the field.
  const unsafe = fc.constantFrom('\u0000', '\u001b[2J', '\u007f', '\u009b', '\u202e', '\u2066', '\u200f', '\ufeff', '\r\n')
  const textFields: Array<[TopicName, string]> = [['nodeHeartbeat', 'room'], ['nodePresence', 'source'], ['nodeConfig', 'name'], ['nodeConfig', 'room'],
    ['health', 'reason'], ['cacheManifest', 'version'], ['action', 'action'], ['action', 'room'], ['weather', 'summary']]
  for (const [name, field] of textFields) {
    it(`${name}.${field}: a control, NUL or bidi-override character is refused naming the field`, () => {
      fc.assert(fc.property(paramsFor(name), valid[name], short(20), unsafe, short(20), (params, value, a, bad, b) => {
        const obj = { ...(value as Record<string, unknown>), [field]: a + bad + b }
        const res = decode(BASE, topicFor(BASE, name, params), Buffer.from(JSON.stringify(obj)))
        expect(res).toMatchObject({ ok: false, reason: 'schema' })
        if (!res.ok) expect(res.detail).toMatch(new RegExp(`^${field}:.*control`))
      }), fuzzParams(0.3))
    })
  }

  it('numbers no real device reports are refused: timestamps past 2100, out-of-range gauges', () => {
    fc.assert(fc.property(valid.nodeHeartbeat, fc.constantFrom<[string, unknown]>(['ts', 9e15], ['cpuPct', 101], ['rssMb', 1e12], ['uptimeS', 1e11], ['temperatureC', 1000], ['seq', -1]), (value, [key, bad]) => {
      const res = decode(BASE, topicFor(BASE, 'nodeHeartbeat', { node: 'n1' }), Buffer.from(JSON.stringify({ ...(value as object), [key]: bad })))
      expect(res).toMatchObject({ ok: false, reason: 'schema' })
      if (!res.ok) expect(res.detail).toMatch(new RegExp(`^${key}:`))
    }), fuzzParams(0.3))
  })

  it('topic parser: arbitrary topic strings never throw; built topics parse back to the same name and ids', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 300 }), (topic) => {
      const parsed = parseTopic(BASE, `${BASE}/${topic}`)
      if (parsed) for (const v of Object.values(parsed.params)) expect(v).toMatch(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/)
      checkShape(decode(BASE, topic, Buffer.from('x')))
    }), fuzzParams())
    fc.assert(fc.property(fc.constantFrom(...names).chain((n) => fc.tuple(fc.constant(n), paramsFor(n))), ([name, params]) => {
      expect(parseTopic(BASE, topicFor(BASE, name, params))).toEqual({ name, params })
    }), fuzzParams())
  })

  it('topic builder refuses ids with wildcards, separators or control characters', () => {
    fc.assert(fc.property(fc.string({ maxLength: 70 }).filter((s) => !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(s)), (bad) => {
      expect(() => topicFor(BASE, 'nodeHeartbeat', { node: bad })).toThrow(/valid node id/)
    }), fuzzParams())
  })
})

describe('audio framing (fast-check)', () => {
  const frame = fc.record({
    flags: fc.integer({ min: 0, max: 15 }), turnId: fc.integer({ min: 0, max: 0xffffffff }), seq: fc.integer({ min: 0, max: 0xffffffff }),
    clockMs: fc.integer({ min: 0, max: 0xffffffff }), samples: fc.array(fc.integer({ min: -32768, max: 32767 }), { maxLength: AUDIO_MAX_SAMPLES }).map((a) => Int16Array.from(a)),
  })

  it('every valid frame decodes back to itself', () => {
    fc.assert(fc.property(frame, (f) => {
      const back = decodeAudioFrame(encodeAudioFrame(f))
      expect(typeof back).toBe('object')
      expect(back).toEqual(f)
    }), fuzzParams())
  })

  it('arbitrary bytes never throw: a frame within limits or one of the named errors', () => {
    fc.assert(fc.property(fc.oneof(hostilePayload, fc.uint8Array({ maxLength: 2000 }).map((a) => Buffer.concat([Buffer.from([0x4d, 0x4d, 1]), Buffer.from(a)]))), (buf) => {
      const res = decodeAudioFrame(buf)
      if (typeof res === 'string') return void expect(audioErrors).toContain(res)
      expect(res.samples.length).toBeLessThanOrEqual(AUDIO_MAX_SAMPLES)
      expect(res.flags & ~0x0f).toBe(0)
    }), fuzzParams())
  })

  it('a damaged header or body is rejected with the reason that fits', () => {
    fc.assert(fc.property(frame, fc.integer({ min: 0, max: 4 }), fc.integer({ min: 1, max: 255 }), (f, which, x) => {
      const buf = encodeAudioFrame(f)
      let want: string
      if (which === 0) { buf[0] = buf[0]! ^ x; want = 'magic' }
      else if (which === 1) { buf[2] = (1 + x) & 0xff || 2; want = 'version' }
      else if (which === 2) { buf[3] = 16 | x; want = 'bad_flags' }
      else if (which === 3) return void expect(decodeAudioFrame(Buffer.concat([buf, Buffer.from([x])]))).toBe('odd_length')
      else return void expect(decodeAudioFrame(Buffer.concat([buf.subarray(0, AUDIO_HEADER_BYTES), Buffer.alloc((AUDIO_MAX_SAMPLES + x) * 2)]))).toBe('too_long')
      expect(decodeAudioFrame(buf)).toBe(want)
    }), fuzzParams())
    expect(decodeAudioFrame(Buffer.alloc(AUDIO_HEADER_BYTES - 1))).toBe('short')
  })
})
