// Node config pushed by the hub: retained nodes/{id}/config for every configured node on
// each connect and on every change (PUT /api/nodes/:id/config).
import { join } from 'node:path'
import {
  isValidId, nodeConfigPatch,
  type ClockSettings, type CredentialStore, type Feature, type Logger, type NodeConfigResponse,
} from '@mirrormesh/broker'
import type { HubConfig } from '../config.js'
import { NodeConfigStore } from '../node-config.js'
import type { NodeRegistry } from '../registry.js'
import type { MqttFeature } from './mqtt.js'

/** Why an update was refused, for the HTTP layer to map to a status code. */
export class NodeConfigError extends Error {
  constructor(readonly code: 'unknown_node' | 'bad_config' | 'unavailable', message: string) {
    super(message)
  }
}

export class NodeConfigFeature implements Feature {
  readonly name = 'node-config'
  readonly store: NodeConfigStore
  /** False until the file is read: a PUT before (or after a failed load) must not replace the file with one entry. */
  private loaded = false

  constructor(
    config: HubConfig,
    private readonly mqtt: MqttFeature,
    private readonly credentials: CredentialStore,
    private readonly registry: NodeRegistry,
    private readonly log: Logger,
  ) {
    this.store = new NodeConfigStore(join(config.stateDir, 'node-config.json'))
  }

  async start(): Promise<void> {
    await this.store.load()
    this.loaded = true
    this.mqtt.onConnect(() => Promise.all(this.store.list().map(([id]) => this.publish(id))).then(() => undefined))
  }

  /**
   * A node is known when it has a node credential on this hub, or (external broker, where
   * the hub holds no credentials) when the registry has seen it.
   */
  async known(id: string): Promise<boolean> {
    if (!isValidId(id)) return false
    await this.credentials.refresh().catch(() => undefined) // `mirrormesh node add` may have run since
    const cred = this.credentials.list().find((c) => c.id === id)
    if (cred) return cred.role === 'node'
    return this.registry.get(id) !== undefined
  }

  async get(id: string): Promise<NodeConfigResponse> {
    this.assertLoaded()
    if (!(await this.known(id))) throw unknown(id)
    const s = this.store.get(id)
    return { id, config: s?.config ?? {}, updatedAt: s?.updatedAt ?? null }
  }

  async update(id: string, body: unknown): Promise<NodeConfigResponse> {
    this.assertLoaded()
    if (!(await this.known(id))) throw unknown(id)
    const parsed = nodeConfigPatch.safeParse(body)
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`)
      throw new NodeConfigError('bad_config', `invalid node config: ${problems.join('; ')}. Fields: room (string|null), name (string), wakeWord (string|null), volume (0-100), timeZone (IANA name, e.g. Europe/Berlin), clock (12h|24h)`)
    }
    if (Object.keys(parsed.data).length === 0) throw new NodeConfigError('bad_config', 'empty update: give at least one of room, name, wakeWord, volume, timeZone, clock')
    const s = await this.store.update(id, parsed.data)
    this.log.info({ nodeId: id, fields: Object.keys(parsed.data) }, 'node config changed')
    await this.publish(id)
    return { id, config: s.config, updatedAt: s.updatedAt }
  }

  /** How the time and date skills tell the time for this node (unset fields: the hub's zone, 12h). */
  clock(id: string): ClockSettings {
    const c = this.store.get(id)?.config
    return { ...(c?.timeZone ? { timeZone: c.timeZone } : {}), ...(c?.clock ? { clock: c.clock } : {}) }
  }

  private assertLoaded(): void {
    if (!this.loaded) throw new NodeConfigError('unavailable', `node config store not loaded (see health/node-config and /readyz); ${this.store.path} is left as it is`)
  }

  private async publish(id: string): Promise<void> {
    const s = this.store.get(id)
    if (!s || !this.mqtt.connected) return // published on the next connect
    // ts is when the config last changed, not now: a node skips a config it has already applied,
    // so a hub reconnect does not undo a volume the user changed on the mirror since.
    await this.mqtt.publish('nodeConfig', { node: id }, { v: 1, ts: s.updatedAt, ...s.config })
  }
}

function unknown(id: string): NodeConfigError {
  return new NodeConfigError('unknown_node', `no node "${id}" on this hub: add it first with \`mirrormesh node add ${id}\``)
}
