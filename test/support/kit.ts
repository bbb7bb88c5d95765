// A typed, in-process test kit: an embedded broker, the Hub and NodeAgent objects and
// MQTT clients in this process, on free ports, with temp state dirs, all closed by one
// close(). Faster and more direct than spawned processes (test/support/harness.ts), which
// stay for signal, fault and CLI tests.
//
//   const kit = await createKit()
//   afterEach(() => kit.close())
//   const hub = await kit.hub()                    // Hub with its embedded broker (TCP + WS)
//   const node = await kit.agent('kitchen')        // NodeAgent connected to it
//   await kit.waitFor(() => hub.registry.get('kitchen')?.state === 'online')
//
// Time as the subject: fakeClock() moves Date.now() (what the registry and state machines
// read) while timers and sockets stay real, so MQTT keeps working and the ageing loops
// run on their own short intervals.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import mqtt, { type MqttClient } from 'mqtt'
import { Registry } from 'prom-client'
import { vi } from 'vitest'
import { CredentialStore, MeshClient, createLogger, type Logger, type Role } from '@mirrormesh/broker'
import { EmbeddedBroker } from '@mirrormesh/broker/server'
import { Hub, loadHubConfig } from '@mirrormesh/hub'
import { NodeAgent, loadAgentConfig } from '@mirrormesh/node-agent'

export const BASE = 'mirrormesh'

/** Node ids every kit has credentials for; plus the observer `dash`. */
export const KIT_NODES = ['kitchen', 'hall', 'a', 'b'] as const
export type KitUser = (typeof KIT_NODES)[number] | 'dash'

export interface KitBroker {
  broker: EmbeddedBroker
  /** mqtt://127.0.0.1:<port> */
  url: string
  /** ws://127.0.0.1:<port> */
  wsUrl: string
}

export interface ConnectOptions {
  clientId?: string
  password?: string
}

export interface Kit {
  /** Passwords of KIT_NODES (role node) and `dash` (role observer). */
  readonly passwords: Readonly<Record<KitUser, string>>
  /** The credentials file every broker and hub of this kit uses. */
  readonly credentialsFile: string
  readonly log: Logger
  /** A fresh temp dir, removed by close(). */
  tempDir(prefix?: string): Promise<string>
  /** A standalone embedded broker (TCP and WebSocket on free ports, in-memory persistence). */
  broker(): Promise<KitBroker>
  /** A Hub (embedded broker on free ports, no pipeline, no bundle) started in this process. `env` overrides the hub settings. */
  hub(env?: Record<string, string>): Promise<Hub & { url: string; wsUrl: string }>
  /** A NodeAgent for `nodeId` connected to `url` (default: the last hub's broker). */
  agent(nodeId: (typeof KIT_NODES)[number], env?: Record<string, string>, url?: string): Promise<NodeAgent>
  /** A raw mqtt.js client logged in as `user` (no reconnect; ws:// URLs go over WebSocket); rejects when refused. */
  connect(url: string, user: KitUser, opts?: ConnectOptions): Promise<MqttClient>
  /** A started MeshClient (the project's own client) as `user`, resolved once connected. */
  meshClient(url: string, user: KitUser): Promise<MeshClient>
  waitFor<T>(fn: () => T | Promise<T>, opts?: { timeoutMs?: number; what?: string }): Promise<Truthy<T>>
  /** Stops everything this kit started, newest first, and removes its temp dirs. */
  close(): Promise<void>
}

/** What a truthy value of T can be. */
export type Truthy<T> = Exclude<T, false | null | undefined | 0 | ''>

const rand = () => Math.random().toString(36).slice(2, 8)

