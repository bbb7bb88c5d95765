// The MQTT topic contract: one typed map from topic to payload. Topic builders, the
// parser, boundary validation and the ACL all derive from this table.
import { z } from 'zod'
import { nodeEvent } from './events.js'
import { replayRequest, replayResponse } from './replay.js'
import { isValidId } from './ids.js'
import { nodeCmd, nodeCmdAck } from './node-cmd.js'
import { isPrintable } from './sanitize.js'
import { isTimeZone } from './bundle.js'

export { idPattern, isValidId } from './ids.js'

export type Role = 'hub' | 'node' | 'observer' | 'automation'
export type Format = 'text' | 'json' | 'binary'

// Bounds on what comes off the wire: strings without control characters, NUL or bidi
// overrides (shown on terminals, dashboards, the mirror), numbers no real device reports.
const text = (max: number) => z.string().max(max).refine(isPrintable, 'no control, NUL or bidi-override characters')
/** 2100-01-01: a clock 9e15 ms ahead was accepted. */
const maxTs = 4_102_444_800_000
const count = z.number().int().nonnegative().max(1_000_000_000)
const ts = z.number().int().positive().max(maxTs).describe('sender wall clock, ms since epoch')
const versions = z.record(text(32), text(64))
  .refine((o) => Object.keys(o).length <= 16, 'at most 16 versions')
// v: the contract version. Within v1 changes are additive only (new optional fields): readers
// ignore unknown keys (z.object strips them), so a hub one version ahead still serves v1 nodes.
// Anything a v1 reader could misread (a field removed, retyped or required, a new enum value) is v2,
// which v1 readers drop at the boundary. README "Operations: the runbook".
const envelope = { v: z.literal(1), ts }

export const nodeModes = ['online', 'offline', 'recovering'] as const
export type NodeMode = (typeof nodeModes)[number]

/** An offline reply bundle on offer: cache/manifest (one hub), hub/{hub}/manifest (several). */
const bundleAnnounce = z.object({ ...envelope, version: text(64), sha256: z.string().regex(/^[0-9a-f]{64}$/), url: z.string().max(512).optional().describe('path of the bundle manifest on the hub\'s HTTP API'), httpPort: z.number().int().min(1).max(65535).optional().describe('port of the hub\'s HTTP API, so a node need not be told it'), httpsPort: z.number().int().min(1).max(65535).optional().describe('port of the hub\'s HTTPS API (LAN listener, node credentials); a node prefers it over httpPort') })

