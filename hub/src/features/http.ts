// The HTTP API as a feature: buildApp() (routes, tested with inject) and listen here.
// Two listeners, same routes: plain HTTP on HTTP_HOST (loopback by default: local tools,
// Prometheus on the box) and, when the hub has a certificate, HTTPS on HTTPS_HOST for the LAN.
// A listener off loopback gets the LAN rule of http/auth.ts (admin token, node credentials).
import { readFile } from 'node:fs/promises'
import type { FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'
import type { Feature, Logger, Principal } from '@mirrormesh/broker'
import { buildApp, type HubApi } from '../app.js'
import { FailureLimiter, authFailuresCounter, ensureAdminToken, isLoopback, type LanAuthOptions } from '../http/auth.js'

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
    if (needsAuth) {
      lanAuth = {
        adminToken: await ensureAdminToken(opts.stateDir),
        verify: opts.verify,
        limiter: new FailureLimiter(opts.authFailuresPerMinute),
        failures: authFailuresCounter(opts.metrics),
      }
    }
    const app = buildApp(this.api, { lanAuth: isLoopback(opts.host) ? undefined : lanAuth })
    this.app = app
    this.address = await listen(app, opts.host, opts.port)
    if (opts.https) {
      const [cert, key] = await Promise.all([readFile(opts.https.certPath), readFile(opts.https.keyPath)])
      const httpsApp = buildApp(this.api, { lanAuth, https: { cert, key } })
      this.httpsApp = httpsApp
      this.httpsAddress = await listen(httpsApp, opts.https.host, opts.https.port)
    }
    opts.log.info({ http: this.address, https: this.httpsAddress ?? null, lanAuth: needsAuth }, 'http listening')
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
