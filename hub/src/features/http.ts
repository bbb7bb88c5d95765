// The HTTP API as a feature: buildApp() (routes, tested with inject) and listen here.
// Two listeners, same routes: plain HTTP on HTTP_HOST (loopback by default: local tools,
// Prometheus on the box) and, when the hub has a certificate, HTTPS on HTTPS_HOST for the LAN.
// A listener off loopback gets the LAN rule of http/auth.ts (admin token, node credentials).
import { X509Certificate } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import type { FastifyInstance } from 'fastify'
import { Gauge, type Registry } from 'prom-client'
import type { Feature, Logger, Principal } from '@mirrormesh/broker'
import { buildApp, type HubApi } from '../app.js'
import { FailureLimiter, authFailuresCounter, ensureAdminToken, isLoopback, type LanAuthOptions } from '../http/auth.js'
import { attachMqttWs, type MqttHandle } from '../http/mqtt-ws.js'

export interface HttpOptions {
  host: string
  port: number
  /** The HTTPS listener; unset: none. */
  https?: { host: string; port: number; certPath: string; keyPath: string }
  stateDir: string
  authFailuresPerMinute: number
  verify(username: string, password: string): Promise<Principal | undefined>
  metrics: Registry
  log: Logger
  /** The embedded broker's connection handler: MQTT over WebSocket at /mqtt on both listeners (the browser page). */
  mqttHandle?: () => MqttHandle | undefined
}

type Address = { host: string; port: number }

export class HttpFeature implements Feature {
  readonly name = 'http'
  /** The plain listener's app. */
  app: FastifyInstance | undefined
  httpsApp: FastifyInstance | undefined
  address: Address | undefined
  httpsAddress: Address | undefined

  constructor(private readonly opts: HttpOptions, private readonly api: HubApi) {}

  async start(): Promise<void> {
    const { opts } = this
    let lanAuth: LanAuthOptions | undefined
    const needsAuth = opts.https !== undefined || !isLoopback(opts.host)
    // Exported even without a LAN listener: one dashboard and one alert for every hub (0 here).
    const failures = authFailuresCounter(opts.metrics)
    if (needsAuth) {
      lanAuth = {
        adminToken: await ensureAdminToken(opts.stateDir),
        verify: opts.verify,
        limiter: new FailureLimiter(opts.authFailuresPerMinute),
        failures,
        log: opts.log,
      }
    }
    const app = buildApp(this.api, { lanAuth: isLoopback(opts.host) ? undefined : lanAuth })
    this.app = app
    if (opts.mqttHandle) attachMqttWs(app, opts.mqttHandle)
    this.address = await listen(app, opts.host, opts.port)
    if (opts.https) {
      const [cert, key] = await Promise.all([readFile(opts.https.certPath), readFile(opts.https.keyPath)])
      this.certLoaded(cert)
      const httpsApp = buildApp(this.api, { lanAuth, https: { cert, key } })
      this.httpsApp = httpsApp
      if (opts.mqttHandle) attachMqttWs(httpsApp, opts.mqttHandle)
      this.httpsAddress = await listen(httpsApp, opts.https.host, opts.https.port)
    }
    opts.log.info({ http: this.address, https: this.httpsAddress ?? null, lanAuth: needsAuth }, 'http listening')
  }

  /** Re-read the HTTPS certificate and key (SIGHUP after `mirrormesh tls rotate`); throws, keeping the old ones, when they cannot be read. */
  async reloadTls(): Promise<void> {
    const https = this.opts.https
    const server = this.httpsApp?.server as unknown as import('node:tls').Server | undefined
    if (!https || !server) return
    const [cert, key] = await Promise.all([readFile(https.certPath), readFile(https.keyPath)])
    server.setSecureContext({ cert, key })
    this.certLoaded(cert)
  }

  /** For an alert before the hub's certificate runs out (`mirrormesh tls rotate` re-issues it). */
  private certLoaded(pem: Buffer): void {
    const name = 'mirrormesh_tls_cert_expiry_timestamp_seconds'
    const gauge = (this.opts.metrics.getSingleMetric(name) as Gauge | undefined)
      ?? new Gauge({ name, help: 'When the certificate the hub serves (MQTT_TLS_CERT) expires, Unix seconds', registers: [this.opts.metrics] })
    const expires = new Date(new X509Certificate(pem).validTo)
    gauge.set(Math.round(expires.getTime() / 1000))
    const days = Math.floor((expires.getTime() - Date.now()) / 86_400_000)
    if (days < 30) this.opts.log.warn({ expires: expires.toISOString(), days }, 'the hub\'s TLS certificate expires soon: run `mirrormesh tls rotate`, then SIGHUP the hub')
  }

  async stop(): Promise<void> {
    await Promise.all([this.app?.close(), this.httpsApp?.close()])
  }
}

async function listen(app: FastifyInstance, host: string, port: number): Promise<Address> {
  await app.listen({ host, port })
  const addr = app.server.address()
  return { host, port: typeof addr === 'object' && addr ? addr.port : port }
}