export const schemas = {
  nodeStatus: z.enum(['online', 'offline']),
  nodeHeartbeat: z.object({
    ...envelope,
    seq: z.number().int().nonnegative(),
    uptimeS: z.number().nonnegative().max(1e10),
    cpuPct: z.number().min(0).max(100).nullable(),
    memPct: z.number().min(0).max(100).nullable(),
    rssMb: z.number().nonnegative().max(1e7),
    temperatureC: z.number().min(-50).max(150).nullable(),
    versions,
    mode: z.enum(nodeModes),
    room: text(64).nullable().optional(),
    muted: z.boolean().optional().describe('the microphone is muted (nodes/{id}/set {"mute":true})'),
  }),
  nodePresence: z.object({ ...envelope, present: z.boolean(), since: ts, source: text(64) }),
  nodeEvents: nodeEvent,
  nodeReplayRequest: replayRequest,
  nodeReplayResponse: replayResponse,
  // Published retained by the hub from its registry; the node applies it without a restart.
  nodeConfig: z.object({
    ...envelope,
    room: text(64).nullable().optional().describe('the room this mirror is in (skills and the LLM prompt use it)'),
    name: text(64).optional().describe('a name people call the mirror by, shown on its screen'),
    wakeWord: text(64).nullable().optional().describe('wake word to listen for; null: push-to-talk only'),
    volume: z.number().int().min(0).max(100).optional().describe('playback volume, percent'),
    timeZone: text(64).refine(isTimeZone, 'not a time zone this system knows (an IANA name such as Europe/Berlin)').optional().describe('time zone the time and date skills use, online and offline; absent: the local zone of the hub (online) or the node (offline)'),
    clock: z.enum(['12h', '24h']).optional().describe('how the time is said: "2:07 PM" (12h, the default) or "14:07" (24h)'),
  }),
  nodeProbe: z.string().max(256),
  nodeCmd,
  nodeCmdAck,
  // Commands typed by people (mosquitto_pub, Home Assistant, Node-RED): v and ts may be left
  // out; a ts, when given, lets the node drop a command that arrives stale.
  nodeSet: z.strictObject({
    v: z.literal(1).optional(),
    ts: ts.optional(),
    ptt: z.boolean().optional().describe('true: start listening (button pressed); false: stop (button released)'),
    present: z.boolean().optional().describe('presence from another sensor (HA, Node-RED)'),
    mute: z.boolean().optional().describe('true: the microphone is muted (no wake word, no push-to-talk) until false'),
  }).refine((o) => o.ptt !== undefined || o.present !== undefined || o.mute !== undefined, 'give "ptt", "present" or "mute"'),
  // A typed turn (mirror keyboard, Node-RED, Home Assistant): the pipeline after ASR, replying
  // to that node as a spoken turn would. v and ts may be left out, as for nodeSet.
  nodeTurnText: z.strictObject({
    v: z.literal(1).optional(),
    ts: ts.optional(),
    text: z.string().trim().min(1).max(500).describe('what was typed'),
    user: z.string().max(64).regex(/^[\p{L}\p{N} ._-]+$/u).optional().describe('a named user: memory under user:<name> instead of the room'),
  }),
  // Online early end of turn (README "End of turn"): the hub heard a whole command and answers it;
  // the node stops streaming that turn and sends no end flag of its own.
  nodeTurnEnd: z.object({ ...envelope, turnId: z.number().int().nonnegative().max(0xffff_ffff), reason: z.enum(['early_end']) }),
  hubStatus: z.enum(['online', 'draining', 'offline']),
  hubHeartbeat: z.object({
    ...envelope,
    seq: z.number().int().nonnegative(),
    uptimeS: z.number().nonnegative().max(1e10),
    load: z.number().nonnegative().max(1e6),
    sessions: count,
    queueDepth: count,
    nodesOnline: count,
    engines: z.record(text(32), z.enum(['ok', 'degraded', 'down'])),
    versions,
    role: z.enum(['solo', 'active', 'standby']).optional().describe('HUB_ROLE: other hubs split nodes among the active ones, standbys only take over'),
    fallbacks: z.record(text(32), count).optional().describe('fallback steps this hub has taken since it started, by stage (asr, tts, llm): the sum of mirrormesh_fallback_total, for dashboards without Prometheus'),
  }),
  // Which hub serves a node (scale-out, failover): written retained by the hub that claims or hands it over.
  nodeAssign: z.object({ ...envelope, hub: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/), epoch: z.number().int().positive() }),
  health: z.object({ ...envelope, state: z.enum(['ok', 'degraded', 'down']), reason: text(256).optional() }),
  clientsOnline: z.object({
    ...envelope,
    nodes: z.array(z.object({ id: text(64), room: text(64).nullable(), since: ts, version: text(64).nullable() })),
  }),
  cacheManifest: bundleAnnounce,
  hubManifest: bundleAnnounce,
  action: z.looseObject({
    ...envelope, action: text(64), room: text(64).nullable(), state: text(64).optional(), nodeId: text(64),
    offline: z.literal(true).optional().describe('decided by a mirror while the hub was down, carried out late'),
    at: ts.optional().describe('when the mirror answered the offline turn'),
  }),
  weather: z.looseObject({ ...envelope, summary: text(128), temperatureC: z.number().min(-90).max(70).optional() }),
} as const

export interface TopicDef {
  /** Path below the base topic; `{node}`, `{hub}` and `{component}` are parameters. */
  readonly path: string
  readonly format: Format
  readonly retain: boolean
  readonly qos: 0 | 1
  readonly maxBytes: number
  /** Roles allowed to publish; `node` means only under its own id. The hub may publish anything. */
  readonly publishers: readonly Role[]
  /** Whether a node may subscribe (its own id for `{node}`, any hub/component). */
  readonly nodeReads: boolean
  readonly description: string
}

const t = (d: TopicDef) => d

