// The node's copy of the hub's offline reply bundle. Layout under `dir`:
//   bundles/<version>/manifest.json + the bundle files (raw PCM16LE 16 kHz)
//   current            pointer file holding "<version>\n" (a symlink to bundles/<version> is read too)
//   tmp-<random>/      a download in progress; removed on failure and at open()
// A new bundle is downloaded and verified completely (manifest sha256 from the announcement,
// then every file's sha256 and size) before it replaces the current one: rename of the temp
// dir into bundles/, then an atomic rename of a new pointer over `current`. The previous bundle
// stays until then; bundles beyond the newest two (current + previous) are deleted afterwards.
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import { bundleFilePath, fsyncDir, writeFileDurable, type BundleManifest, type Logger } from '@mirrormesh/broker'

export interface BundleAnnouncement {
  version: string
  /** sha256 (hex) of the manifest.json bytes. */
  sha256: string
  /** Where manifest.json is; absolute, or relative to the hub's HTTP URL. */
  url: string
}

export interface LoadedBundle {
  manifest: BundleManifest
  /** Absolute directory holding manifest.json and the files. */
  dir: string
}

export type SyncResult =
  | { status: 'current'; version: string }
  | { status: 'installed'; version: string; files: number; bytes: number; ms: number }
  | { status: 'refused'; version: string; reason: string }
  | { status: 'failed'; version: string; reason: string }

export interface BundleStoreOptions {
  /** Writes one file durably (default: open 'w', write, fsync, close). Injected by tests (ENOSPC). */
  writeFile?: (file: string, data: Uint8Array) => Promise<void>
  /** Limit per HTTP request (default 30 s). */
  fetchTimeoutMs?: number
  /** Bundles kept on disk: current + previous (default 2). */
  keep?: number
}

import type { FetchImpl } from './hub-fetch.js'

const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024

/** Thrown inside sync() for a bundle that must not be installed (bad hash, bad manifest). */
class Refusal extends Error {}

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}

// Durable writes: one helper for hub, node and broker (broker/src/durable.ts).
export { fsyncDir, writeFileDurable }

function isEnospc(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'ENOSPC'
}

/** Checks the shape the node relies on; throws a Refusal naming what is wrong. */
export function validateManifest(m: unknown, version: string): BundleManifest {
  const bad = (what: string): never => { throw new Refusal(`manifest invalid: ${what}`) }
  if (!m || typeof m !== 'object') bad('not an object')
  const man = m as BundleManifest
  if (man.v !== 1) bad(`v=${String(man.v)}`)
  if (man.version !== version) bad(`version ${String(man.version)} != announced ${version}`)
  if (!Array.isArray(man.files)) bad('files')
  if (!Array.isArray(man.replies)) bad('replies')
  if (!man.fragments || typeof man.fragments !== 'object') bad('fragments')
  const names = new Set<string>()
  for (const f of man.files) {
    if (!f || typeof f.name !== 'string' || !SAFE_NAME.test(f.name) || f.name === 'manifest.json') bad(`file name ${JSON.stringify(f?.name)}`)
    if (typeof f.sha256 !== 'string' || !/^[0-9a-f]{64}$/i.test(f.sha256)) bad(`sha256 of ${f.name}`)
    if (!Number.isSafeInteger(f.bytes) || f.bytes < 0) bad(`bytes of ${f.name}`)
    if (names.has(f.name)) bad(`duplicate file ${f.name}`)
    names.add(f.name)
  }
  for (const r of man.replies) {
    if (!r || typeof r.phrase !== 'string' || typeof r.skill !== 'string' || typeof r.text !== 'string' || !Array.isArray(r.clips)) bad('reply')
    for (const c of r.clips) if (c !== '{time}' && c !== '{date}' && !names.has(c)) bad(`reply "${r.phrase}" clip ${c} not in files`)
  }
  for (const [k, f] of Object.entries(man.fragments)) if (!names.has(f)) bad(`fragment ${k} file ${f} not in files`)
  if (man.fallbacks !== undefined) {
    for (const [k, fb] of Object.entries(man.fallbacks)) {
      if (!fb || typeof fb.text !== 'string' || !Array.isArray(fb.clips)) bad(`fallback ${k}`)
      for (const c of fb.clips) if (!names.has(c)) bad(`fallback ${k} clip ${c} not in files`)
    }
  }
  return man
}

