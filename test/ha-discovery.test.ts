// Home Assistant MQTT discovery against a real hub (HA_DISCOVERY=true) and a real node agent.
// There is no Home Assistant here: every retained config is checked against HA's documented
// discovery schema (keys per component, required keys, device/origin blocks, availability), its
// topics against the mirrormesh contract (and that the state topics carry data from the agent),
// and the command payloads against nodes/{id}/set, published with an observer credential.
import mqtt from 'mqtt'
import { afterAll, describe, expect, it } from 'vitest'
import { decode, parseTopic, schemas, topics } from '@mirrormesh/broker'
import { addNode, cli, killAll, removeDir, startAgent, startHub, waitFor } from './support/harness.js'

const clients: mqtt.MqttClient[] = []
const dirs: string[] = []
afterAll(async () => {
  for (const c of clients) c.end(true)
  await killAll()
  for (const d of dirs) await removeDir(d)
})

// https://www.home-assistant.io/integrations/mqtt/ (entity options shared by every platform)
const common = ['availability', 'availability_mode', 'availability_template', 'availability_topic', 'device', 'origin', 'enabled_by_default', 'encoding', 'entity_category', 'entity_picture', 'icon', 'json_attributes_template', 'json_attributes_topic', 'name', 'default_entity_id', 'object_id', 'qos', 'unique_id', 'platform', 'payload_available', 'payload_not_available']
// https://www.home-assistant.io/integrations/{binary_sensor,sensor,button,switch}.mqtt/
const platform: Record<string, { keys: string[]; required: string[] }> = {
  binary_sensor: { keys: ['device_class', 'expire_after', 'force_update', 'off_delay', 'payload_off', 'payload_on', 'state_topic', 'value_template'], required: ['state_topic'] },
  sensor: { keys: ['device_class', 'expire_after', 'force_update', 'last_reset_value_template', 'options', 'suggested_display_precision', 'state_class', 'state_topic', 'unit_of_measurement', 'value_template'], required: ['state_topic'] },
  button: { keys: ['command_template', 'command_topic', 'device_class', 'payload_press', 'retain'], required: ['command_topic'] },
  switch: { keys: ['command_template', 'command_topic', 'device_class', 'optimistic', 'payload_off', 'payload_on', 'retain', 'state_off', 'state_on', 'state_topic', 'value_template'], required: ['command_topic'] },
}
const deviceKeys = ['configuration_url', 'connections', 'hw_version', 'identifiers', 'manufacturer', 'model', 'model_id', 'name', 'serial_number', 'suggested_area', 'sw_version', 'via_device']
const originKeys = ['name', 'sw_version', 'support_url']
const deviceClasses: Record<string, string[]> = { binary_sensor: ['connectivity', 'occupancy', 'presence', 'motion'], sensor: ['temperature'], switch: ['outlet', 'switch'] }

type Config = Record<string, unknown> & { device: Record<string, unknown>; origin: Record<string, unknown> }

function connect(url: string, username: string, password: string): Promise<mqtt.MqttClient> {
  // Client ids are pinned to the credential's username (README "Security"): as HA must be set up.
  const c = mqtt.connect(url, { username, password, clientId: `${username}-${Math.random().toString(16).slice(2, 10)}`, reconnectPeriod: 0, connectTimeout: 5000 })
  clients.push(c)
  return new Promise((resolve, reject) => { c.once('connect', () => resolve(c)); c.once('error', reject) })
}

