// What the operator's commands need to know about a hub's state dir: where it is, whether a hub
// runs on it (its hub.pid), and the one place they call the hub's admin API. (When ops/src/api.ts
// lands as the single API client, adminFetch is the function to switch over.)
import { existsSync, readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'

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

/** The admin token's header when the hub has one (<stateDir>/admin-token); never printed. */
function authHeader(stateDir: string): Record<string, string> {
  const file = join(stateDir, 'admin-token')
  if (!existsSync(file)) return {}
  return { authorization: `Bearer ${readFileSync(file, 'utf8').trim()}` }
}

/** Call an admin route; throws with the hub's error message (never the request headers). */
export async function adminFetch(stateDir: string, hubUrl: string, path: string, init: { method: string; body?: unknown; timeoutMs?: number } = { method: 'GET' }): Promise<unknown> {
  let res: Response
  try {
    res = await fetch(new URL(path, hubUrl), {
      method: init.method,
      headers: { ...authHeader(stateDir), ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: init.body !== undefined ? JSON.stringify(init.body) : undefined,
      signal: AbortSignal.timeout(init.timeoutMs ?? 10_000),
    })
  } catch (err) {
    throw new Error(`cannot reach the hub at ${hubUrl} (${(err as Error).message})`)
  }
  const text = await res.text()
  let body: unknown = text
  try { body = JSON.parse(text) } catch {}
  if (!res.ok) {
    const msg = (body as { message?: string } | undefined)?.message ?? text.slice(0, 200)
    throw Object.assign(new Error(`hub answered ${res.status} to ${init.method} ${path}: ${msg}`), { status: res.status, body })
  }
  return body
}
