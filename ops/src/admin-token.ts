// The hub's admin token, for ops commands talking to its HTTP API. The hub makes it at start
// (<state dir>/admin-token, 0600; hub/src/http/auth.ts); commands on the hub box read it, and
// send it as `Authorization: Bearer …`, which the LAN listeners require for /api routes.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'

/** The token in `<stateDir>/admin-token`, or undefined when there is none (or it is not readable by this user). */
export async function readAdminToken(stateDir: string = process.env.MIRRORMESH_STATE_DIR || '.state/hub'): Promise<string | undefined> {
  try {
    const token = (await readFile(join(stateDir, 'admin-token'), 'utf8')).trim()
    return token || undefined
  } catch {
    return undefined
  }
}

/** Headers for a hub request: the token when there is one; never printed. */
export async function adminHeaders(stateDir?: string): Promise<Record<string, string>> {
  const token = process.env.MIRRORMESH_ADMIN_TOKEN || await readAdminToken(stateDir)
  return token ? { authorization: `Bearer ${token}` } : {}
}
