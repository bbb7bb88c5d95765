// The node's local HTTP: /healthz and /readyz, push-to-talk and presence inputs, the mirror
// screen (static app + Server-Sent Events), /metrics. buildAgentApp() is separate from
// listen() so tests use app.inject(); one plugin per concern.
import Fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify'
import type { FeatureStatus, Registry } from '@mirrormesh/broker'
import { registerScreen, type Screen, type ScreenOptions } from './screen.js'

export interface AgentAppDeps {
  /** What /healthz shows (state, hub watch, versions, features, …). */
  healthView(): object
  /** Every feature's state; /readyz is 200 only when all run and the broker is connected. */
  features(): FeatureStatus[]
  mqttConnected(): boolean
  /** Why push-to-talk cannot work now (no microphone, voice failed), or null when it can. */
  voiceProblem(): string | null
  ptt(pressed: boolean, source: string): number | null
  presence: { set(present: boolean, source: string): void }
  metrics: Registry
  screen: ScreenOptions
}

export interface AgentApp {
  app: FastifyInstance
  screen: Screen
}

export function buildAgentApp(deps: AgentAppDeps, opts: { logger?: boolean } = {}): AgentApp {
  const app = Fastify({ logger: opts.logger ?? false })
  void app.register(healthPlugin, { deps })
  void app.register(inputsPlugin, { deps })
  void app.register(metricsPlugin, { deps })
  // The screen registers on the root: '/' serves the mirror app.
  const screen = registerScreen(app, deps.screen)
  return { app, screen }
}

type Opts = { deps: AgentAppDeps }

const healthPlugin: FastifyPluginAsync<Opts> = async (app, { deps }) => {
  app.get('/healthz', async () => deps.healthView())
  app.get('/readyz', async (_req, reply) => {
    const features = deps.features()
    const failed = features.filter((f) => f.state !== 'running')
    const ready = failed.length === 0 && deps.mqttConnected()
    return reply.code(ready ? 200 : 503).send({ ready, mqttConnected: deps.mqttConnected(), features })
  })
}

const inputsPlugin: FastifyPluginAsync<Opts> = async (app, { deps }) => {
  // Push-to-talk from a button, a GPIO script or Home Assistant; {"pressed": false} releases a held button.
  app.post<{ Body: { pressed?: unknown } | undefined }>('/api/ptt', async (req, reply) => {
    const problem = deps.voiceProblem()
    if (problem) return reply.code(409).send({ error: 'no_microphone', message: problem })
    const pressed = req.body?.pressed ?? true
    if (typeof pressed !== 'boolean') return reply.code(400).send({ error: 'bad_request', message: 'body must be empty or {"pressed": true|false}' })
    return { turnId: deps.ptt(pressed, 'http') }
  })
  app.post<{ Body: { present?: unknown } | undefined }>('/api/presence', async (req, reply) => {
    if (typeof req.body?.present !== 'boolean') return reply.code(400).send({ error: 'bad_request', message: 'body must be {"present": true|false}' })
    deps.presence.set(req.body.present, 'http')
    return { present: req.body.present }
  })
}

const metricsPlugin: FastifyPluginAsync<Opts> = async (app, { deps }) => {
  app.get('/metrics', async (_req, reply) => reply.type(deps.metrics.contentType).send(await deps.metrics.metrics()))
}
