// `mirrormesh backup <file>` / `mirrormesh restore <file>`: the hub's state as one .tar.gz with a
// manifest.json (every file's size and sha256). Restore checks the whole archive before it
// touches anything, then swaps the new state dir in with renames.
import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream, existsSync } from 'node:fs'
import { chmod, cp, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { basename, dirname, join, relative, resolve, sep } from 'node:path'
import { pipeline } from 'node:stream/promises'
import * as tar from 'tar'
import { defaultCredentialsPath } from '@mirrormesh/broker'
import { databaseLocked, isLockedError, readRetainedDir, writeRetainedDir, type RetainedRecord } from '@mirrormesh/broker/persistence'
import { adminFetch, hubRunning, stateDirOf } from './hub-state.js'

const pkg = createRequire(import.meta.url)('../package.json') as { version: string }

/**
 * What a backup holds, relative to the state dir. `memory` is the memory store's folder: when it
 * lands somewhere else, name it here. `broker-db` (LevelDB) is never copied as files: its retained
 * messages travel as retained.json and restore writes them into a fresh database.
 */
export const BACKED_UP = ['credentials.json', 'node-config.json', 'bundles', 'incidents', 'entries', 'tls', 'admin-token', 'memory'] as const
/** Replaced by a restore (the rest of the state dir, e.g. models/, is carried over untouched). */
const REPLACED = new Set<string>([...BACKED_UP, 'broker-db', 'hub.pid'])
/** Half-written files (bundles, atomic writes); the clip cache (.clips) is kept: it spares a restored hub the TTS. */
const skip = (name: string) => name.startsWith('.tmp-') || name.includes('.tmp-')

export const FORMAT = 'mirrormesh-backup'
export const FORMAT_VERSION = 1

export interface ManifestFile { path: string; size: number; sha256: string }
export interface BackupManifest {
  format: typeof FORMAT
  formatVersion: number
  created: string
  hubVersion: string
  /** Whether the hub was running when the backup was taken (retained messages came from its API). */
  hubWasRunning: boolean
  retained: number
  files: ManifestFile[]
}

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256')
  await pipeline(createReadStream(file), h)
  return h.digest('hex')
}

/** Every regular file under `dir`, as paths relative to it with '/' separators. */
async function walk(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(relative(dir, join(e.parentPath, e.name)).split(sep).join('/'))
  }
  return out.sort()
}

async function retainedOf(stateDir: string, hubUrl: string | undefined): Promise<{ records: RetainedRecord[]; running: boolean }> {
  const running = await hubRunning(stateDir)
  const url = running?.url ?? hubUrl
  if (running || (url && await databaseLocked(join(stateDir, 'broker-db')))) {
    if (!url) throw new Error(`a hub (pid ${running?.pid}) is running on ${stateDir} but its HTTP address is unknown; pass --hub <url>`)
    const body = await adminFetch(stateDir, url, '/api/backup/retained', { method: 'POST' }) as { retained: RetainedRecord[]; external: boolean }
    return { records: body.retained, running: true }
  }
  const db = join(stateDir, 'broker-db')
  if (!existsSync(db)) return { records: [], running: false }
  try {
    return { records: await readRetainedDir(db), running: false }
  } catch (err) {
    if (isLockedError(err)) throw new Error(`${db} is open in another process (a hub without ${join(stateDir, 'hub.pid')}?); pass --hub <url> so the hub exports its retained messages`)
    throw err
  }
}

export interface BackupResult { file: string; files: number; bytes: number; retained: number; hubWasRunning: boolean }