describe('Home Assistant MQTT discovery', () => {
  it('announces each node as one device with documented configs; removes it when retired; re-announces on HA birth', async () => {
    const hub = await startHub({ env: { HA_DISCOVERY: 'true' }, timeoutMs: 40_000 })
    dirs.push(hub.stateDir)
    const ha = await connect(hub.mqttUrl, 'ha', await addNode(hub.stateDir, 'ha', 'observer'))
    const seen: Array<{ topic: string; payload: string }> = []
    ha.on('message', (topic, p) => { if (topic.startsWith('homeassistant/')) seen.push({ topic, payload: p.toString() }) })
    await ha.subscribeAsync('homeassistant/#')
    const pw = await addNode(hub.stateDir, 'kitchen')
    const configsOf = (id: string) => seen.filter((m) => m.topic.includes(`/mirrormesh_${id}/`))
    await waitFor(() => configsOf('kitchen').length >= 8, { timeoutMs: 30_000, what: 'discovery configs for kitchen' }).catch((err: Error) => { throw new Error(`${err.message}\n${hub.out.text.slice(-3000)}`) })
    const configs = new Map(configsOf('kitchen').map((m) => [m.topic, JSON.parse(m.payload) as Config]))
    expect([...configs.keys()].sort()).toEqual([
      'homeassistant/binary_sensor/mirrormesh_kitchen/connectivity/config', 'homeassistant/binary_sensor/mirrormesh_kitchen/presence/config',
      'homeassistant/button/mirrormesh_kitchen/ptt/config', 'homeassistant/sensor/mirrormesh_kitchen/cpu/config', 'homeassistant/sensor/mirrormesh_kitchen/reply/config',
      'homeassistant/sensor/mirrormesh_kitchen/temperature/config', 'homeassistant/sensor/mirrormesh_kitchen/transcript/config', 'homeassistant/switch/mirrormesh_kitchen/mute/config',
    ])

    const agent = await startAgent({ nodeId: 'kitchen', mqttUrl: hub.mqttUrl, password: pw, env: { MIRRORMESH_STATE_DIR: hub.stateDir + '/agent', HEARTBEAT_INTERVAL_MS: '300' } })
    dirs.push(hub.stateDir + '/agent')
    const data = new Map<string, string>()
    ha.on('message', (topic, p) => { if (topic.startsWith('mirrormesh/')) data.set(topic, p.toString()) })
    await ha.subscribeAsync(['mirrormesh/nodes/kitchen/status', 'mirrormesh/nodes/kitchen/heartbeat'])
    await agent.waitState('online', 15_000)
    await waitFor(() => data.has('mirrormesh/nodes/kitchen/heartbeat') && data.get('mirrormesh/nodes/kitchen/status') === 'online', { what: 'status and heartbeat from the agent' })

    const uniqueIds = new Set<string>()
    const commands: Array<{ topic: string; payload: string }> = []
    for (const [topic, c] of configs) {
      const component = topic.split('/')[1]!
      const spec = platform[component]!
      // Only documented keys, the required ones present.
      for (const k of Object.keys(c)) expect([...common, ...spec.keys], `${topic}: ${k}`).toContain(k)
      for (const k of spec.required) expect(c[k], `${topic}: ${k}`).toBeTypeOf('string')
      expect(c.unique_id).toMatch(/^[a-z0-9_]+$/)
      expect(uniqueIds.has(c.unique_id as string)).toBe(false)
      uniqueIds.add(c.unique_id as string)
      expect(c.default_entity_id).toBe(`${component}.${c.unique_id as string}`)
      if (c.entity_category !== undefined) expect(['config', 'diagnostic']).toContain(c.entity_category)
      if (c.device_class !== undefined) expect(deviceClasses[component]).toContain(c.device_class)
      // One device per node: the same identifiers on every entity.
      for (const k of Object.keys(c.device)) expect(deviceKeys).toContain(k)
      expect(c.device.identifiers).toEqual(['mirrormesh_kitchen'])
      for (const k of Object.keys(c.origin)) expect(originKeys).toContain(k)
      expect(c.origin.name).toBe('mirrormesh')
      // Availability: the node's retained status, with the payloads it really publishes.
      if (c.availability !== undefined) {
        expect(c.availability).toEqual([{ topic: 'mirrormesh/nodes/kitchen/status', payload_available: 'online', payload_not_available: 'offline' }])
      }
      for (const key of ['state_topic', 'command_topic'] as const) {
        const t = c[key] as string | undefined
        if (t === undefined) continue
        const parsed = parseTopic('mirrormesh', t)
        expect(parsed, `${topic}: ${key} ${t} is a contract topic`).toBeDefined()
        expect(parsed!.params.node).toBe('kitchen')
        if (key === 'command_topic') expect(parsed!.name).toBe('nodeSet')
        // Every field a template reads exists in that topic's payload schema.
        const schema = schemas[parsed!.name as keyof typeof schemas] as unknown as { options?: Array<{ shape: Record<string, unknown> }>; shape?: Record<string, unknown> }
        if (key === 'state_topic') for (const [, field] of String(c.value_template ?? '').matchAll(/value_json\.(\w+)/g)) {
          const shapes = schema.shape ? [schema.shape] : (schema.options ?? []).map((o) => o.shape)
          expect(shapes.some((s) => field! in s), `${topic}: value_json.${field} in ${parsed!.name}`).toBe(true)
        }
      }
      // The state topics the agent feeds carry data now.
      const st = c.state_topic as string | undefined
      if (st?.endsWith('/status')) expect([c.payload_on, c.payload_off]).toContain(data.get(st))
      if (st?.endsWith('/heartbeat')) {
        const hb = JSON.parse(data.get(st)!) as Record<string, unknown>
        const field = /value_json\.(\w+)/.exec(String(c.value_template))![1]!
        expect(field in hb, `${field} in the agent's heartbeat`).toBe(true)
      }
      for (const k of ['payload_press', 'payload_on', 'payload_off'] as const) {
        if (c.command_topic && typeof c[k] === 'string') commands.push({ topic: c.command_topic as string, payload: c[k] as string })
      }
    }
    expect(topics.nodeSet.publishers).toContain('observer')
    // Every control's payload is a valid nodes/{id}/set command, and the observer credential (HA's) may send it.
    expect(commands.length).toBe(3)
    const got: string[] = []
    const node = await connect(hub.mqttUrl, 'kitchen-watch', await addNode(hub.stateDir, 'kitchen-watch', 'hub'))
    node.on('message', (_t, p) => got.push(p.toString()))
    await node.subscribeAsync('mirrormesh/nodes/kitchen/set')
    for (const cmd of commands) {
      expect(decode('mirrormesh', cmd.topic, Buffer.from(cmd.payload)).ok, cmd.payload).toBe(true)
      await ha.publishAsync(cmd.topic, cmd.payload, { qos: 1 })
    }
    await waitFor(() => got.length === 3, { what: 'observer commands delivered' })
    expect(got.sort()).toEqual(commands.map((c) => c.payload).sort())
    // The mute switch round trip: HA's payload_on mutes the mirror, whose heartbeat (the switch's state topic) says so; the screen shows it.
    const mute = configs.get('homeassistant/switch/mirrormesh_kitchen/mute/config')!
    await ha.publishAsync(mute.command_topic as string, mute.payload_on as string, { qos: 1 })
    await waitFor(() => JSON.parse(data.get('mirrormesh/nodes/kitchen/heartbeat') ?? '{}').muted === true, { what: 'heartbeat muted:true' })
    // The commands above muted and unmuted too, so a heartbeat from then may already say true: poll
    // the screen's first event (its current state) until the mute has reached it.
    const screenState = async () => {
      const screen = await fetch(`http://127.0.0.1:${agent.healthPort}/events`, { signal: AbortSignal.timeout(3000) })
      const reader = screen.body!.getReader()
      const first = new TextDecoder().decode((await reader.read()).value)
      await reader.cancel()
      return first
    }
    await waitFor(async () => (await screenState()).includes('"muted":true'), { what: 'screen shows muted' })
    await ha.publishAsync(mute.command_topic as string, mute.payload_off as string, { qos: 1 })
    await waitFor(() => JSON.parse(data.get('mirrormesh/nodes/kitchen/heartbeat') ?? '{}').muted === false, { what: 'heartbeat muted:false' })

    // HA restarts: its birth message makes the hub send every config again.
    const before = configsOf('kitchen').length
    await ha.publishAsync('homeassistant/status', 'online', { qos: 1 })
    await waitFor(() => configsOf('kitchen').length >= before + 8, { what: 're-announce after homeassistant/status online' })

    // Retired: every config replaced by an empty retained payload.
    expect((await cli(['node', 'remove', 'kitchen'], { MIRRORMESH_STATE_DIR: hub.stateDir })).code).toBe(0)
    await waitFor(() => configsOf('kitchen').filter((m) => m.payload === '').length === 8, { timeoutMs: 10_000, what: 'empty configs after retire' })
    // A fresh subscriber (HA after a restart) finds nothing retained for the retired node.
    const fresh = await connect(hub.mqttUrl, 'ha', (await cli(['node', 'add', 'ha', '--role', 'observer', '--replace'], { MIRRORMESH_STATE_DIR: hub.stateDir })).stdout.trim().split('\n').at(-1)!)
    const retained: string[] = []
    fresh.on('message', (t, p) => { if (p.length > 0 && t.includes('mirrormesh_kitchen')) retained.push(t) })
    await fresh.subscribeAsync('homeassistant/#')
    await new Promise((r) => setTimeout(r, 500))
    expect(retained).toEqual([])
  }, 90_000)
})
