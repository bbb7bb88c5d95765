// `mirrormesh keys rotate [node]`: a node's new MQTT password, printed once; the old one keeps
// working for --grace (the running hub re-reads credentials.json at every CONNECT, no restart).
// Without a node: the hub's admin token (<stateDir>/admin-token), when it has one. The hub's own
// MQTT credential needs no command: it is random per process and never on disk.
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { CredentialStore, defaultCredentialsPath, writeAtomic } from '@mirrormesh/broker'
import { stateDirOf } from './hub-state.js'

const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** '10m', '24h', '30s', '0' → milliseconds; throws on anything else. */
export function parseDuration(text: string): number {
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(text.trim())
  if (!m) throw new Error(`invalid duration ${JSON.stringify(text)}: use a number with ms, s, m, h or d (e.g. 10m, 24h, 0)`)
  const ms = Number(m[1]) * units[m[2] ?? 'ms']!
  if (ms > 365 * units.d!) throw new Error(`duration ${text} is longer than a year`)
  return ms
}

export interface KeysRotateOptions { grace: string; stateDir?: string; credentialsFile?: string; json?: boolean }

export async function keysRotateCommand(node: string | undefined, opts: KeysRotateOptions): Promise<number> {
  try {
    const graceMs = parseDuration(opts.grace)
    const stateDir = stateDirOf(opts.stateDir)
    if (node) {
      const store = new CredentialStore(opts.credentialsFile ?? defaultCredentialsPath({ ...process.env, MIRRORMESH_STATE_DIR: stateDir }))
      const { password, previousUntil } = await store.rotate(node, graceMs)
      if (opts.json) process.stdout.write(JSON.stringify({ id: node, password, previousUntil }) + '\n')
      else process.stdout.write(`rotated the credentials of ${node}; the old password ${previousUntil ? `works until ${previousUntil}` : 'is refused from now on'}\n` +
        `new password (shown once, put it in the node's env file as MQTT_PASSWORD):\n${password}\n`)
      return 0
    }
    const tokenFile = join(stateDir, 'admin-token')
    if (!existsSync(tokenFile)) {
      process.stderr.write(`mirrormesh keys rotate: no node given and no admin token at ${tokenFile}: nothing to rotate. ` +
        'Name a node (mirrormesh keys rotate <node>); the hub\'s own MQTT credential changes at every hub start by itself.\n')
      return 1
    }
    // The admin token has no grace period: only the operator's own tools use it, and they read the file.
    const token = randomBytes(32).toString('base64url')
    await writeAtomic(tokenFile, token + '\n', { mode: 0o600 })
    if (opts.json) process.stdout.write(JSON.stringify({ adminToken: token, file: tokenFile }) + '\n')
    else process.stdout.write(`rotated the hub's admin token in ${tokenFile} (the old one is refused from now on)\nnew token (shown once):\n${token}\n`)
    return 0
  } catch (err) {
    process.stderr.write(`mirrormesh keys rotate: ${(err as Error).message}\n`)
    return 1
  }
}