export class BundleStore {
  private loaded: LoadedBundle | undefined
  private running: { version: string; promise: Promise<SyncResult> } | undefined
  private queued: { args: [BundleAnnouncement, string, FetchImpl]; promise: Promise<SyncResult> } | undefined
  private readonly writeFile: (file: string, data: Uint8Array) => Promise<void>

  constructor(readonly dir: string, private readonly log: Logger, private readonly opts: BundleStoreOptions = {}) {
    this.writeFile = opts.writeFile ?? writeFileDurable
  }

  /** Creates the store and loads the current bundle (if any); leftover temp dirs are removed. */
  static async open(dir: string, log: Logger, opts?: BundleStoreOptions): Promise<BundleStore> {
    const store = new BundleStore(path.resolve(dir), log, opts)
    await store.load()
    return store
  }

  current(): LoadedBundle | undefined {
    return this.loaded
  }

  async load(): Promise<LoadedBundle | undefined> {
    await fs.mkdir(path.join(this.dir, 'bundles'), { recursive: true })
    for (const e of await fs.readdir(this.dir)) {
      if (e.startsWith('tmp-') || e === 'current.tmp') await fs.rm(path.join(this.dir, e), { recursive: true, force: true })
    }
    const version = await this.readPointer()
    this.loaded = undefined
    if (!version) return undefined
    const bdir = path.join(this.dir, 'bundles', version)
    try {
      const manifest = validateManifest(JSON.parse(await fs.readFile(path.join(bdir, 'manifest.json'), 'utf8')), version)
      for (const f of manifest.files) {
        const st = await fs.stat(path.join(bdir, f.name))
        if (st.size !== f.bytes) throw new Error(`${f.name} has ${st.size} bytes, manifest says ${f.bytes}`)
      }
      this.loaded = { manifest, dir: bdir }
      this.log.info({ version, files: manifest.files.length, replies: manifest.replies.length }, 'offline bundle loaded')
    } catch (err) {
      this.log.error({ version, err: (err as Error).message }, `bundle ${version} on disk unusable; no offline bundle`)
    }
    return this.loaded
  }

  private async readPointer(): Promise<string | undefined> {
    const p = path.join(this.dir, 'current')
    let v: string
    try {
      const st = await fs.lstat(p)
      v = st.isSymbolicLink() ? path.basename(await fs.readlink(p)) : (await fs.readFile(p, 'utf8')).trim()
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn({ err }, 'bundle pointer unreadable')
      return undefined
    }
    if (!SAFE_NAME.test(v)) {
      this.log.warn({ pointer: v }, 'bundle pointer invalid')
      return undefined
    }
    return v
  }

  /**
   * Installs the announced bundle unless it is already current. Concurrent calls coalesce:
   * a call for the version being downloaded shares that download; a call for another version
   * waits for it and then runs (only the latest such call runs; earlier queued ones share its result).
   */
  sync(announcement: BundleAnnouncement, hubHttpUrl: string, fetchImpl: FetchImpl = fetch): Promise<SyncResult> {
    if (this.running?.version === announcement.version) return this.running.promise
    if (!this.running) return this.start(announcement, hubHttpUrl, fetchImpl)
    if (this.queued) {
      this.queued.args = [announcement, hubHttpUrl, fetchImpl]
      return this.queued.promise
    }
    const queued = {
      args: [announcement, hubHttpUrl, fetchImpl] as [BundleAnnouncement, string, FetchImpl],
      promise: undefined as unknown as Promise<SyncResult>,
    }
    queued.promise = this.running.promise.then(() => {
      this.queued = undefined
      return this.start(...queued.args)
    })
    this.queued = queued
    return queued.promise
  }