export const topics = {
  nodeStatus: t({ path: 'nodes/{node}/status', format: 'text', retain: true, qos: 1, maxBytes: 16, publishers: ['node'], nodeReads: true, description: 'online / offline; Last Will sets offline' }),
  nodeHeartbeat: t({ path: 'nodes/{node}/heartbeat', format: 'json', retain: false, qos: 0, maxBytes: 4096, publishers: ['node'], nodeReads: true, description: 'seq, uptime, cpu, memory, temperature, clock, versions, mode' }),
  nodePresence: t({ path: 'nodes/{node}/presence', format: 'json', retain: true, qos: 1, maxBytes: 1024, publishers: ['node'], nodeReads: true, description: 'present, since, source' }),
  nodeAudioIn: t({ path: 'nodes/{node}/audio/in', format: 'binary', retain: false, qos: 0, maxBytes: 65536, publishers: ['node'], nodeReads: false, description: 'PCM16 16 kHz frames of the current utterance' }),
  nodeAudioOut: t({ path: 'nodes/{node}/audio/out', format: 'binary', retain: false, qos: 0, maxBytes: 65536, publishers: [], nodeReads: true, description: 'TTS frames for the node to play' }),
  nodeEvents: t({ path: 'nodes/{node}/events', format: 'json', retain: false, qos: 1, maxBytes: 65536, publishers: ['node'], nodeReads: true, description: 'transcript, reply text, turn_error, ttfa' }),
  // Request/response (zigbee2mqtt bridge style): the node replays its offline journal, the hub answers by transaction.
  nodeReplayRequest: t({ path: 'nodes/{node}/request/replay', format: 'json', retain: false, qos: 1, maxBytes: 65536, publishers: ['node'], nodeReads: false, description: 'offline journal replay: {transaction, turns:[{id, at, transcript, reply, skill?, action?}]}, at most 100 turns' }),
  nodeReplayResponse: t({ path: 'nodes/{node}/response/replay', format: 'json', retain: false, qos: 1, maxBytes: 65536, publishers: [], nodeReads: true, description: 'the hub\'s answer once kept turns are on disk: {transaction, status:"ok", data:{kept, duplicate, invalid:[{id, error}]}} or {transaction, status:"error", error}' }),
  nodeConfig: t({ path: 'nodes/{node}/config', format: 'json', retain: true, qos: 1, maxBytes: 16384, publishers: [], nodeReads: true, description: 'config pushed by the hub' }),
  nodeSet: t({ path: 'nodes/{node}/set', format: 'json', retain: false, qos: 1, maxBytes: 256, publishers: ['observer'], nodeReads: true, description: 'commands to a node: {"ptt":true|false} push-to-talk, {"present":true|false} presence, {"mute":true|false} microphone; from Node-RED/HA (observer or hub credentials)' }),
  nodeProbe: t({ path: 'nodes/{node}/probe', format: 'text', retain: false, qos: 1, maxBytes: 256, publishers: ['node'], nodeReads: true, description: 'round-trip probe used by `mirrormesh check`' }),
  // `mirrormesh node rebuild`: hub-only commands, never retained (a node must not redo one on reconnect).
  nodeCmd: t({ path: 'nodes/{node}/cmd', format: 'json', retain: false, qos: 1, maxBytes: 2048, publishers: [], nodeReads: true, description: 'hub → node: {op:"rebuild"} wipe cache, resync, re-register; {op:"identity", id, password (sealed)} become another node' }),
  nodeCmdAck: t({ path: 'nodes/{node}/cmd/ack', format: 'json', retain: false, qos: 1, maxBytes: 512, publishers: ['node'], nodeReads: false, description: 'node → hub: {transaction, op, status} once rebuilt and re-registered (under the new id for op identity)' }),
  nodeTurnText: t({ path: 'nodes/{node}/turn/text', format: 'json', retain: false, qos: 1, maxBytes: 2048, publishers: ['node', 'observer'], nodeReads: false, description: 'a typed turn for this node: {text, user?}; the reply comes as on a spoken turn (events, audio/out)' }),
  nodeTurnEnd: t({ path: 'nodes/{node}/turn/end', format: 'json', retain: false, qos: 0, maxBytes: 256, publishers: [], nodeReads: true, description: 'hub → node: {turnId, reason:"early_end"} the hub ended this turn itself (a whole command followed by a short quiet) and answers it: stop streaming it, send no end flag' }),
  nodeAssign: t({ path: 'nodes/{node}/assign', format: 'json', retain: true, qos: 1, maxBytes: 256, publishers: [], nodeReads: true, description: 'the hub serving this node: {hub, epoch}; written by the claiming hub (takeover, rebalance, hand-back), the node follows that hub\'s status and heartbeat' }),
  hubStatus: t({ path: 'hub/{hub}/status', format: 'text', retain: true, qos: 1, maxBytes: 16, publishers: [], nodeReads: true, description: 'online / draining / offline (Last Will)' }),
  hubHeartbeat: t({ path: 'hub/{hub}/heartbeat', format: 'json', retain: false, qos: 0, maxBytes: 4096, publishers: [], nodeReads: true, description: 'load, sessions, queue depth, engine health' }),
  health: t({ path: 'health/{component}', format: 'json', retain: true, qos: 1, maxBytes: 1024, publishers: [], nodeReads: true, description: 'ok / degraded / down + reason, for dashboards' }),
  clientsOnline: t({ path: 'clients/online', format: 'json', retain: true, qos: 1, maxBytes: 262144, publishers: [], nodeReads: false, description: "the hub's list of registered nodes now online" }),
  action: t({ path: 'actions/{component}', format: 'json', retain: false, qos: 1, maxBytes: 4096, publishers: [], nodeReads: false, description: 'a skill asks the house to act (light on/off): Node-RED or Home Assistant does it' }),
  weather: t({ path: 'weather/current', format: 'json', retain: true, qos: 1, maxBytes: 4096, publishers: [], nodeReads: true, description: 'last known weather (summary, temperatureC), published by Node-RED/HA for the weather skill' }),
  cacheManifest: t({ path: 'cache/manifest', format: 'json', retain: true, qos: 1, maxBytes: 4096, publishers: [], nodeReads: true, description: 'version + checksum of the offline reply bundle' }),
  hubManifest: t({ path: 'hub/{hub}/manifest', format: 'json', retain: true, qos: 1, maxBytes: 4096, publishers: [], nodeReads: true, description: 'the offline reply bundle of one hub (HUB_ROLE active/standby): a node installs the one of the hub assigned to it' }),
} as const satisfies Record<string, TopicDef>

