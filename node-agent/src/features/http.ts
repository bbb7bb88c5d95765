// Serves the app built by buildAgentApp (app.ts) on HEALTH_HOST:HEALTH_PORT. Started after the
// voice loop, so /healthz answering means the node's inputs are wired.
import type { FastifyInstance } from 'fastify'
import type { Feature } from '@mirrormesh/broker'

export class HttpFeature implements Feature {
  readonly name = 'http'
  address: { host: string; port: number } | undefined

  constructor(private readonly app: FastifyInstance, private readonly listen: { host: string; port: number }) {}

  async start(): Promise<void> {
    await this.app.listen(this.listen)
    const addr = this.app.server.address()
    this.address = { host: this.listen.host, port: typeof addr === 'object' && addr ? addr.port : this.listen.port }
  }

  async stop(): Promise<void> {
    await this.app.close()
  }
}
