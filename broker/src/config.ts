// Config from environment variables, one zod schema per process.
// Each setting's key is camelCase; its env var is the UPPER_SNAKE form of the key
// (heartbeatIntervalMs -> HEARTBEAT_INTERVAL_MS). The schema's description is the doc.
import { existsSync } from 'node:fs'
import { z } from 'zod'

export type ConfigShape = Record<string, z.ZodType>

export class ConfigError extends Error {
  readonly code = 'MM_CONFIG_INVALID'
  constructor(readonly problems: string[]) {
    super(`invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n` +
      problems.map((p) => `  - ${p}`).join('\n'))
    this.name = 'ConfigError'
  }
}

export function envName(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()
}

/** A setting's env var: `.meta({ env })` on the outermost schema overrides the derived name. */
export function envOf(key: string, schema: z.ZodType): string {
  const meta = z.globalRegistry.get(schema) as { env?: string } | undefined
  return meta?.env ?? envName(key)
}

/** Booleans from env: true/false/1/0/yes/no. */
export const envBool = () => z.stringbool({ truthy: ['true', '1', 'yes', 'on'], falsy: ['false', '0', 'no', 'off'] })
/** Integer from env within [min, max]. */
export const envInt = (min: number, max: number) => z.coerce.number().int().min(min).max(max)
/** A TCP port; 0 picks a free one. */
export const envPort = () => envInt(0, 65535)

interface JsonSchemaLike {
  type?: string | string[]
  minimum?: number
  maximum?: number
  enum?: unknown[]
  default?: unknown
  description?: string
  format?: string
  anyOf?: JsonSchemaLike[]
}

function jsonSchemaOf(schema: z.ZodType): JsonSchemaLike {
  try {
    return z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchemaLike
  } catch {
    return {}
  }
}

/** Human text for what a setting accepts: "integer 100–60000", "one of: a, b". */
export function describeType(schema: z.ZodType): string {
  const js = jsonSchemaOf(schema)
  const inner = js.anyOf?.find((s) => s.type !== 'null') ?? js
  if (inner.enum) return `one of: ${inner.enum.join(', ')}`
  const type = Array.isArray(inner.type) ? inner.type.join('|') : inner.type ?? 'string'
  if (inner.minimum !== undefined && inner.maximum !== undefined) return `${type} ${inner.minimum}–${inner.maximum}`
  if (inner.minimum !== undefined) return `${type} ≥ ${inner.minimum}`
  if (inner.maximum !== undefined) return `${type} ≤ ${inner.maximum}`
  if (schema instanceof z.ZodDefault && typeof schema.def.defaultValue === 'boolean') return 'boolean'
  return type
}

export function defaultOf(schema: z.ZodType): unknown {
  if (schema instanceof z.ZodDefault) return schema.def.defaultValue
  return undefined
}

function isOptional(schema: z.ZodType): boolean {
  return schema.safeParse(undefined).success
}

export interface ConfigRow { env: string; key: string; type: string; default: string; description: string }

export function configRows(shape: ConfigShape): ConfigRow[] {
  return Object.entries(shape).map(([key, schema]) => {
    const def = defaultOf(schema)
    return {
      env: envOf(key, schema),
      key,
      type: describeType(schema),
      default: def !== undefined ? String(def) : isOptional(schema) ? '(unset)' : 'required',
      description: schema.description ?? '',
    }
  })
}

/** Markdown table of settings, for the README (generated, never hand-written). */
export function renderConfigTable(shape: ConfigShape): string {
  const rows = configRows(shape)
  const esc = (s: string) => s.replace(/\|/g, '\\|')
  return ['| variable | type | default | what it does |', '|---|---|---|---|',
    ...rows.map((r) => `| \`${r.env}\` | ${esc(r.type)} | ${r.default === '' ? '""' : r.default === 'required' || r.default === '(unset)' ? r.default : `\`${esc(r.default)}\``} | ${esc(r.description)} |`),
  ].join('\n')
}

export type Refine<T> = (cfg: T, problem: (key: string, message: string) => void) => void

/**
 * Parse settings from an env map. Collects every problem (type, range, missing,
 * conditional requirements from `refine`) and throws one ConfigError listing them all.
 * The result is frozen.
 */
export function loadConfig<S extends ConfigShape>(
  shape: S,
  env: Record<string, string | undefined>,
  refine?: Refine<{ [K in keyof S]: z.output<S[K]> }>,
): Readonly<{ [K in keyof S]: z.output<S[K]> }> {
  const problems: string[] = []
  const out: Record<string, unknown> = {}
  for (const [key, schema] of Object.entries(shape)) {
    const name = envOf(key, schema)
    const raw = env[name]
    const value = raw === '' ? undefined : raw
    const parsed = schema.safeParse(value)
    if (parsed.success) {
      out[key] = parsed.data
      continue
    }
    const why = parsed.error.issues[0]?.message ?? 'invalid value'
    const shown = value === undefined ? ' is missing' : `=${JSON.stringify(value)} is invalid (${why})`
    problems.push(`${name}${shown}. Fix: set ${name} to ${describeType(schema)}` +
      (defaultOf(schema) !== undefined ? ` or unset it for the default ${String(defaultOf(schema))}` : '') +
      (schema.description ? ` — ${schema.description}` : ''))
  }
  // Conditional checks run on what did parse, so one start-up reports every problem.
  if (refine) {
    refine(out as { [K in keyof S]: z.output<S[K]> }, (key, message) => problems.push(`${envOf(key, shape[key]!)}: ${message}`))
  }
  if (problems.length > 0) throw new ConfigError(problems)
  return Object.freeze(out) as Readonly<{ [K in keyof S]: z.output<S[K]> }>
}

/** Refinement helper: a path setting that must exist when set. */
export function requireExistingPath(cfg: Record<string, unknown>, key: string, problem: (k: string, m: string) => void): void {
  const p = cfg[key]
  if (typeof p === 'string' && p !== '' && !existsSync(p)) problem(key, `path ${JSON.stringify(p)} does not exist. Fix: point it at an existing file, or unset it.`)
}

/** Shared settings every process has. */
export const commonSettings = {
  baseTopic: z.string().regex(/^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/, 'letters, digits, _ and - in /-separated levels').default('mirrormesh')
    .describe('Base MQTT topic every mirrormesh topic lives under'),
  hubId: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'letters, digits, ., _ and -').default('main')
    .describe('Id of the hub (topics hub/{id}/…); nodes watch this hub'),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('pino log level'),
  logPii: envBool().default(false).describe('Log transcripts and prompts (the `pii` key); off in production'),
  mqttKeepaliveS: envInt(2, 600).default(10).describe('MQTT keepalive; the broker fires a silent client\'s Last Will after 1.5× this'),
}
