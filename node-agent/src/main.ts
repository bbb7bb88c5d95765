// `mirrormesh agent`: load config (all problems at once), start, stop cleanly on signals.
import { ConfigError, createLogger } from '@mirrormesh/broker'
import { NodeAgent } from './agent.js'
import { loadAgentConfig } from './config.js'

export async function runAgent(env: Record<string, string | undefined> = process.env): Promise<number> {
  let config
  try {
    config = loadAgentConfig(env)
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`mirrormesh agent: ${err.message}\n`)
      return 2
    }
    throw err
  }
  const log = createLogger({ name: 'agent', level: config.logLevel, pii: config.logPii }).child({ nodeId: config.nodeId })
  const agent = new NodeAgent(config, log)
  let stop!: () => void
  const stopped = new Promise<void>((r) => { stop = r })
  const onSignal = (signal: NodeJS.Signals) => {
    log.info({ signal }, 'signal received')
    agent.stop().finally(stop)
  }
  process.once('SIGTERM', onSignal)
  process.once('SIGINT', onSignal)
  try {
    await agent.start()
  } catch (err) {
    log.fatal({ err }, 'node agent failed to start')
    await agent.stop().catch(() => undefined)
    return 1
  }
  await stopped
  return 0
}