  private start(a: BundleAnnouncement, hubHttpUrl: string, fetchImpl: FetchImpl): Promise<SyncResult> {
    const promise = this.install(a, hubHttpUrl, fetchImpl).finally(() => {
      if (this.running?.promise === promise) this.running = undefined
    })
    this.running = { version: a.version, promise }
    return promise
  }

  private async install(a: BundleAnnouncement, hubHttpUrl: string, fetchImpl: FetchImpl): Promise<SyncResult> {
    const v = a.version
    if (this.loaded?.manifest.version === v) return { status: 'current', version: v }
    if (typeof v !== 'string' || !SAFE_NAME.test(v)) {
      const reason = `invalid version ${JSON.stringify(v)}`
      this.log.error({ version: v }, `bundle refused: ${reason}`)
      return { status: 'refused', version: String(v), reason }
    }
    const t0 = performance.now()
    const tmp = path.join(this.dir, `tmp-${randomBytes(6).toString('hex')}`)
    let total = 0
    let needBytes: number | undefined
    /** bundles/<v> once the download is renamed there, until the pointer names it. */
    let unpointed: string | undefined
    try {
      await fs.mkdir(path.join(this.dir, 'bundles'), { recursive: true })
      await fs.mkdir(tmp)
      const manifestBytes = await this.download(new URL(a.url, hubHttpUrl), fetchImpl, MAX_MANIFEST_BYTES)
      if (sha256Hex(manifestBytes) !== a.sha256.toLowerCase()) throw new Refusal('manifest.json sha256 mismatch')
      let parsed: unknown
      try {
        parsed = JSON.parse(Buffer.from(manifestBytes).toString('utf8'))
      } catch {
        throw new Refusal('manifest.json is not JSON')
      }
      const manifest = validateManifest(parsed, v)
      needBytes = manifest.files.reduce((n, f) => n + f.bytes, manifestBytes.length)
      for (const f of manifest.files) {
        const data = await this.download(new URL(bundleFilePath(v, f.name), hubHttpUrl), fetchImpl, f.bytes)
        if (data.length !== f.bytes) throw new Refusal(`${f.name} size mismatch (${data.length} != ${f.bytes})`)
        if (sha256Hex(data) !== f.sha256.toLowerCase()) throw new Refusal(`${f.name} sha256 mismatch`)
        await this.writeFile(path.join(tmp, f.name), data)
        total += data.length
      }
      await this.writeFile(path.join(tmp, 'manifest.json'), manifestBytes)
      await fsyncDir(tmp)
      // Switch: the new dir under bundles/, then the pointer.
      const final = path.join(this.dir, 'bundles', v)
      await fs.rm(final, { recursive: true, force: true }) // a half-pruned or stale copy of the same version
      await fs.rename(tmp, final)
      unpointed = final
      await fsyncDir(path.join(this.dir, 'bundles'))
      await this.writePointer(v)
      unpointed = undefined
      const previous = this.loaded?.manifest.version
      this.loaded = { manifest, dir: final }
      const ms = Math.round(performance.now() - t0)
      this.log.info({ version: v, previous, files: manifest.files.length, bytes: total, ms, from: new URL(hubHttpUrl).origin }, `bundle ${v} installed`)
      await this.prune(v, previous)
      return { status: 'installed', version: v, files: manifest.files.length, bytes: total, ms }
    } catch (err) {
      // Nothing of a download that did not become current may keep disk space: the temp dir,
      // or the renamed dir when writing the pointer failed (e.g. the disk filled up just then).
      await fs.rm(tmp, { recursive: true, force: true }).catch(() => undefined)
      if (unpointed) await fs.rm(unpointed, { recursive: true, force: true }).catch(() => undefined)
      await fs.rm(path.join(this.dir, 'current.tmp'), { force: true }).catch(() => undefined)
      const kept = this.loaded?.manifest.version ?? null
      if (err instanceof Refusal) {
        this.log.error({ version: v, kept }, `bundle ${v} refused: ${err.message}`)
        return { status: 'refused', version: v, reason: err.message }
      }
      if (isEnospc(err)) {
        // For the operator: which disk, how much the bundle needs and how much is free now
        // (with the partial download already deleted again).
        const freeBytes = await fs.statfs(this.dir).then((s) => s.bavail * s.bsize, () => undefined)
        const reason = 'disk full (ENOSPC)'
        this.log.error({ version: v, kept, dir: this.dir, needBytes, freeBytes, err: (err as Error).message },
          `bundle ${v} not installed: ${reason}; keeping ${kept ?? 'none'}`)
        return { status: 'failed', version: v, reason }
      }
      const reason = (err as Error).message
      this.log.error({ version: v, kept, err: (err as Error).message }, `bundle ${v} not installed: ${reason}; keeping ${kept ?? 'none'}`)
      return { status: 'failed', version: v, reason }
    }
  }