export type TopicName = keyof typeof topics
type Schemas = typeof schemas
export type Payload<N extends TopicName> = N extends keyof Schemas ? z.output<Schemas[N]> : Buffer
export type NodeHeartbeat = Payload<'nodeHeartbeat'>
export type HubHeartbeat = Payload<'hubHeartbeat'>
export type HubState = Payload<'hubStatus'>

export interface TopicParams { node?: string; hub?: string; component?: string }


export function topicFor(base: string, name: TopicName, params: TopicParams = {}): string {
  const path = topics[name].path.replace(/\{(node|hub|component)\}/g, (_, k: keyof TopicParams) => {
    const v = params[k]
    if (v === undefined || !isValidId(v)) throw new Error(`topic ${name} needs a valid ${k} id, got ${JSON.stringify(v)}`)
    return v
  })
  return `${base}/${path}`
}

/** Subscription filter for a topic with `+` for every parameter not given. */
export function filterFor(base: string, name: TopicName, params: TopicParams = {}): string {
  return `${base}/${topics[name].path.replace(/\{(node|hub|component)\}/g, (_, k: keyof TopicParams) => params[k] ?? '+')}`
}

export interface ParsedTopic { name: TopicName; params: TopicParams }

const matchers = (Object.entries(topics) as [TopicName, TopicDef][]).map(([name, def]) => ({
  name,
  levels: def.path.split('/'),
}))

export function parseTopic(base: string, topic: string): ParsedTopic | undefined {
  if (!topic.startsWith(base + '/')) return undefined
  const levels = topic.slice(base.length + 1).split('/')
  outer: for (const m of matchers) {
    if (m.levels.length !== levels.length) continue
    const params: TopicParams = {}
    for (let i = 0; i < levels.length; i++) {
      const want = m.levels[i]!
      const got = levels[i]!
      if (want.startsWith('{')) {
        if (!isValidId(got)) continue outer
        params[want.slice(1, -1) as keyof TopicParams] = got
      } else if (want !== got) continue outer
    }
    return { name: m.name, params }
  }
  return undefined
}

export type DecodeResult =
  | { ok: true; name: TopicName; params: TopicParams; data: unknown }
  | { ok: false; name: TopicName | 'unknown'; params: TopicParams; reason: 'unknown_topic' | 'too_large' | 'not_json' | 'schema'; detail: string }

/** Validate one inbound message against the contract. Never throws. */
export function decode(base: string, topic: string, payload: Buffer): DecodeResult {
  const parsed = parseTopic(base, topic)
  if (!parsed) return { ok: false, name: 'unknown', params: {}, reason: 'unknown_topic', detail: topic }
  const def: TopicDef = topics[parsed.name]
  const fail = (reason: 'too_large' | 'not_json' | 'schema', detail: string): DecodeResult => ({ ok: false, ...parsed, reason, detail })
  if (payload.length > def.maxBytes) return fail('too_large', `${payload.length} bytes > ${def.maxBytes}`)
  if (def.format === 'binary') return { ok: true, ...parsed, data: payload }
  const schema = schemas[parsed.name as keyof Schemas]
  let value: unknown = payload.toString('utf8')
  if (def.format === 'json') {
    try {
      value = JSON.parse(value as string)
    } catch {
      return fail('not_json', 'payload is not JSON')
    }
  }
  const res = schema.safeParse(value)
  if (!res.success) {
    const issue = res.error.issues[0]
    return fail('schema', issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'invalid')
  }
  return { ok: true, ...parsed, data: res.data }
}

/** Serialize an outbound payload; validates it so we never publish what we would reject. */
export function encode<N extends TopicName>(name: N, data: Payload<N>): Buffer {
  const def: TopicDef = topics[name]
  if (def.format === 'binary') return data as Buffer
  const schema = schemas[name as keyof Schemas]
  const checked = schema.parse(data)
  return Buffer.from(def.format === 'json' ? JSON.stringify(checked) : String(checked))
}
