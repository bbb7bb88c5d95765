// `mirrormesh memory list|export|forget <key>`: inspect and delete long-term memory through the
// hub's HTTP API (admin token). Keys: room:<room>, node:<id>, user:<name>.
// Exit 0: done; 1: the hub refused or could not be reached; 2: bad input.
import { HubClient, errorText, type HubTarget } from './api.js'

interface Memory { id: string; key: string; kind: 'fact' | 'turn'; text: string; at: number }
interface ListOptions extends HubTarget { limit?: string; kind?: string; json?: boolean }
interface ForgetOptions extends HubTarget { id?: string; all?: boolean; json?: boolean }

const path = (key: string) => `/api/memory/${encodeURIComponent(key)}`
const fail = (why: string, code = 1) => { process.stderr.write(`mirrormesh memory: ${why}\n`); return code }

export async function memoryList(key: string, opts: ListOptions): Promise<number> {
  const limit = Number(opts.limit ?? 50)
  if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) return fail('--limit must be 1…10000', 2)
  if (opts.kind !== undefined && opts.kind !== 'fact' && opts.kind !== 'turn') return fail('--kind is fact or turn', 2)
  try {
    const q = new URLSearchParams({ limit: String(limit), ...(opts.kind ? { kind: opts.kind } : {}) })
    const r = await new HubClient(opts).json<{ key: string; memories: Memory[] }>(`${path(key)}?${q}`)
    if (opts.json) { process.stdout.write(JSON.stringify(r) + '\n'); return 0 }
    if (!r.memories.length) { process.stdout.write(`no memories under ${key}\n`); return 0 }
    const rows = r.memories.map((m) => `${m.id.padEnd(8)} ${new Date(m.at).toISOString().slice(0, 19).replace('T', ' ')}  ${m.kind.padEnd(5)} ${m.text}`)
    process.stdout.write(`${'id'.padEnd(8)} ${'when (UTC)'.padEnd(19)}  kind  text\n${rows.join('\n')}\n`)
    return 0
  } catch (err) {
    return fail(errorText(err))
  }
}

export async function memoryExport(key: string, opts: HubTarget): Promise<number> {
  try {
    const r = await new HubClient(opts).json<unknown>(`${path(key)}/export`, { timeoutMs: 60_000 })
    process.stdout.write(JSON.stringify(r, null, 2) + '\n')
    return 0
  } catch (err) {
    return fail(errorText(err))
  }
}

export async function memoryForget(key: string, opts: ForgetOptions): Promise<number> {
  if (!opts.id === !opts.all) return fail('say what to forget: --id <id> (one memory, from `memory list`) or --all (every memory of the key)', 2)
  try {
    const r = await new HubClient(opts).json<{ key: string; deleted: number }>(`${path(key)}${opts.id ? `?id=${encodeURIComponent(opts.id)}` : ''}`, { method: 'DELETE' })
    if (opts.json) process.stdout.write(JSON.stringify(r) + '\n')
    else process.stdout.write(`${r.deleted} ${r.deleted === 1 ? 'memory' : 'memories'} deleted from ${key}\n`)
    return opts.id && r.deleted === 0 ? fail(`no memory ${opts.id} under ${key}`) : 0
  } catch (err) {
    return fail(errorText(err))
  }
}
