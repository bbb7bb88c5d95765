// The node agent: retained status + Last Will, heartbeat, hub watch (state machine),
// local /healthz. start()/stop().
import { createRequire } from 'node:module'
import Fastify, { type FastifyInstance } from 'fastify'
import { Registry } from 'prom-client'
import { InboundValidator, MeshClient, filterFor, topicFor, type HubState, type Logger } from '@mirrormesh/broker'
import type { AgentConfig } from './config.js'
import { buildHeartbeat, sampleBoard, type BoardSample } from './heartbeat.js'
import { NodeStateMachine } from './state.js'

const pkg = createRequire(import.meta.url)('../package.json') as { version: string }
export const agentVersions: Record<string, string> = { agent: pkg.version, node: process.versions.node }

export class NodeAgent {
  readonly metrics = new Registry()
  readonly state: NodeStateMachine
  client: MeshClient | undefined
  health: FastifyInstance | undefined
  healthAddress: { host: string; port: number } | undefined
  private heartbeatTimer: NodeJS.Timeout | undefined
  private seq = 0
  private board: BoardSample = { cpuPct: null, memPct: null, temperatureC: null }
  private readonly startedAt = Date.now()

  constructor(readonly config: AgentConfig, private readonly log: Logger) {
    this.state = new NodeStateMachine(config.hubStaleMs)
  }

  async start(): Promise<void> {
    const { config, log } = this
    const base = config.baseTopic
    const hubParams = { hub: config.hubId }
    const validator = new InboundValidator(base, this.metrics, log.child({ component: 'inbound' }))
    this.state.on('state', (c) => {
      log.info({ from: c.from, to: c.to, reason: c.reason }, 'node state changed')
      this.publishHeartbeat() // tell the hub our mode at once
    })

    const client = new MeshClient({
      url: config.mqttUrl,
      base,
      clientId: `node-${config.nodeId}`,
      username: config.mqttUsername,
      password: config.mqttPassword,
      keepaliveS: config.mqttKeepaliveS,
      will: { name: 'nodeStatus', params: { node: config.nodeId }, payload: 'offline' },
      log: log.child({ component: 'mqtt' }),
    })
    this.client = client
    const hubStatusTopic = topicFor(base, 'hubStatus', hubParams)
    const hubHeartbeatTopic = topicFor(base, 'hubHeartbeat', hubParams)
    client.on('connect', () => void this.onConnect([hubStatusTopic, hubHeartbeatTopic, filterFor(base, 'nodeConfig', { node: config.nodeId })]))
    client.on('disconnect', () => this.state.onBrokerLost())
    client.on('message', (topic, payload) => {
      if (topic !== hubStatusTopic && topic !== hubHeartbeatTopic) {
        validator.accept(topic, payload) // validated and counted; config handling arrives with later features
        return
      }
      const msg = validator.accept(topic, payload)
      if (!msg) return
      if (msg.name === 'hubStatus') this.state.onHubStatus(msg.data as HubState)
      else if (msg.name === 'hubHeartbeat') this.state.onHubHeartbeat()
    })
    client.start()

    this.health = this.buildHealth()
    await this.health.listen({ host: config.healthHost, port: config.healthPort })
    const addr = this.health.server.address()
    this.healthAddress = { host: config.healthHost, port: typeof addr === 'object' && addr ? addr.port : config.healthPort }
    void this.refreshBoard()
    this.heartbeatTimer = setInterval(() => {
      this.publishHeartbeat()
      if (this.seq % 5 === 0) void this.refreshBoard()
    }, config.heartbeatIntervalMs)
    log.info({ nodeId: config.nodeId, health: this.healthAddress }, 'node agent started')
  }

  private async onConnect(filters: string[]): Promise<void> {
    const client = this.client!
    try {
      await client.publish('nodeStatus', { node: this.config.nodeId }, 'online')
      await client.subscribe(filters)
      this.state.onBrokerConnected()
      this.publishHeartbeat()
    } catch (err) {
      this.log.warn({ err }, 'announce/subscribe failed')
    }
  }

  private async refreshBoard(): Promise<void> {
    this.board = await sampleBoard(true)
  }

  private publishHeartbeat(): void {
    const client = this.client
    if (!client?.connected) return
    const hb = buildHeartbeat(this.seq++, this.state.state, this.board, agentVersions, this.startedAt, this.config.room ?? null)
    client.publish('nodeHeartbeat', { node: this.config.nodeId }, hb).catch(() => undefined)
  }

  healthView() {
    const s = this.state
    return {
      nodeId: this.config.nodeId,
      state: s.state,
      reason: s.reason,
      sinceMs: Date.now() - s.since,
      mqttConnected: s.brokerConnected,
      hubStatus: s.hubStatus,
      hubHeartbeatAgeMs: s.lastHubHeartbeatAt === null ? null : Date.now() - s.lastHubHeartbeatAt,
      versions: agentVersions,
    }
  }

  private buildHealth(): FastifyInstance {
    const app = Fastify({ logger: false })
    app.get('/healthz', async () => this.healthView())
    app.get('/metrics', async (_req, reply) => reply.type(this.metrics.contentType).send(await this.metrics.metrics()))
    return app
  }

  async stop(): Promise<void> {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer)
    this.state.stop()
    const statusTopic = topicFor(this.config.baseTopic, 'nodeStatus', { node: this.config.nodeId })
    await this.client?.stop([{ topic: statusTopic, payload: 'offline', qos: 1, retain: true }])
    await this.health?.close()
    this.log.info('node agent stopped')
  }
}
