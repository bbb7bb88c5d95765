// `mirrormesh hub`: load config (all problems at once), start, and stop cleanly on signals.
import { ConfigError, createLogger, systemdFromEnv } from '@mirrormesh/broker'
import { loadHubConfig } from './config.js'
import { Hub } from './hub.js'

export async function runHub(env: Record<string, string | undefined> = process.env): Promise<number> {
  let config
  try {
    config = loadHubConfig(env)
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`mirrormesh hub: ${err.message}\n`)
      return 2
    }
    throw err
  }
  const log = createLogger({ name: 'hub', level: config.logLevel, pii: config.logPii })
  const hub = new Hub(config, log, { systemd: systemdFromEnv(env, log) })
  const onSignal = (sig: NodeJS.Signals) => {
    log.info({ signal: sig }, 'signal received')
    void hub.drain(sig)
    if (hub.phase !== 'draining') void hub.stop()
  }
  process.once('SIGTERM', onSignal)
  process.once('SIGINT', onSignal)
  // After `mirrormesh tls rotate`: `systemctl reload mirrormesh-hub` (ExecReload sends SIGHUP).
  process.on('SIGHUP', () => void hub.reloadTls())
  try {
    await hub.start()
  } catch (err) {
    log.fatal({ err }, 'hub failed to start')
    await hub.stop().catch(() => undefined)
    log.flush?.()
    return 1
  }
  await hub.stopped
  log.flush?.()
  return 0
}