  private async download(url: URL, fetchImpl: FetchImpl, maxBytes: number): Promise<Uint8Array> {
    const res = await fetchImpl(url, { signal: AbortSignal.timeout(this.opts.fetchTimeoutMs ?? 30_000) })
    if (!res.ok) {
      await res.body?.cancel().catch(() => undefined)
      const hint = res.status === 401 ? ': the hub refused this node\'s credentials (check MQTT_USERNAME/MQTT_PASSWORD; over plain HTTP off loopback none are sent: use the hub\'s HTTPS)'
        : res.status === 429 ? ': too many failed logins from this address; the hub will accept again within a minute' : ''
      throw new Error(`GET ${url.pathname}: HTTP ${res.status}${hint}`)
    }
    const len = Number(res.headers.get('content-length') ?? NaN)
    if (len > maxBytes) {
      await res.body?.cancel().catch(() => undefined)
      throw new Refusal(`${path.basename(url.pathname)} too large (${len} > ${maxBytes} bytes)`)
    }
    // Read at most maxBytes + 1: enough to tell an oversized body without buffering it all.
    const chunks: Uint8Array[] = []
    let n = 0
    if (res.body) {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        chunks.push(chunk)
        n += chunk.length
        if (n > maxBytes) break
      }
    }
    return Buffer.concat(chunks, n)
  }

  private async writePointer(version: string): Promise<void> {
    const p = path.join(this.dir, 'current')
    const tmp = `${p}.tmp`
    await writeFileDurable(tmp, Buffer.from(`${version}\n`))
    // rename() cannot replace a symlink to a directory with a file atomically on every
    // platform, but on Linux rename over any non-directory entry is atomic.
    await fs.rename(tmp, p)
    await fsyncDir(this.dir)
  }

  private async prune(current: string, previous: string | undefined): Promise<void> {
    const keep = this.opts.keep ?? 2
    const root = path.join(this.dir, 'bundles')
    const entries = await fs.readdir(root)
    const others = await Promise.all(entries.filter((e) => e !== current && e !== previous).map(async (e) => {
      const st = await fs.stat(path.join(root, e)).catch(() => undefined)
      return { e, mtime: st?.mtimeMs ?? 0 }
    }))
    // Newest first: current, previous, then by mtime.
    const order = [current, ...(previous && previous !== current && entries.includes(previous) ? [previous] : []),
      ...others.sort((x, y) => y.mtime - x.mtime).map((o) => o.e)]
    for (const e of order.slice(Math.max(keep, 1))) {
      await fs.rm(path.join(root, e), { recursive: true, force: true }).catch((err: unknown) => this.log.warn({ err, bundle: e }, 'could not delete old bundle'))
    }
  }
}