export async function waitFor<T>(fn: () => T | Promise<T>, { timeoutMs = 10_000, what = 'condition' }: { timeoutMs?: number; what?: string } = {}): Promise<Truthy<T>> {
  const end = performance.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await fn()
      if (v) return v as Truthy<T>
    } catch (err) {
      last = err
    }
    if (performance.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

export async function createKit(): Promise<Kit> {
  const cleanups: Array<() => Promise<unknown> | unknown> = []
  const dirs: string[] = []
  const tempDir = async (prefix = 'mm-kit-'): Promise<string> => {
    const d = await mkdtemp(join(tmpdir(), prefix))
    dirs.push(d)
    return d
  }
  const log = createLogger({ name: 'kit', level: (process.env.KIT_LOG_LEVEL as 'debug' | undefined) ?? 'silent' })
  const root = await tempDir()
  const credentialsFile = join(root, 'credentials.json')
  const store = new CredentialStore(credentialsFile)
  const passwords = {} as Record<KitUser, string>
  const add = async (id: KitUser, role: Role) => { passwords[id] = await store.add(id, role, { cost: 1024 }) }
  for (const id of KIT_NODES) await add(id, 'node')
  await add('dash', 'observer')
  let lastHubUrl: string | undefined

  const connect = async (url: string, user: KitUser, opts: ConnectOptions = {}): Promise<MqttClient> => {
    const isNode = (KIT_NODES as readonly string[]).includes(user)
    const c = await mqtt.connectAsync(url, {
      clientId: opts.clientId ?? (isNode ? `node-${user}/test-${rand()}` : `${user}-${rand()}`),
      username: user, password: opts.password ?? passwords[user], protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000,
    })
    c.on('error', () => undefined) // a refused publish closes the connection (aedes); tests look at the effect
    cleanups.push(() => c.endAsync(true))
    return c
  }

  const kit: Kit = {
    passwords,
    credentialsFile,
    log,
    tempDir,
    async broker() {
      const credentials = new CredentialStore(credentialsFile)
      await credentials.refresh()
      const broker = new EmbeddedBroker({ base: BASE, host: '127.0.0.1', port: 0, wsPort: 0, credentials, registry: new Registry(), log })
      const addr = await broker.start()
      cleanups.push(() => broker.stop())
      return { broker, url: `mqtt://127.0.0.1:${addr.port}`, wsUrl: `ws://127.0.0.1:${addr.wsPort}` }
    },
    async hub(env = {}) {
      const stateDir = await tempDir('mm-kit-hub-')
      const config = loadHubConfig({
        MIRRORMESH_STATE_DIR: stateDir, CREDENTIALS_FILE: credentialsFile, MQTT_HOST: '127.0.0.1', MQTT_PORT: '0', MQTT_WS_PORT: '0',
        HTTP_PORT: '0', BROKER_PERSISTENCE: 'false', PIPELINE_ENABLED: 'false', BUNDLE_ENABLED: 'false', HEARTBEAT_INTERVAL_MS: '200', NODE_STALE_MS: '1000', ...env,
      })
      const hub = new Hub(config, log.child({ process: 'hub' }))
      cleanups.push(() => hub.stop())
      await hub.start()
      const addr = hub.broker!.address!
      lastHubUrl = `mqtt://127.0.0.1:${addr.port}`
      return Object.assign(hub, { url: lastHubUrl, wsUrl: `ws://127.0.0.1:${addr.wsPort}` })
    },
    async agent(nodeId, env = {}, url = lastHubUrl) {
      if (!url) throw new Error('kit.agent: start kit.hub() first or pass a broker url')
      const config = loadAgentConfig({
        NODE_ID: nodeId, MQTT_URL: url, MQTT_PASSWORD: passwords[nodeId], MIRRORMESH_STATE_DIR: await tempDir(`mm-kit-${nodeId}-`),
        HEALTH_PORT: '0', HEARTBEAT_INTERVAL_MS: '200', HUB_HEARTBEAT_INTERVAL_MS: '200', HUB_STALE_MS: '1000', ...env,
      })
      const agent = new NodeAgent(config, log.child({ process: 'agent', nodeId }))
      cleanups.push(() => agent.stop())
      await agent.start()
      return agent
    },
    connect,
    async meshClient(url, user) {
      const isNode = (KIT_NODES as readonly string[]).includes(user)
      const client = new MeshClient({ url, base: BASE, clientId: isNode ? `node-${user}/kit-${rand()}` : `${user}-${rand()}`, username: user, password: passwords[user], log })
      cleanups.push(() => client.stop())
      const connected = new Promise<void>((resolve) => client.once('connect', () => resolve()))
      client.start()
      await connected
      return client
    },
    waitFor,
    async close() {
      for (const fn of cleanups.splice(0).reverse()) {
        try { await fn() } catch { /* already closed */ }
      }
      for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true })
    },
  }
  return kit
}

/**
 * Fakes only the clock (Date.now / new Date): what the registry and the state machines read.
 * It keeps running at real speed (shouldAdvanceTime) and advance() jumps it; timers and
 * sockets stay real, so MQTT keeps working and the ageing loops (a few hundred ms) observe
 * the jump. Call it BEFORE starting the hub or agent: they capture Date.now when built.
 * restore() is also what vi.useRealTimers() in an afterEach does.
 */
export function fakeClock(): { advance(ms: number): void; now(): number; restore(): void } {
  vi.useFakeTimers({ toFake: ['Date'], now: Date.now(), shouldAdvanceTime: true })
  return {
    advance: (ms) => vi.setSystemTime(Date.now() + ms),
    now: () => Date.now(),
    restore: () => vi.useRealTimers(),
  }
}
