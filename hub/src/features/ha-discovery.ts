// Home Assistant MQTT discovery (HA_DISCOVERY=true): every registered node appears in HA as one
// device: connectivity (its status topic, also every entity's availability), presence, last
// transcript and reply, CPU and temperature, a push-to-talk button and a mute switch (both
// publish nodes/{id}/set, which an observer credential may). Retained configs are published when
// a node is registered, emptied when it is retired, and re-sent when HA says
// homeassistant/status online (HA forgets non-retained state on restart).
import type { CredentialStore, Feature, Logger } from '@mirrormesh/broker'
import type { HubConfig } from '../config.js'
import type { NodeRegistry } from '../registry.js'
import { versions } from '../version.js'
import type { MqttFeature } from './mqtt.js'

export interface DiscoveryMessage { topic: string; payload: Record<string, unknown> }

/** How often the credential file is looked at for nodes added or removed with `mirrormesh node`. */
const SCAN_MS = 2000

/** The discovery configs of one node (HA's documented per-component discovery schema). */
export function discoveryFor(prefix: string, base: string, id: string, room: string | null): DiscoveryMessage[] {
  const t = (leaf: string) => `${base}/nodes/${id}/${leaf}`
  const device = { identifiers: [`mirrormesh_${id}`], name: `Mirror ${id}`, manufacturer: 'mirrormesh', model: 'mirror node', sw_version: versions.hub, ...(room ? { suggested_area: room } : {}) }
  const origin = { name: 'mirrormesh', sw_version: versions.hub, support_url: 'https://github.com/mirrormesh/mirrormesh' }
  const availability = [{ topic: t('status'), payload_available: 'online', payload_not_available: 'offline' }]
  // default_entity_id is `<domain>.<slug>` (HA 2025.10+, replacing object_id); a slug has no '-'.
  const common = (component: string, key: string, name: string) => ({ name, unique_id: `mirrormesh_${id}_${key}`, default_entity_id: `${component}.mirrormesh_${id.replace(/-/g, '_')}_${key}`, device, origin })
  // An event of another type keeps the sensor's state (HA's `this.state` in the template).
  const lastText = (type: string) => `{% if value_json.type == '${type}' %}{{ value_json.text[:255] }}{% else %}{{ this.state }}{% endif %}`
  const cfg = (component: string, key: string, payload: Record<string, unknown>): DiscoveryMessage => ({
    topic: `${prefix}/${component}/mirrormesh_${id}/${key}/config`, payload,
  })
  return [
    cfg('binary_sensor', 'connectivity', { ...common('binary_sensor', 'connectivity', 'Connectivity'), device_class: 'connectivity', entity_category: 'diagnostic', state_topic: t('status'), payload_on: 'online', payload_off: 'offline' }),
    cfg('binary_sensor', 'presence', { ...common('binary_sensor', 'presence', 'Presence'), availability, device_class: 'occupancy', state_topic: t('presence'), value_template: "{{ 'ON' if value_json.present else 'OFF' }}", payload_on: 'ON', payload_off: 'OFF' }),
    cfg('sensor', 'transcript', { ...common('sensor', 'transcript', 'Last transcript'), availability, icon: 'mdi:account-voice', state_topic: t('events'), value_template: lastText('transcript') }),
    cfg('sensor', 'reply', { ...common('sensor', 'reply', 'Last reply'), availability, icon: 'mdi:message-reply-text', state_topic: t('events'), value_template: lastText('reply') }),
    cfg('sensor', 'cpu', { ...common('sensor', 'cpu', 'CPU'), availability, entity_category: 'diagnostic', state_class: 'measurement', unit_of_measurement: '%', state_topic: t('heartbeat'), value_template: '{{ value_json.cpuPct }}' }),
    cfg('sensor', 'temperature', { ...common('sensor', 'temperature', 'Temperature'), availability, entity_category: 'diagnostic', device_class: 'temperature', state_class: 'measurement', unit_of_measurement: '°C', state_topic: t('heartbeat'), value_template: '{{ value_json.temperatureC }}' }),
    cfg('button', 'ptt', { ...common('button', 'ptt', 'Push to talk'), availability, icon: 'mdi:microphone-message', command_topic: t('set'), payload_press: '{"ptt":true}' }),
    cfg('switch', 'mute', { ...common('switch', 'mute', 'Mute microphone'), availability, icon: 'mdi:microphone-off', command_topic: t('set'), payload_on: '{"mute":true}', payload_off: '{"mute":false}', state_topic: t('heartbeat'), value_template: "{{ 'ON' if value_json.muted else 'OFF' }}", state_on: 'ON', state_off: 'OFF' }),
  ]
}

export class HaDiscoveryFeature implements Feature {
  readonly name = 'ha-discovery'
  /** Node ids announced now (retained configs out). */
  private readonly announced = new Set<string>()
  private timer: NodeJS.Timeout | undefined

  constructor(
    private readonly config: HubConfig,
    private readonly mqtt: MqttFeature,
    private readonly credentials: CredentialStore,
    private readonly registry: NodeRegistry,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.mqtt.onRaw(`${this.config.haDiscoveryPrefix}/status`, (p) => {
      if (p.toString() !== 'online') return
      this.log.info({ nodes: this.announced.size }, 'Home Assistant is online: re-announcing')
      void Promise.all([...this.announced].map((id) => this.announce(id)))
    })
    this.mqtt.onConnect(() => this.sync(true))
    this.timer = setInterval(() => void this.sync(false), SCAN_MS)
    this.timer.unref()
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer)
  }

  /** Registered nodes: node credentials on this hub, or (external broker: no credentials) nodes seen. */
  private async registered(): Promise<Set<string>> {
    await this.credentials.refresh().catch(() => undefined)
    const creds = this.credentials.list()
    if (creds.length > 0) return new Set(creds.filter((c) => c.role === 'node').map((c) => c.id))
    return new Set(this.registry.list().map((n) => n.id))
  }

  private async sync(all: boolean): Promise<void> {
    if (!this.mqtt.connected) return
    const now = await this.registered()
    for (const id of now) if (all || !this.announced.has(id)) await this.announce(id)
    for (const id of [...this.announced]) if (!now.has(id)) await this.retire(id)
  }

  private async announce(id: string): Promise<void> {
    const room = this.registry.get(id)?.room ?? null
    for (const m of discoveryFor(this.config.haDiscoveryPrefix, this.config.baseTopic, id, room)) {
      await this.mqtt.client?.publishRaw(m.topic, JSON.stringify(m.payload), 1, true)
    }
    if (!this.announced.has(id)) this.log.info({ nodeId: id }, 'announced to Home Assistant')
    this.announced.add(id)
  }

  private async retire(id: string): Promise<void> {
    for (const m of discoveryFor(this.config.haDiscoveryPrefix, this.config.baseTopic, id, null)) {
      await this.mqtt.client?.publishRaw(m.topic, '', 1, true)
    }
    this.announced.delete(id)
    this.log.info({ nodeId: id }, 'removed from Home Assistant')
  }
}
