// Per-client credentials, stored hashed (scrypt from node:crypto) in a JSON file that
// `mirrormesh node add` writes and the broker re-reads when it changes.
import { randomBytes, scrypt, timingSafeEqual, createHash } from 'node:crypto'
import { mkdir, readFile, stat } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import type { Role } from './contract.js'
import { isValidId } from './contract.js'
import type { Principal } from './acl.js'
import { writeAtomic } from './durable.js'

export interface CredentialRecord { role: Role; hash: string; createdAt: string }
interface CredentialFile { version: 1; users: Record<string, CredentialRecord> }

/** scrypt cost: 2^14 is the interactive default; benchmarks may pass less for 1000s of users. */
export const defaultScryptCost = 16384

function scryptAsync(password: Buffer | string, salt: Buffer, cost: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, 32, { N: cost, r: 8, p: 1, maxmem: 64 * 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key)))
  })
}

export async function hashPassword(password: string, cost = defaultScryptCost): Promise<string> {
  const salt = randomBytes(16)
  const key = await scryptAsync(password, salt, cost)
  return `scrypt$${cost}$${salt.toString('base64')}$${key.toString('base64')}`
}

export async function verifyPassword(hash: string, password: Buffer | string): Promise<boolean> {
  const [scheme, cost, salt, key] = hash.split('$')
  if (scheme !== 'scrypt' || !cost || !salt || !key) return false
  const want = Buffer.from(key, 'base64')
  const got = await scryptAsync(password, Buffer.from(salt, 'base64'), Number(cost))
  return got.length === want.length && timingSafeEqual(got, want)
}

export function generatePassword(): string {
  return randomBytes(18).toString('base64url')
}

export class CredentialStore {
  private file: CredentialFile = { version: 1, users: {} }
  private mtimeMs = -1
  /** username -> sha256(password) of the last successful verify; saves scrypt on reconnects. */
  private readonly verified = new Map<string, string>()

  constructor(readonly path: string) {}

  /** Re-read the file if it changed on disk. A missing file is an empty store. */
  async refresh(): Promise<void> {
    let mtimeMs: number
    try {
      mtimeMs = (await stat(this.path)).mtimeMs
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      this.file = { version: 1, users: {} }
      this.mtimeMs = -1
      this.verified.clear()
      return
    }
    if (mtimeMs === this.mtimeMs) return
    const parsed = JSON.parse(await readFile(this.path, 'utf8')) as CredentialFile
    if (parsed.version !== 1 || typeof parsed.users !== 'object') throw new Error(`${this.path}: not a mirrormesh credentials file`)
    this.file = parsed
    this.mtimeMs = mtimeMs
    this.verified.clear()
  }

  list(): Array<{ id: string; role: Role; createdAt: string }> {
    return Object.entries(this.file.users).map(([id, r]) => ({ id, role: r.role, createdAt: r.createdAt }))
  }

  has(id: string): boolean {
    return Object.hasOwn(this.file.users, id)
  }

  /** Create (or with `replace`, rotate) a credential; returns the password, which is never stored. */
  async add(id: string, role: Role, opts: { replace?: boolean; cost?: number; password?: string } = {}): Promise<string> {
    if (!isValidId(id)) throw new Error(`invalid id ${JSON.stringify(id)}: use letters, digits, '.', '_' or '-' (max 64)`)
    await this.refresh()
    if (this.has(id) && !opts.replace) throw new Error(`${id} already has credentials; pass --replace to rotate them`)
    const password = opts.password ?? generatePassword()
    this.file.users[id] = { role, hash: await hashPassword(password, opts.cost), createdAt: new Date().toISOString() }
    await this.save()
    return password
  }

  async remove(id: string): Promise<boolean> {
    await this.refresh()
    if (!this.has(id)) return false
    delete this.file.users[id]
    await this.save()
    return true
  }

  async verify(username: string, password: Buffer | string): Promise<Principal | undefined> {
    await this.refresh()
    const rec = Object.hasOwn(this.file.users, username) ? this.file.users[username] : undefined
    if (!rec) return undefined
    const digest = createHash('sha256').update(password).digest('hex')
    if (this.verified.get(username) === digest) return { role: rec.role, id: username }
    if (!(await verifyPassword(rec.hash, password))) return undefined
    this.verified.set(username, digest)
    return { role: rec.role, id: username }
  }

  private async save(): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true })
    await writeAtomic(this.path, JSON.stringify(this.file, null, 2) + '\n', { mode: 0o600 })
    this.mtimeMs = (await stat(this.path)).mtimeMs
    // A rotated or removed password must stop working at once, also in this process.
    this.verified.clear()
  }
}

/** The hub's credentials file: CREDENTIALS_FILE, else <MIRRORMESH_STATE_DIR>/credentials.json. */
export function defaultCredentialsPath(env: Record<string, string | undefined>): string {
  if (env.CREDENTIALS_FILE) return resolve(env.CREDENTIALS_FILE)
  return resolve(env.MIRRORMESH_STATE_DIR || '.state/hub', 'credentials.json')
}
