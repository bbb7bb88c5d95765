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
import { createAuthHooks, type InternalUser } from './auth.js'
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

  constructor(private readonly opts: EmbeddedBrokerOptions) {}

  get listening(): boolean {
    return this.tcp?.listening === true
  }

  async start(): Promise<BrokerAddress> {
    const { opts } = this
    const log = opts.log.child({ component: 'broker' })
    const hooks = createAuthHooks({ base: opts.base, store: opts.credentials, internalUsers: opts.internalUsers, registry: opts.registry, log })
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
      authenticate: hooks.authenticate,
      authorizePublish: hooks.authorizePublish,
      authorizeSubscribe: hooks.authorizeSubscribe,
    })
    this.aedes = aedes
    this.registerMetrics(aedes)
    aedes.on('clientError', (client, err) => log.debug({ clientId: client.id, err: err.message }, 'client error'))
    aedes.on('connectionError', (client, err) => log.debug({ clientId: client?.id, err: err.message }, 'connection error'))

    // Nagle + delayed ACK adds ~40 ms per small QoS 1 exchange; MQTT messages here are small and latency-bound.
    this.tcp = createNetServer({ noDelay: true }, (socket) => aedes.handle(socket))
    const port = await listen(this.tcp, opts.port, opts.host)
    this.address = { host: opts.host, port }
    if (opts.wsPort !== undefined) {
      this.http = createHttpServer((_req, res) => res.writeHead(426).end('MQTT over WebSocket only\n'))
      this.wss = new WebSocketServer({ server: this.http })
      this.wss.on('connection', (ws, req) => aedes.handle(createWebSocketStream(ws), req))
      this.address.wsPort = await listen(this.http, opts.wsPort, opts.host)
    }
    if (opts.tls) {
      this.tlsServer = createTlsServer({ cert: readFileSync(opts.tls.certPath), key: readFileSync(opts.tls.keyPath) }, (s) => { s.setNoDelay(true); aedes.handle(s) })
      this.address.tlsPort = await listen(this.tlsServer, opts.tls.port, opts.tls.host ?? opts.host)
    }
    this.startedAt = Date.now()
    log.info({ ...this.address, persistent: Boolean(opts.persistenceDir) }, 'broker listening')
    return this.address
  }

  async stop(): Promise<void> {
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
