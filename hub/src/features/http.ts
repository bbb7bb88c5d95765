// The HTTP API as a feature: buildApp() (routes, tested with inject) and listen here.
import type { FastifyInstance } from 'fastify'
import type { Feature } from '@mirrormesh/broker'
import { buildApp, type HubApi } from '../app.js'

export class HttpFeature implements Feature {
  readonly name = 'http'
  app: FastifyInstance | undefined
  address: { host: string; port: number } | undefined

  constructor(private readonly host: string, private readonly port: number, private readonly api: HubApi) {}

  async start(): Promise<void> {
    const app = buildApp(this.api)
    this.app = app
    await app.listen({ host: this.host, port: this.port })
    const addr = app.server.address()
    this.address = { host: this.host, port: typeof addr === 'object' && addr ? addr.port : this.port }
  }

  async stop(): Promise<void> {
    await this.app?.close()
  }
}
