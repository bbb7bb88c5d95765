// What the operator's commands need to know about a hub's state dir: where it is, whether a hub
// runs on it (its hub.pid), and the admin API call of the commands that start from a state dir
// (backup, node rebuild), which goes through HubClient like every other ops command.
import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { HubClient } from './api.js'

export const stateDirOf = (dir: string | undefined) => resolve(dir ?? process.env.MIRRORMESH_STATE_DIR ?? '.state/hub')

export interface RunningHub { pid: number; url?: string }

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  // After a SIGKILL and a reboot the pid may belong to something else now: on Linux, check it is node.
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('node')
  } catch {
    return true // no /proc: trust the signal check
  }
}

/** The hub running on `stateDir` per its hub.pid, or undefined (no file, or a stale one from a killed hub). */
export async function hubRunning(stateDir: string): Promise<RunningHub | undefined> {
  let body: { pid?: unknown; http?: { host: string; port: number } }
  try {
    body = JSON.parse(await readFile(join(stateDir, 'hub.pid'), 'utf8')) as typeof body
  } catch {
    return undefined
  }
  if (typeof body.pid !== 'number' || body.pid === process.pid || !alive(body.pid)) return undefined
  const h = body.http
  const host = !h ? undefined : h.host === '0.0.0.0' || h.host === '::' ? '127.0.0.1' : h.host.includes(':') ? `[${h.host}]` : h.host
  return { pid: body.pid, url: h ? `http://${host}:${h.port}` : undefined }
}

/**
 * Call an admin route through the one ops HTTP client (ops/src/api.ts), with the admin token of
 * MIRRORMESH_ADMIN_TOKEN or this state dir's admin-token; throws a HubError an operator can act on,
 * with the hub's own error code and message, never the request headers.
 */
export async function adminFetch(stateDir: string, hubUrl: string, path: string, init: { method: string; body?: unknown; timeoutMs?: number } = { method: 'GET' }): Promise<unknown> {
  const client = new HubClient({ hub: hubUrl }, { ...process.env, MIRRORMESH_STATE_DIR: stateDir })
  return client.json(path, { method: init.method, body: init.body, timeoutMs: init.timeoutMs ?? 10_000 })
}
