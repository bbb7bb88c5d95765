// `mirrormesh node rebuild <id> [--new-identity <new>]`: the runbook's "clear cache, resync config,
// re-register", done by the hub (POST /api/nodes/:id/rebuild or /identity), which answers once
// the node has confirmed. Exits 1 with the hub's reason when it does not (offline, timeout).
import { adminFetch, hubRunning, stateDirOf } from './hub-state.js'
import { parseDuration } from './keys.js'

export interface NodeRebuildOptions { newIdentity?: string; hub?: string; stateDir?: string; timeout: string; json?: boolean }

interface RebuildAnswer { id: string; previousId?: string; op: string; ms: number }

export async function nodeRebuildCommand(id: string, opts: NodeRebuildOptions): Promise<number> {
  try {
    const timeoutMs = parseDuration(opts.timeout)
    const stateDir = stateDirOf(opts.stateDir)
    const hub = opts.hub ?? process.env.HUB_URL ?? (await hubRunning(stateDir))?.url ?? 'http://127.0.0.1:8080'
    const init = { method: 'POST', timeoutMs: timeoutMs + 5000 }
    const r = (opts.newIdentity
      ? await adminFetch(stateDir, hub, `/api/nodes/${encodeURIComponent(id)}/identity`, { ...init, body: { newId: opts.newIdentity, timeoutMs } })
      : await adminFetch(stateDir, hub, `/api/nodes/${encodeURIComponent(id)}/rebuild`, { ...init, body: { timeoutMs } })) as RebuildAnswer
    if (opts.json) process.stdout.write(JSON.stringify(r) + '\n')
    else if (r.previousId) process.stdout.write(`node ${r.previousId} is now ${r.id}: cache wiped, config resynced, registered under the new id (${(r.ms / 1000).toFixed(1)} s); ${r.previousId}'s credential and retained topics are gone\n`)
    else process.stdout.write(`node ${r.id} rebuilt: cache wiped, config resynced, re-registered (${(r.ms / 1000).toFixed(1)} s)\n`)
    return 0
  } catch (err) {
    process.stderr.write(`mirrormesh node rebuild: ${(err as Error).message}\n`)
    return 1
  }
}
