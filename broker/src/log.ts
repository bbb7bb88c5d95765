// pino everywhere. Bindings convention: component, nodeId, turnId.
// Secret-named keys are redacted wherever they appear (top level or one level down);
// transcripts and prompts go under `pii`, redacted unless LOG_PII is on.
// On a terminal the lines are pretty-printed (pino-pretty, loaded only then: a Pi under systemd
// never pays for it); to systemd, a pipe or a test they stay JSON. LOG_FORMAT=json|pretty overrides.
import { createRequire } from 'node:module'
import { pino, type Logger, type LevelWithSilent } from 'pino'
import type { PrettyOptions } from 'pino-pretty'

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
  /** json, pretty (human-readable), or auto (default): pretty when writing to a terminal stdout. */
  format?: LogFormat | 'auto'
  /** Read for LOG_FORMAT when `format` is auto; defaults to process.env. */
  env?: Record<string, string | undefined>
}

export const logFormats = ['json', 'pretty'] as const
export type LogFormat = (typeof logFormats)[number]

/** The format a logger writes: `format`, else LOG_FORMAT, else pretty only on a terminal stdout. */
export function resolveLogFormat(opts: Pick<LoggerOptions, 'format' | 'destination' | 'env'>): LogFormat {
  if (opts.format && opts.format !== 'auto') return opts.format
  const fromEnv = (opts.env ?? process.env).LOG_FORMAT
  if (fromEnv) {
    if ((logFormats as readonly string[]).includes(fromEnv)) return fromEnv as LogFormat
    throw new Error(`LOG_FORMAT="${fromEnv}" is invalid. Fix: set LOG_FORMAT to json or pretty, or unset it (pretty on a terminal, JSON otherwise)`)
  }
  return !opts.destination && process.stdout.isTTY ? 'pretty' : 'json'
}

export function createLogger(opts: LoggerOptions): Logger {
  const pretty = resolveLogFormat(opts) === 'pretty'
  return pino({
    level: opts.level ?? 'info',
    // `name` is the process; children add `component` (registry, mqtt, broker, …).
    name: opts.name,
    // Redaction happens before a line is written, so it holds for pretty output as well.
    redact: { paths: redactPaths(opts.pii ?? false), censor: '[redacted]' },
  }, (pretty ? prettyStream(opts.destination) : opts.destination ?? pino.destination({ sync: false })) as pino.DestinationStream)
}

function prettyStream(destination: NodeJS.WritableStream | undefined): NodeJS.WritableStream {
  // Required on demand: pino-pretty and its dependencies stay unloaded in JSON mode.
  const pinoPretty = createRequire(import.meta.url)('pino-pretty') as (o: PrettyOptions) => NodeJS.WritableStream
  return pinoPretty({
    destination: destination ?? 1,
    colorize: destination ? false : process.stdout.isTTY === true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname',
    sync: !destination,
  })
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
