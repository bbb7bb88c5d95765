// GET /api/debug/turns/:id: what `mirrormesh bundle --turn` packs for a bug report — the log
// records of that turn with the lines around them, engine health, versions, and the names
// (never the values) of the settings set. Turn ids are numbered by each node (audio frames), so
// `?node=` narrows to one node's turn.
import type { FastifyInstance } from 'fastify'
import { envOf, type LogRecord, type TurnDebugResponse } from '@mirrormesh/broker'
import type { HubApi } from '../app.js'
import { hubSettings } from '../config.js'
import type { LogRing } from '../log-ring.js'
import { notFound } from './common.js'

/** What the debug routes read: the log ring and what main.ts learnt from the environment. */
export interface DebugSource {
  logs: LogRing
  /** Names of the settings set (settingsInEnv). */
  settingsSet: string[]
  /** Replaces secret and path values of the settings set (settingsInEnv). */
  scrub(text: string): string
}

/** Beyond the hub's own settings, names an operator may have set that change its behaviour. */
const otherNames = ['LOG_FORMAT', 'NOTIFY_SOCKET', 'WATCHDOG_USEC', 'NODE_OPTIONS', 'HUB_URL', 'MIRRORMESH_ADMIN_TOKEN']
const secretName = /pass|secret|token|key|credential|auth/i
// Values that identify a machine's layout or reach a secret: paths and URLs with a user.
const sensitiveValue = (v: string) => v.includes('/') || v.includes('\\') || /:\/\/[^/]*@/.test(v)

/**
 * From the hub's environment, once at start: the names of the settings set, and a scrubber
 * that replaces the values of the secret ones (and of any set to a path or URL) with
 * `[NAME]` in anything the debug routes return — a path may hold a user name, a URL a password.
 */
export function settingsInEnv(env: Record<string, string | undefined>): Pick<DebugSource, 'settingsSet' | 'scrub'> {
  const names = new Set<string>()
  const hide: Array<[string, string]> = []
  const consider = (name: string) => {
    const v = env[name]
    if (v === undefined || v === '') return
    names.add(name)
    if (v.length < 4 || !(secretName.test(name) || sensitiveValue(v))) return
    hide.push([v, name])
    // The routes scrub JSON text: a value with quotes or backslashes appears escaped there.
    const escaped = JSON.stringify(v).slice(1, -1)
    if (escaped !== v) hide.push([escaped, name])
  }
  for (const [key, schema] of Object.entries(hubSettings)) consider(envOf(key, schema))
  for (const name of otherNames) consider(name)
  for (const name of Object.keys(env)) if (name.startsWith('MIRRORMESH_') || secretName.test(name)) consider(name)
  // Longest first, so a value that contains another is replaced whole.
  hide.sort((a, b) => b[0].length - a[0].length)
  return {
    settingsSet: [...names].sort(),
    scrub: (text) => hide.reduce((t, [v, name]) => t.split(v).join(`[${name}]`), text),
  }
}

const turnOf = (r: LogRecord) => (typeof r.turnId === 'number' ? r.turnId : undefined)

/** The records of one turn and those within `contextMs` of them (oldest first, at most `limit` of context). */
export function turnRecords(all: LogRecord[], turnId: number, nodeId: string | undefined, contextMs: number, limit = 500): Pick<TurnDebugResponse, 'records' | 'context'> {
  const records = all.filter((r) => turnOf(r) === turnId && (nodeId === undefined || r.nodeId === nodeId))
  if (!records.length) return { records, context: [] }
  const from = records[0]!.time - contextMs
  const to = records.at(-1)!.time + contextMs
  const context = all.filter((r) => r.time >= from && r.time <= to)
  return { records, context: context.length > limit ? context.slice(-limit) : context }
}

export function debugRoutes(hub: Pick<HubApi, 'debug' | 'health' | 'versions'>) {
  return async (app: FastifyInstance) => {
    app.get<{ Params: { id: string }; Querystring: { node?: string; contextMs?: number } }>('/api/debug/turns/:id', {
      schema: {
        params: { type: 'object', properties: { id: { type: 'string', pattern: '^[0-9]{1,10}$' } }, required: ['id'] },
        querystring: { type: 'object', properties: { node: { type: 'string', maxLength: 64 }, contextMs: { type: 'integer', minimum: 0, maximum: 600_000 } } },
      },
    }, async (req, reply) => {
      const debug = hub.debug
      if (!debug) return reply.code(404).send(notFound('this hub keeps no log records (LOG_FORMAT=pretty, or an embedded hub)'))
      const turnId = Number(req.params.id)
      const contextMs = req.query.contextMs ?? 10_000
      const all = debug.logs.records()
      const { records, context } = turnRecords(all, turnId, req.query.node, contextMs)
      if (!records.length) {
        const since = all[0] ? new Date(all[0].time).toISOString() : 'nothing yet'
        return reply.code(404).send(notFound(`no log record carries turn ${turnId}${req.query.node ? ` of node ${req.query.node}` : ''}; ` +
          `the hub keeps its last ${debug.logs.capacity} lines (oldest: ${since}) and forgets them on restart`))
      }
      const body: TurnDebugResponse = {
        turnId, nodeId: req.query.node ?? null, records, context, contextMs,
        ring: { capacity: debug.logs.capacity, size: debug.logs.size, oldest: all[0]?.time ?? null },
        health: hub.health?.() ?? {},
        versions: hub.versions ?? {},
        settingsSet: debug.settingsSet,
      }
      return reply.type('application/json').send(debug.scrub(JSON.stringify(body)))
    })
  }
}
