// The embedded aedes broker: TCP, WebSocket, optional TLS, LevelDB persistence on disk,
// contract-derived auth/ACL, and metrics. start()/stop(); the constructor only assigns.
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net'
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls'
import { readFileSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { Aedes } from 'aedes'
import levelPersistence from 'aedes-persistence-level'
import { Level } from 'level'
import { WebSocketServer, createWebSocketStream } from 'ws'
import { Counter, Gauge, type Registry } from 'prom-client'
import type { Duplex } from 'node:stream'
import type { IncomingMessage } from 'node:http'
import { createAuthHooks, type InternalUser } from './auth.js'
import { topics } from './contract.js'
import { limitPackets } from './packet-limit.js'
import { indexRetained } from './retained.js'
import type { CredentialStore } from './credentials.js'
import type { Logger } from './log.js'

export interface EmbeddedBrokerOptions {
  base: string
  host: string
  /** MQTT over TCP; 0 picks a free port. */
  port: number
  /** MQTT over WebSocket (browsers, the mirror screen); undefined = off, 0 = free port. */
  wsPort?: number
  /** MQTT over TLS; `host` defaults to `host` above (the hub binds it to the LAN while plain TCP stays on loopback). */
  tls?: { port: number; certPath: string; keyPath: string; host?: string }
  /** LevelDB folder for retained messages, sessions and wills; undefined keeps them in memory. */
  persistenceDir?: string
  credentials: CredentialStore
  internalUsers?: InternalUser[]
  registry: Registry
  log: Logger
}

/** Largest MQTT packet before CONNECT is accepted: a CONNECT with credentials and a small will. */
export const maxPacketBeforeAuth = 64 * 1024
/** Largest after: the contract's largest payload plus a topic (up to 64 KiB) and header. */
export const maxPacketAfterAuth = Math.max(...Object.values(topics).map((t) => t.maxBytes)) + 64 * 1024 + 16

// aedes drops a message for a client when one created later has already reached it: a
// "duplicate" by broker counter, meant for clusters of brokers. In one process a retained QoS 1
// message waits for its disk write and is overtaken by later ones, so it was dropped
// (1,944 of 2,000 delivered; a hub's retained `online` lost behind its heartbeat left nodes
// offline). A single broker never sends itself duplicates: every message counts as new.
const neverDuplicate = new Proxy({} as Record<string, number>, { get: () => 0, set: () => true, deleteProperty: () => true })

export interface BrokerAddress { host: string; port: number; wsPort?: number; tlsPort?: number }

const listen = (server: NetServer | HttpServer | TlsServer, port: number, host: string) =>
  new Promise<number>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve((server.address() as AddressInfo).port)
    })
  })

const closeServer = (server: NetServer | HttpServer | TlsServer | undefined) =>
  new Promise<void>((resolve) => (server?.listening ? server.close(() => resolve()) : resolve()))

export class EmbeddedBroker {
  aedes: Aedes | undefined
  address: BrokerAddress | undefined
  private tcp: NetServer | undefined
  private http: HttpServer | undefined
  private wss: WebSocketServer | undefined
  private tlsServer: TlsServer | undefined
  private db: Level<string, Buffer> | undefined
  private startedAt = 0
  private stopHooks: (() => void) | undefined

  constructor(private readonly opts: EmbeddedBrokerOptions) {}

  get listening(): boolean {
    return this.tcp?.listening === true
  }