export async function backup(file: string, stateDir: string, opts: { hubUrl?: string; credentialsFile?: string } = {}): Promise<BackupResult> {
  if (!existsSync(stateDir)) throw new Error(`state dir ${stateDir} does not exist (set --state-dir or MIRRORMESH_STATE_DIR)`)
  const out = resolve(file)
  await mkdir(dirname(out), { recursive: true })
  // Staged beside the archive, so what is checksummed is exactly what is packed.
  const stage = await mkdtemp(join(dirname(out), '.mirrormesh-backup-'))
  try {
    await chmod(stage, 0o700)
    const state = join(stage, 'state')
    await mkdir(state)
    const creds = opts.credentialsFile ? resolve(opts.credentialsFile) : defaultCredentialsPath({ MIRRORMESH_STATE_DIR: stateDir, CREDENTIALS_FILE: process.env.CREDENTIALS_FILE })
    if (existsSync(creds)) await cp(creds, join(state, 'credentials.json'), { preserveTimestamps: true })
    for (const name of BACKED_UP) {
      const src = join(stateDir, name)
      if (name === 'credentials.json' || !existsSync(src)) continue
      await cp(src, join(state, name), { recursive: true, preserveTimestamps: true, filter: (s) => !skip(basename(s)) })
    }
    const { records, running } = await retainedOf(stateDir, opts.hubUrl)
    await writeFile(join(stage, 'retained.json'), JSON.stringify({ retained: records }, null, 1) + '\n', { mode: 0o600 })
    const files: ManifestFile[] = []
    for (const path of await walk(stage)) {
      const abs = join(stage, path)
      files.push({ path, size: (await stat(abs)).size, sha256: await sha256(abs) })
    }
    const manifest: BackupManifest = { format: FORMAT, formatVersion: FORMAT_VERSION, created: new Date().toISOString(), hubVersion: pkg.version, hubWasRunning: running, retained: records.length, files }
    await writeFile(join(stage, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n')
    // The archive holds secrets (credential hashes, TLS key, admin token): 0600 from the first byte.
    const tmp = `${out}.tmp-${process.pid}`
    await pipeline(tar.c({ gzip: true, cwd: stage, portable: true }, ['manifest.json', 'retained.json', 'state']), createWriteStream(tmp, { mode: 0o600 }))
    await chmod(tmp, 0o600)
    await rename(tmp, out)
    return { file: out, files: files.length, bytes: files.reduce((n, f) => n + f.size, 0), retained: records.length, hubWasRunning: running }
  } finally {
    await rm(stage, { recursive: true, force: true })
  }
}

/** Unpack `file` into `dir` and check it completely; throws with what is wrong. */
export async function unpackVerified(file: string, dir: string): Promise<BackupManifest> {
  const odd: string[] = []
  try {
    await tar.x({ file, cwd: dir, strict: true, filter: (path, entry) => {
      const type = 'type' in entry ? entry.type : 'File'
      if (type === 'File' || type === 'Directory') return true
      odd.push(`${path} (${type})`)
      return false
    } })
  } catch (err) {
    throw new Error(`archive is corrupt or truncated: ${(err as Error).message}`)
  }
  if (odd.length) throw new Error(`archive holds entries a backup never has: ${odd.slice(0, 5).join(', ')}`)
  let manifest: BackupManifest
  try {
    manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as BackupManifest
  } catch (err) {
    throw new Error(`archive has no readable manifest.json (${(err as Error).message}); is it a mirrormesh backup?`)
  }
  if (manifest.format !== FORMAT || !Array.isArray(manifest.files)) throw new Error('manifest.json is not a mirrormesh backup manifest')
  if (manifest.formatVersion > FORMAT_VERSION) throw new Error(`backup format ${manifest.formatVersion} is newer than this mirrormesh understands (${FORMAT_VERSION}); restore with a newer version`)
  const present = new Set((await walk(dir)).filter((p) => p !== 'manifest.json'))
  const problems: string[] = []
  for (const f of manifest.files) {
    if (!present.delete(f.path)) { problems.push(`${f.path}: missing`); continue }
    const abs = join(dir, f.path)
    const size = (await stat(abs)).size
    if (size !== f.size) problems.push(`${f.path}: ${size} bytes, manifest says ${f.size}`)
    else if (await sha256(abs) !== f.sha256) problems.push(`${f.path}: checksum differs from the manifest`)
  }
  for (const extra of present) problems.push(`${extra}: not in the manifest`)
  if (problems.length) throw new Error(`archive failed verification, nothing restored:\n  ${problems.slice(0, 20).join('\n  ')}`)
  return manifest
}

export interface RestoreResult { stateDir: string; previous: string | null; files: number; retained: number; created: string }

export async function restore(file: string, stateDir: string): Promise<RestoreResult> {
  if (!existsSync(file)) throw new Error(`${file} does not exist`)
  const target = resolve(stateDir)
  const running = await hubRunning(target)
  if (running) throw new Error(`a hub (pid ${running.pid}) is running on ${target}; stop it first (systemctl stop mirrormesh-hub), then restore`)
  if (await databaseLocked(join(target, 'broker-db'))) throw new Error(`${join(target, 'broker-db')} is open in another process: a hub is running on ${target}; stop it first`)
  await mkdir(dirname(target), { recursive: true })
  // Beside the state dir: same filesystem, so the swap is a rename.
  const work = await mkdtemp(join(dirname(target), `.${basename(target)}.restore-`))
  try {
    await chmod(work, 0o700)
    const manifest = await unpackVerified(resolve(file), work)
    const fresh = join(work, 'state')
    await mkdir(fresh, { recursive: true })
    const { retained } = JSON.parse(await readFile(join(work, 'retained.json'), 'utf8')) as { retained: RetainedRecord[] }
    if (retained.length) await writeRetainedDir(join(fresh, 'broker-db'), retained)
    const previous = existsSync(target) ? await swapIn(fresh, target) : (await rename(fresh, target), null)
    return { stateDir: target, previous, files: manifest.files.length, retained: retained.length, created: manifest.created }
  } finally {
    // Retries: after a corrupt archive, tar's extraction can still be writing files when unpackVerified
    // has thrown, and a single rm then failed with ENOTEMPTY, which replaced the real error (CI, once).
    await rm(work, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 })
  }
}

/** Carry what a backup does not hold (models/, …) into `fresh`, then swap it with `target`; the old dir is kept aside. */
async function swapIn(fresh: string, target: string): Promise<string> {
  const carried: string[] = []
  const previous = `${target}.pre-restore-${new Date().toISOString().replace(/[:.]/g, '-')}`
  try {
    for (const name of await readdir(target)) {
      if (REPLACED.has(name) || existsSync(join(fresh, name))) continue
      await rename(join(target, name), join(fresh, name))
      carried.push(name)
    }
    const mode = (await stat(target)).mode & 0o777
    await chmod(fresh, mode)
    await rename(target, previous)
    try {
      await rename(fresh, target)
    } catch (err) {
      await rename(previous, target)
      throw err
    }
    return previous
  } catch (err) {
    // Put back what was carried so the target is as it was.
    for (const name of carried) await rename(join(fresh, name), join(target, name)).catch(() => undefined)
    throw err
  }
}

const say = (msg: string) => process.stderr.write(`${msg}\n`)

export async function backupCommand(file: string, opts: { stateDir?: string; hub?: string; credentialsFile?: string; json?: boolean }): Promise<number> {
  try {
    const r = await backup(file, stateDirOf(opts.stateDir), { hubUrl: opts.hub, credentialsFile: opts.credentialsFile })
    if (opts.json) process.stdout.write(JSON.stringify(r) + '\n')
    else process.stdout.write(`backed up ${r.files} files (${r.bytes} bytes) and ${r.retained} retained messages${r.hubWasRunning ? ' (from the running hub)' : ''} to ${r.file}\n` +
      'the archive holds secrets (credential hashes, TLS key, admin token): it is written 0600; keep it that way\n')
    return 0
  } catch (err) {
    say(`mirrormesh backup: ${(err as Error).message}`)
    return 1
  }
}

export async function restoreCommand(file: string, opts: { stateDir?: string; json?: boolean }): Promise<number> {
  try {
    const r = await restore(file, stateDirOf(opts.stateDir))
    if (opts.json) process.stdout.write(JSON.stringify(r) + '\n')
    else process.stdout.write(`restored ${r.files} files and ${r.retained} retained messages (backup of ${r.created}) into ${r.stateDir}\n` +
      (r.previous ? `the previous state is kept in ${r.previous}; delete it once the hub runs well (it holds secrets)\n` : ''))
    return 0
  } catch (err) {
    say(`mirrormesh restore: ${(err as Error).message}`)
    return 1
  }
}
