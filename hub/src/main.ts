// `mirrormesh hub`: load config (all problems at once), start, and stop cleanly on signals.
import { ConfigError, createLogger, resolveLogFormat, systemdFromEnv } from '@mirrormesh/broker'
import { loadHubConfig } from './config.js'
import { settingsInEnv } from './http/debug.js'
import { formatBanner } from './banner.js'
import { Hub } from './hub.js'
import { LogRing } from './log-ring.js'

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
  // JSON lines (systemd, pipes, tests) are also kept in a ring for bug bundles; a terminal's
  // pretty output is not parseable, so there the ring stays off.
  const ring = resolveLogFormat({ env }) === 'json' ? new LogRing() : undefined
  const destination = ring?.tee(process.stdout)
  const log = createLogger({ name: 'hub', level: config.logLevel, pii: config.logPii, env, ...(destination ? { destination: destination as NodeJS.WritableStream, format: 'json' } : {}) })
  const hub = new Hub(config, log, { systemd: systemdFromEnv(env, log), debug: ring && { logs: ring, ...settingsInEnv(env) } })
  const onSignal = (sig: NodeJS.Signals) => {
    log.info({ signal: sig }, 'signal received')
    void hub.drain(sig)
    if (hub.phase !== 'draining') void hub.stop()
  }
  process.once('SIGTERM', onSignal)
  process.once('SIGINT', onSignal)
  // After `mirrormesh tls rotate`: `systemctl kill --kill-who=main -s HUP mirrormesh-hub` (or reload, with ExecReload=kill -HUP).
  process.on('SIGHUP', () => void hub.reloadTls())
  try {
    await hub.start()
  } catch (err) {
    log.fatal({ err }, 'hub failed to start')
    await hub.stop().catch(() => undefined)
    log.flush?.()
    return 1
  }
  // For a person at a terminal (`npm start`): where to talk to it and what is missing. BANNER=false: none.
  if (env.BANNER !== 'false') process.stderr.write(`${formatBanner({ http: hub.httpAddress, https: hub.httpsAddress, engines: hub.pipeline?.health() })}\n`)
  await hub.stopped
  log.flush?.()
  return 0
}