  async start(): Promise<BrokerAddress> {
    const { opts } = this
    const log = opts.log.child({ component: 'broker' })
    const hooks = createAuthHooks({ base: opts.base, store: opts.credentials, internalUsers: opts.internalUsers, registry: opts.registry, log })
    this.stopHooks = hooks.stop
    let persistence: unknown
    if (opts.persistenceDir) {
      await mkdir(opts.persistenceDir, { recursive: true })
      this.db = new Level<string, Buffer>(opts.persistenceDir, { valueEncoding: 'buffer' })
      await this.db.open()
      persistence = indexRetained(levelPersistence(this.db) as Parameters<typeof indexRetained>[0])
    }
    const aedes = await Aedes.createBroker({
      persistence,
      drainTimeout: 5_000,
      connectTimeout: 10_000,
      preConnect: hooks.preConnect,
      authenticate: hooks.authenticate,
      authorizePublish: hooks.authorizePublish,
      authorizeSubscribe: hooks.authorizeSubscribe,
    })
    this.aedes = aedes
    this.registerMetrics(aedes)
    aedes.on('clientError', (client, err) => log.debug({ clientId: client.id, err: err.message }, 'client error'))
    aedes.on('connectionError', (client, err) => log.debug({ clientId: client?.id, err: err.message }, 'connection error'))

    // aedes sends CONNACK before it marks the client connected (it first replays the session's
    // queue), so a client that published on CONNACK met the pre-CONNECT limit: an audio frame
    // right after a reconnect was cut off. Its documented connackSent event (sent only for an
    // accepted CONNECT) marks the moment the client is authenticated.
    const acked = new WeakSet<object>()
    aedes.on('connackSent', (_packet, client) => { acked.add(client) })

    // Every listener goes through the same packet-size guard and the same per-client setup.
    const handle = (conn: Duplex, req?: IncomingMessage) => {
      // The guard is made before the aedes client it asks about (authenticated yet?).
      const ref: { client?: ReturnType<Aedes['handle']> } = {}
      const authed = () => ref.client !== undefined && (ref.client.connected || acked.has(ref.client))
      const limited = limitPackets(conn, () => (authed() ? maxPacketAfterAuth : maxPacketBeforeAuth),
        (size) => hooks.countOversizedPacket(ref.client, size), req?.socket.remoteAddress)
      ref.client = aedes.handle(limited, req)
      ;(ref.client as unknown as { duplicates: Record<string, number> }).duplicates = neverDuplicate
    }
    // Nagle + delayed ACK adds ~40 ms per small QoS 1 exchange; MQTT messages here are small and latency-bound.
    this.tcp = createNetServer({ noDelay: true }, (socket) => handle(socket))
    const port = await listen(this.tcp, opts.port, opts.host)
    this.address = { host: opts.host, port }
    if (opts.wsPort !== undefined) {
      this.http = createHttpServer((_req, res) => res.writeHead(426).end('MQTT over WebSocket only\n'))
      // maxPayload: ws would otherwise buffer a 100 MB frame before the packet guard sees it.
      this.wss = new WebSocketServer({ server: this.http, maxPayload: maxPacketAfterAuth + 8 })
      this.wss.on('connection', (ws, req) => handle(createWebSocketStream(ws), req))
      this.address.wsPort = await listen(this.http, opts.wsPort, opts.host)
    }
    if (opts.tls) {
      this.tlsServer = createTlsServer({ cert: readFileSync(opts.tls.certPath), key: readFileSync(opts.tls.keyPath) }, (s) => { s.setNoDelay(true); handle(s) })
      this.address.tlsPort = await listen(this.tlsServer, opts.tls.port, opts.tls.host ?? opts.host)
    }
    this.startedAt = Date.now()
    log.info({ ...this.address, persistent: Boolean(opts.persistenceDir) }, 'broker listening')
    return this.address
  }

  /** Re-read the TLS certificate and key (after `mirrormesh tls rotate`): new connections get them, open ones stay. */
  reloadTls(): void {
    const tls = this.opts.tls
    if (!tls || !this.tlsServer) return
    this.tlsServer.setSecureContext({ cert: readFileSync(tls.certPath), key: readFileSync(tls.keyPath) })
  }

  async stop(): Promise<void> {
    this.stopHooks?.()
    this.stopHooks = undefined
    const aedes = this.aedes
    this.aedes = undefined
    this.wss?.clients.forEach((c) => c.terminate())
    this.wss?.close()
    await Promise.all([closeServer(this.tcp), closeServer(this.http), closeServer(this.tlsServer), aedes && new Promise<void>((r) => aedes.close(() => r()))])
    if (this.db && this.db.status === 'open') await this.db.close()
    this.db = undefined
  }

  private registerMetrics(aedes: Aedes): void {
    const { registry } = this.opts
    for (const name of ['mirrormesh_broker_uptime_seconds', 'mirrormesh_broker_clients', 'mirrormesh_broker_messages_total']) registry.removeSingleMetric(name)
    const self = this
    new Gauge({ name: 'mirrormesh_broker_uptime_seconds', help: 'Seconds since the embedded broker started', registers: [registry],
      collect() { this.set(self.aedes ? (Date.now() - self.startedAt) / 1000 : 0) } })
    new Gauge({ name: 'mirrormesh_broker_clients', help: 'MQTT clients connected to the embedded broker', registers: [registry],
      collect() { this.set(self.aedes?.connectedClients ?? 0) } })
    const messages = new Counter({ name: 'mirrormesh_broker_messages_total', help: 'Messages published by clients through the embedded broker', registers: [registry] })
    aedes.on('publish', (_packet, client) => { if (client) messages.inc() })
  }
}
