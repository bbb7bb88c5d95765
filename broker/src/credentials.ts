// Per-client credentials, stored hashed (scrypt from node:crypto) in a JSON file that
// `mirrormesh node add` writes and the broker re-reads when it changes.
import { randomBytes, scrypt, timingSafeEqual, createHash, createCipheriv, createDecipheriv, hkdfSync } from 'node:crypto'
import { mkdir, readFile, stat } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import type { Role } from './contract.js'
import { isValidId } from './contract.js'
import type { Principal } from './acl.js'
import type { SealedSecret } from './node-cmd.js'
import { writeAtomic } from './durable.js'

/**
 * `previous`: after `mirrormesh keys rotate`, the old password's hash, still accepted until
 * `until` (ISO time) so a node can be given its new password without an outage.
 */
export interface CredentialRecord { role: Role; hash: string; createdAt: string; previous?: { hash: string; until: string } }
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

const sealKey = (scryptKey: Buffer, salt: Buffer) => Buffer.from(hkdfSync('sha256', scryptKey, salt, 'mirrormesh sealed secret v1', 32))

/**
 * Encrypt `secret` for whoever knows the password behind `hash` (AES-256-GCM, key derived from the
 * scrypt key the hash stores): the hub hands a node its new password over MQTT, where observers
 * can read every topic, and only that node can open it.
 */
export function sealForHolder(hash: string, secret: string): SealedSecret {
  const [scheme, cost, salt, key] = hash.split('$')
  if (scheme !== 'scrypt' || !cost || !salt || !key) throw new Error('not a scrypt credential hash')
  const iv = randomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', sealKey(Buffer.from(key, 'base64'), Buffer.from(salt, 'base64')), iv)
  const data = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()])
  return { cost: Number(cost), salt, iv: iv.toString('base64'), data: data.toString('base64'), tag: cipher.getAuthTag().toString('base64') }
}

/** Open what sealForHolder sealed, with the password; throws when it is not the right one. */
export async function openSealed(password: string, sealed: SealedSecret): Promise<string> {
  const salt = Buffer.from(sealed.salt, 'base64')
  const key = await scryptAsync(password, salt, sealed.cost)
  const decipher = createDecipheriv('aes-256-gcm', sealKey(key, salt), Buffer.from(sealed.iv, 'base64'))
  decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'))
  try {
    return Buffer.concat([decipher.update(Buffer.from(sealed.data, 'base64')), decipher.final()]).toString('utf8')
  } catch {
    throw new Error('sealed secret does not open with this node\'s password')
  }
}

export class CredentialStore {
  private file: CredentialFile = { version: 1, users: {} }
  private version = ''
  /**
   * username -> sha256(password) of the last successful verify (saves scrypt on reconnects), with
   * the end of the grace period when it was the rotated-out password (it must not outlive it).
   */
  private readonly verified = new Map<string, { digest: string; untilMs?: number }>()

  constructor(readonly path: string) {}

  /**
   * Re-read the file if it changed on disk (the broker calls this on every CONNECT, so a running
   * hub sees `node add/remove` and `keys rotate` at the next connection, without a restart).
   * Changed means another inode, mtime or size: every writer replaces the file by rename.
   * A missing file is an empty store.
   */
  async refresh(): Promise<void> {
    let version: string
    try {
      const st = await stat(this.path)
      version = `${st.ino}:${st.mtimeMs}:${st.size}`
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      this.file = { version: 1, users: {} }
      this.version = ''
      this.verified.clear()
      return
    }
    if (version === this.version) return
    let parsed: CredentialFile
    try {
      parsed = JSON.parse(await readFile(this.path, 'utf8')) as CredentialFile
    } catch (err) {
      // Not V8's message: it quotes the file's text around the error.
      if (err instanceof SyntaxError) throw new Error(`${this.path}: not valid JSON; restore it from a backup or fix it`)
      throw err
    }
    if (parsed.version !== 1 || typeof parsed.users !== 'object') throw new Error(`${this.path}: not a mirrormesh credentials file`)
    this.file = parsed
    this.version = version
    this.verified.clear()
  }

  list(now = Date.now()): Array<{ id: string; role: Role; createdAt: string; previousUntil?: string }> {
    return Object.entries(this.file.users).map(([id, r]) => ({
      id, role: r.role, createdAt: r.createdAt,
      ...(r.previous && Date.parse(r.previous.until) > now ? { previousUntil: r.previous.until } : {}),
    }))
  }

  /**
   * Give `id` a new password; the current one keeps working for `graceMs` (0: refused at once).
   * A password rotated out earlier and still in its grace period is refused from now on.
   */
  async rotate(id: string, graceMs: number, opts: { cost?: number; now?: number } = {}): Promise<{ password: string; previousUntil: string | null }> {
    await this.refresh()
    const rec = Object.hasOwn(this.file.users, id) ? this.file.users[id] : undefined
    if (!rec) throw new Error(`no credentials for ${JSON.stringify(id)} in ${this.path}`)
    const password = generatePassword()
    const until = graceMs > 0 ? new Date((opts.now ?? Date.now()) + graceMs).toISOString() : null
    const next: CredentialRecord = { role: rec.role, hash: await hashPassword(password, opts.cost), createdAt: new Date().toISOString() }
    if (until) next.previous = { hash: rec.hash, until }
    this.file.users[id] = next
    await this.save()
    return { password, previousUntil: until }
  }

  /** The stored hash of `id` (for sealForHolder), or undefined. */
  hashOf(id: string): string | undefined {
    return Object.hasOwn(this.file.users, id) ? this.file.users[id]!.hash : undefined
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
    const now = Date.now()
    const digest = createHash('sha256').update(password).digest('hex')
    const seen = this.verified.get(username)
    if (seen?.digest === digest && (seen.untilMs === undefined || now < seen.untilMs)) return { role: rec.role, id: username }
    if (await verifyPassword(rec.hash, password)) {
      this.verified.set(username, { digest })
      return { role: rec.role, id: username }
    }
    const untilMs = rec.previous ? Date.parse(rec.previous.until) : NaN
    if (rec.previous && now < untilMs && (await verifyPassword(rec.previous.hash, password))) {
      this.verified.set(username, { digest, untilMs })
      return { role: rec.role, id: username }
    }
    return undefined
  }

  private async save(): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true })
    // Expired grace periods are dropped whenever the file is written anyway.
    const now = Date.now()
    for (const rec of Object.values(this.file.users)) if (rec.previous && Date.parse(rec.previous.until) <= now) delete rec.previous
    await writeAtomic(this.path, JSON.stringify(this.file, null, 2) + '\n', { mode: 0o600 })
    const st = await stat(this.path)
    this.version = `${st.ino}:${st.mtimeMs}:${st.size}`
    // A rotated or removed password must stop working at once, also in this process.
    this.verified.clear()
  }
}

/** The hub's credentials file: CREDENTIALS_FILE, else <MIRRORMESH_STATE_DIR>/credentials.json. */
export function defaultCredentialsPath(env: Record<string, string | undefined>): string {
  if (env.CREDENTIALS_FILE) return resolve(env.CREDENTIALS_FILE)
  return resolve(env.MIRRORMESH_STATE_DIR || '.state/hub', 'credentials.json')
}
