// `mirrormesh node rebuild`, hub side: send nodes/{id}/cmd, wait for the node's ack on
// nodes/{id}/cmd/ack (sent once it has wiped its cache, restarted, re-subscribed and said online).
// For a new identity: make the new credential (password sealed to the node), copy the node config,
// and only after the node confirms under its new id retire the old one: credential, retained
// topics, node config, registry entry.
import { randomUUID } from 'node:crypto'
import { generatePassword, isValidId, sealForHolder, topicFor, topics, type CredentialStore, type Feature, type Handlers, type Logger, type NodeCmd, type NodeCmdAck, type TopicName } from '@mirrormesh/broker'
import type { HubConfig } from '../config.js'
import type { NodeRegistry } from '../registry.js'
import type { MqttFeature } from './mqtt.js'
import type { NodeConfigFeature } from './node-config.js'

export class NodeAdminError extends Error {
  constructor(readonly code: 'unknown_node' | 'bad_request' | 'conflict' | 'timeout' | 'failed' | 'unavailable', message: string) {
    super(message)
  }
}

export interface RebuildResult { id: string; previousId?: string; op: 'rebuild' | 'identity'; ms: number }

interface Waiter { node: string; resolve: (ack: NodeCmdAck) => void }

export const defaultRebuildTimeoutMs = 30_000

export class NodeAdminFeature implements Feature {
  readonly name = 'node-admin'
  readonly handlers: Handlers
  private readonly waiters = new Map<string, Waiter>()
  /** Nodes with a command in flight: a second one would race the first. */
  private readonly busy = new Set<string>()

  constructor(
    private readonly config: HubConfig,
    private readonly mqtt: MqttFeature,
    private readonly credentials: CredentialStore,
    private readonly nodeConfig: NodeConfigFeature,
    private readonly registry: NodeRegistry,
    private readonly log: Logger,
  ) {
    this.handlers = {
      nodeCmdAck: (m) => {
        const w = this.waiters.get(m.data.transaction)
        // Only the node the command went to (or moved to) may answer it.
        if (w && w.node === m.params.node) w.resolve(m.data)
      },
    }
  }

  start(): void {}

  stop(): void {
    this.waiters.clear()
  }

  /** Wipe the node's cache, resync its config, re-register; resolves once it confirms. */
  async rebuild(id: string, timeoutMs = defaultRebuildTimeoutMs): Promise<RebuildResult> {
    await this.assertNode(id, { registryWillDo: true })
    return this.exclusive(id, async () => {
      const t0 = Date.now()
      const transaction = randomUUID()
      await this.command(id, id, { v: 1, ts: Date.now(), transaction, op: 'rebuild' }, timeoutMs)
      this.log.info({ nodeId: id, ms: Date.now() - t0 }, 'node rebuilt')
      return { id, op: 'rebuild', ms: Date.now() - t0 }
    })
  }

  /** Move node `id` to `newId`; the old identity is retired only after the node confirms as `newId`. */
  async moveIdentity(id: string, newId: string, timeoutMs = defaultRebuildTimeoutMs): Promise<RebuildResult> {
    if (!isValidId(newId)) throw new NodeAdminError('bad_request', `invalid new id ${JSON.stringify(newId)}: use letters, digits, '.', '_' or '-' (max 64)`)
    if (newId === id) throw new NodeAdminError('bad_request', 'the new id is the node\'s current id; use rebuild without a new identity')
    await this.assertNode(id)
    if (this.credentials.has(newId) || this.registry.get(newId)) throw new NodeAdminError('conflict', `${newId} already exists on this hub; pick another id or remove it first`)
    return this.exclusive(id, async () => {
      const t0 = Date.now()
      const oldHash = this.credentials.hashOf(id)!
      const password = generatePassword()
      await this.credentials.add(newId, 'node', { password })
      const cfg = this.nodeConfig.store.get(id)
      if (cfg) await this.nodeConfig.update(newId, cfg.config)
      const transaction = randomUUID()
      try {
        await this.command(id, newId, { v: 1, ts: Date.now(), transaction, op: 'identity', id: newId, password: sealForHolder(oldHash, password) }, timeoutMs)
      } catch (err) {
        // Not confirmed: the node keeps its old identity; take the half-made new one back.
        await this.credentials.remove(newId).catch(() => undefined)
        await this.nodeConfig.store.remove(newId).catch(() => undefined)
        await this.clearRetained(newId)
        throw err
      }
      await this.retire(id)
      this.log.info({ nodeId: newId, previousId: id, ms: Date.now() - t0 }, 'node moved to a new identity')
      return { id: newId, previousId: id, op: 'identity', ms: Date.now() - t0 }
    })
  }

  /**
   * A node with a node credential here; for a rebuild in place also one the registry has seen (an
   * external broker holds its own credentials). A new identity needs a credential this hub can make.
   */
  private async assertNode(id: string, opts: { registryWillDo?: boolean } = {}): Promise<void> {
    if (!this.mqtt.connected) throw new NodeAdminError('unavailable', 'the hub is not connected to its broker')
    await this.credentials.refresh()
    const cred = this.credentials.list().find((c) => c.id === id)
    if (cred?.role === 'node') return
    if (!cred && opts.registryWillDo && this.config.mqttUrl && this.registry.get(id)) return
    const external = this.config.mqttUrl ? ' (with an external broker, a new identity is made there: see `mirrormesh broker mosquitto-acl`)' : ''
    throw new NodeAdminError('unknown_node', `no node "${id}" with credentials on this hub${external}`)
  }

  private async exclusive<T>(id: string, fn: () => Promise<T>): Promise<T> {
    if (this.busy.has(id)) throw new NodeAdminError('conflict', `a rebuild of ${id} is already in progress`)
    this.busy.add(id)
    try {
      return await fn()
    } finally {
      this.busy.delete(id)
    }
  }

  /** Publish the command to `to`, resolve on an ok ack from `ackFrom`; timeout or error ack: NodeAdminError. */
  private async command(to: string, ackFrom: string, cmd: NodeCmd, timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    const acked = new Promise<NodeCmdAck>((resolve, reject) => {
      this.waiters.set(cmd.transaction, { node: ackFrom, resolve })
      timer = setTimeout(() => reject(new NodeAdminError('timeout', `node ${to} did not confirm the ${cmd.op} within ${Math.round(timeoutMs / 1000)} s (is it online? see mirrormesh nodes)`)), timeoutMs)
    })
    try {
      await this.mqtt.publish('nodeCmd', { node: to }, cmd)
      const ack = await acked
      if (ack.status !== 'ok') throw new NodeAdminError('failed', `node ${to} could not ${cmd.op}: ${ack.error ?? 'no reason given'}`)
    } finally {
      clearTimeout(timer)
      this.waiters.delete(cmd.transaction)
    }
  }

  /** The old identity: refused from now on, its retained topics emptied, gone from config and registry. */
  private async retire(id: string): Promise<void> {
    await this.credentials.remove(id)
    await this.clearRetained(id)
    await this.nodeConfig.store.remove(id)
    this.registry.forget(id)
  }

  /** An empty retained message deletes the broker's copy (status, presence, config, …). */
  private async clearRetained(id: string): Promise<void> {
    const client = this.mqtt.client
    if (!client?.connected) return
    const names = (Object.keys(topics) as TopicName[]).filter((n) => topics[n].retain && topics[n].path.includes('{node}'))
    await Promise.all(names.map((n) => client.publishRaw(topicFor(this.config.baseTopic, n, { node: id }), Buffer.alloc(0), 1, true).catch(() => undefined)))
  }
}
