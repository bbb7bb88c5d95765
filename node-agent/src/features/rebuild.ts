// `mirrormesh node rebuild`, node side. On nodes/{id}/cmd the node wipes its cache (the offline
// reply bundle and the cached hub config; the offline journal stays, it holds turns the hub has
// not seen yet), notes the command in STATE_DIR/rebuild-pending.json and restarts itself in-process:
// a fresh start takes its config from the hub (retained nodes/{id}/config), re-registers (status
// online, heartbeats) and fetches the bundle again (retained cache/manifest). Once connected again
// it confirms on nodes/{id}/cmd/ack. A new identity is kept in STATE_DIR/identity.json (0600), which
// the agent prefers over NODE_ID/MQTT_PASSWORD from the environment at every start.
import { readFileSync } from 'node:fs'
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { openSealed, writeAtomic, type Feature, type Handlers, type Logger, type MeshClient, type NodeCmd } from '@mirrormesh/broker'
import type { AgentConfig } from '../config.js'
import type { MqttFeature } from './mqtt.js'

interface Identity { nodeId: string; password: string; previousId: string; since: string }
interface Pending { transaction: string; op: NodeCmd['op'] }

export const identityPath = (stateDir: string) => join(stateDir, 'identity.json')
const pendingPath = (stateDir: string) => join(stateDir, 'rebuild-pending.json')

/**
 * The config with the identity the hub gave this node, when it has one (STATE_DIR/identity.json),
 * else as the environment set it; `source` says which, for the start-up log.
 */
export function withIdentity(config: AgentConfig): { config: AgentConfig; source: 'state dir' | 'environment' } {
  let id: Identity
  try {
    id = JSON.parse(readFileSync(identityPath(config.stateDir), 'utf8')) as Identity
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return { config, source: 'environment' }
    // Not the parse error's message: V8 quotes the text around the error, which holds the password.
    throw new Error(`${identityPath(config.stateDir)} is unreadable (${code ?? 'not valid JSON'}); fix or remove it to use NODE_ID/MQTT_PASSWORD`)
  }
  if (typeof id.nodeId !== 'string' || typeof id.password !== 'string') throw new Error(`${identityPath(config.stateDir)} is not a node identity; fix or remove it to use NODE_ID/MQTT_PASSWORD`)
  // The env file names the id the hub gave: the operator has caught it up (e.g. MQTT_PASSWORD from
  // `keys rotate <new id>`), so it is the truth again; otherwise a rotated key could never take.
  if (config.nodeId === id.nodeId) return { config, source: 'environment' }
  return { config: Object.freeze({ ...config, nodeId: id.nodeId, mqttUsername: id.nodeId, mqttPassword: id.password }), source: 'state dir' }
}

/** What a rebuild wipes: the offline reply bundle, the grammar built from it, the cached hub config. */
export async function wipeCache(stateDir: string): Promise<void> {
  const offline = join(stateDir, 'offline')
  for (const p of [join(stateDir, 'node-config.json'), join(offline, 'bundle'), join(offline, 'offline-grammar.gram'), join(offline, 'offline-grammar.dict')]) {
    await rm(p, { recursive: true, force: true })
  }
}

export class RebuildFeature implements Feature {
  readonly name = 'rebuild'
  readonly handlers: Handlers
  private running = false

  constructor(private readonly deps: { config: AgentConfig; client: MeshClient; mqtt: MqttFeature; restart: (reason: string) => void; log: Logger }) {
    this.handlers = { nodeCmd: (m) => void this.onCommand(m.data) }
  }

  start(): void {
    this.deps.mqtt.on('ready', () => void this.confirm())
  }

  stop(): void {}

  private async onCommand(cmd: NodeCmd): Promise<void> {
    const { config, log } = this.deps
    if (this.running) return
    this.running = true
    try {
      if (cmd.op === 'identity') {
        const password = await openSealed(config.mqttPassword, cmd.password)
        const identity: Identity = { nodeId: cmd.id, password, previousId: config.nodeId, since: new Date().toISOString() }
        await writeAtomic(identityPath(config.stateDir), JSON.stringify(identity, null, 2) + '\n', { mode: 0o600 })
      }
      await wipeCache(config.stateDir)
      await writeAtomic(pendingPath(config.stateDir), JSON.stringify({ transaction: cmd.transaction, op: cmd.op } satisfies Pending) + '\n')
      log.info({ op: cmd.op, transaction: cmd.transaction, ...(cmd.op === 'identity' ? { newId: cmd.id } : {}) }, 'rebuild: cache wiped, restarting')
      this.deps.restart(cmd.op === 'identity' ? `new identity ${cmd.id}` : 'rebuild')
    } catch (err) {
      this.running = false
      log.warn({ err: (err as Error).message, op: cmd.op }, 'rebuild failed')
      await this.ack({ transaction: cmd.transaction, op: cmd.op }, (err as Error).message.slice(0, 256)).catch(() => undefined)
    }
  }

  /** After the restart, once connected and subscribed: tell the hub the rebuild is done. */
  private async confirm(): Promise<void> {
    const file = pendingPath(this.deps.config.stateDir)
    const pending = await readFile(file, 'utf8').then((t) => JSON.parse(t) as Pending, () => undefined)
    if (!pending) return
    try {
      await this.ack(pending)
      await rm(file, { force: true })
      this.deps.log.info({ op: pending.op, transaction: pending.transaction }, 'rebuild confirmed to the hub')
    } catch (err) {
      this.deps.log.warn({ err: (err as Error).message }, 'rebuild confirmation not sent; retrying on the next connect')
    }
  }

  private ack(p: Pending, error?: string): Promise<void> {
    return this.deps.client.publish('nodeCmdAck', { node: this.deps.config.nodeId }, { v: 1, ts: Date.now(), transaction: p.transaction, op: p.op, status: error ? 'error' : 'ok', ...(error ? { error } : {}) })
  }
}
