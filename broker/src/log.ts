// pino everywhere. Bindings convention: component, nodeId, turnId.
// Secret-named keys are redacted wherever they appear (top level or one level down);
// transcripts and prompts go under `pii`, redacted unless LOG_PII is on.
import { pino, type Logger, type LevelWithSilent } from 'pino'

export type { Logger }

const SECRET_KEYS = ['password', 'passwd', 'secret', 'token', 'apiKey', 'key', 'authorization', 'credentials']

export function redactPaths(withPii: boolean): string[] {
  const paths = SECRET_KEYS.flatMap((k) => [k, `*.${k}`])
  if (!withPii) paths.push('pii', '*.pii')
  return paths
}

export interface LoggerOptions {
  level?: LevelWithSilent
  /** The process: hub, agent, cli. */
  name: string
  pii?: boolean
  /** Where to write; defaults to stdout. */
  destination?: NodeJS.WritableStream
}

export function createLogger(opts: LoggerOptions): Logger {
  return pino({
    level: opts.level ?? 'info',
    // `name` is the process; children add `component` (registry, mqtt, broker, …).
    name: opts.name,
    redact: { paths: redactPaths(opts.pii ?? false), censor: '[redacted]' },
  }, (opts.destination ?? pino.destination({ sync: false })) as pino.DestinationStream)
}

/** Logs at most once per `windowMs` per key (e.g. "rejected payload from node X"). */
export class LogLimiter {
  private readonly last = new Map<string, number>()
  constructor(private readonly windowMs = 60_000, private readonly maxKeys = 10_000) {}

  allow(key: string, now = Date.now()): boolean {
    const prev = this.last.get(key)
    if (prev !== undefined && now - prev < this.windowMs) return false
    if (this.last.size >= this.maxKeys) this.last.clear()
    this.last.set(key, now)
    return true
  }
}
