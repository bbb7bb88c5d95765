// Keeps the offline reply bundle: builds it in the background at hub start (never in the
// way of start-up or /readyz), serves the last good one meanwhile, announces it on the
// retained cache/manifest topic when built and on every (re)connect, and keeps only the
// newest bundle folders on disk. A failed build (a full disk, espeak gone) is retried with a
// doubling delay, capped (5 s … 60 s by default), until one succeeds: freeing space is enough,
// no restart needed. Meanwhile health/bundle says degraded, with the error and the next try.
import { createHash } from 'node:crypto'
import { readdir, readFile, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { BundleManifest, Logger, Payload } from '@mirrormesh/broker'
import type { TtsEngine } from '@mirrormesh/speech'
import type { Skill } from '../pipeline/skills.js'
import { buildBundle, type BuiltBundle } from './builder.js'

/** The bit of MeshClient the service needs. */
export interface BundlePublisher {
  readonly connected: boolean
  on(event: 'connect', fn: () => void): unknown
  off(event: 'connect', fn: () => void): unknown
  publish(name: 'cacheManifest' | 'hubManifest', params: { hub?: string }, data: Payload<'cacheManifest'>): Promise<void>
}

export interface BundleServiceOptions {
  stateDir: string
  skills: Skill[]
  rooms: string[]
  tts: TtsEngine
  voice: string
  client?: BundlePublisher
  /** Set with several hubs (HUB_ROLE active/standby): announce on hub/{hubId}/manifest, so a node installs its own hub's bundle. */
  hubId?: string
  weather?: () => { summary: string; temperatureC?: number } | null
  /** The port the hub's HTTP API listens on, for the manifest (a node need not be told it). */
  httpPort?: () => number | undefined
  /** The HTTPS listener's port, when the hub has a certificate: nodes fetch there (with their credential). */
  httpsPort?: () => number | undefined
  log: Logger
  concurrency?: number
  /** Wait before the first build so start-up work goes first (default 1000 ms). */
  delayMs?: number
  /** Bundle folders kept on disk, current included (default 2). */
  keep?: number
  /** Retry after a failed build: first delay, doubled each failure up to maxMs (default 5 s, 60 s). */
  retry?: { firstMs?: number; maxMs?: number }
}

/** A failed build waiting for its retry. */
export interface BundleRetry {
  attempt: number
  error: string
  at: number
}

export interface LoadedBundle {
  version: string
  dir: string
  manifest: BundleManifest
  manifestSha256: string
}

const versionPattern = /^[0-9a-f]{8,64}$/

export class BundleService {
  readonly root: string
  private current: LoadedBundle | undefined
  /** Bundles this process knows by version (the current one and those still on disk). */
  private readonly known = new Map<string, LoadedBundle>()
  private building: Promise<BuiltBundle | undefined> | undefined
  private abort = new AbortController()
  private delayTimer: NodeJS.Timeout | undefined
  private stopped = false
  private retryTimer: NodeJS.Timeout | undefined
  /** Set while the last build failed and another is scheduled. */
  retry: BundleRetry | undefined
  private readonly onConnect = () => void this.announce()

  constructor(private readonly opts: BundleServiceOptions) {
    this.root = join(opts.stateDir, 'bundles')
  }

  /** Load the last good bundle from disk, then build in the background. Returns at once. */
  start(): void {
    this.stopped = false
    this.opts.client?.on('connect', this.onConnect)
    void this.loadLatest().then(() => {
      if (this.stopped) return
      this.delayTimer = setTimeout(() => { this.delayTimer = undefined; void this.rebuild() }, this.opts.delayMs ?? 1000)
      this.delayTimer.unref?.()
    })
  }

  async stop(): Promise<void> {
    this.stopped = true
    if (this.delayTimer) clearTimeout(this.delayTimer)
    if (this.retryTimer) clearTimeout(this.retryTimer)
    this.opts.client?.off('connect', this.onConnect)
    this.abort.abort(new Error('bundle service stopped'))
    await this.building
  }

  /** The bundle nodes should use now; undefined until one exists. */
  manifest(): BundleManifest | undefined {
    return this.current?.manifest
  }

  get currentBundle(): LoadedBundle | undefined {
    return this.current
  }

  get isBuilding(): boolean {
    return this.building !== undefined
  }

  /** Build now (or join the build in progress). Keeps the previous bundle when the build fails. */
  rebuild(): Promise<BuiltBundle | undefined> {
    if (this.building) return this.building
    if (this.retryTimer) { clearTimeout(this.retryTimer); this.retryTimer = undefined }
    if (this.abort.signal.aborted) this.abort = new AbortController()
    const { opts } = this
    const log = opts.log
    this.building = buildBundle({
      skills: opts.skills, rooms: opts.rooms, tts: opts.tts, voice: opts.voice, outDir: this.root,
      weather: opts.weather?.() ?? null, concurrency: opts.concurrency, signal: this.abort.signal, log,
    }).then(async (b) => {
      if (this.stopped) return b
      if (this.retry) log.info({ version: b.version, failedBefore: this.retry.attempt }, 'offline bundle built after earlier failures')
      this.retry = undefined
      this.setCurrent({ version: b.version, dir: b.dir, manifest: b.manifest, manifestSha256: b.manifestSha256 })
      await this.prune().catch((err: Error) => log.warn({ err: err.message }, 'bundle: pruning old bundles failed'))
      await this.announce()
      return b
    }, (err: Error) => {
      if (this.stopped) return undefined
      const attempt = (this.retry?.attempt ?? 0) + 1
      const first = opts.retry?.firstMs ?? 5_000
      const delay = Math.min(first * 2 ** (attempt - 1), opts.retry?.maxMs ?? 60_000)
      this.retry = { attempt, error: err.message, at: Date.now() + delay }
      log.warn({ err: err.message, attempt, retryInMs: delay, keeping: this.current?.version ?? null },
        `offline bundle build failed; keeping the last good one, trying again in ${Math.round(delay / 1000)} s`)
      this.retryTimer = setTimeout(() => { this.retryTimer = undefined; void this.rebuild() }, delay)
      this.retryTimer.unref?.()
      return undefined
    }).finally(() => { this.building = undefined })
    return this.building
  }

  /** Publish the retained cache/manifest for the current bundle (no-op without one or offline). */
  async announce(): Promise<void> {
    const c = this.current
    const client = this.opts.client
    if (!c || !client?.connected) return
    const httpPort = this.opts.httpPort?.()
    const httpsPort = this.opts.httpsPort?.()
    const hub = this.opts.hubId
    await client.publish(hub ? 'hubManifest' : 'cacheManifest', hub ? { hub } : {}, {
      v: 1, ts: Date.now(), version: c.version, sha256: c.manifestSha256, url: `/api/bundle/${c.version}/manifest.json`,
      ...(httpPort ? { httpPort } : {}),
      ...(httpsPort ? { httpsPort } : {}),
    }).catch((err: Error) => this.opts.log.warn({ err: err.message }, 'bundle: announcing cache/manifest failed'))
  }

  /**
   * Absolute path of a bundle file, or undefined when the version is unknown or the file is
   * not in that bundle's manifest (only listed names are served: no path tricks).
   */
  async filePath(version: string, file: string): Promise<string | undefined> {
    if (!versionPattern.test(version)) return undefined
    const b = this.known.get(version) ?? await this.loadVersion(version)
    if (!b) return undefined
    if (file !== 'manifest.json' && !b.manifest.files.some((f) => f.name === file)) return undefined
    return join(b.dir, file)
  }

  private setCurrent(b: LoadedBundle): void {
    this.current = b
    this.known.set(b.version, b)
  }

  private async loadVersion(version: string): Promise<LoadedBundle | undefined> {
    const dir = join(this.root, version)
    try {
      const raw = await readFile(join(dir, 'manifest.json'))
      const manifest = JSON.parse(raw.toString('utf8')) as BundleManifest
      if (manifest.version !== version || !Array.isArray(manifest.files)) return undefined
      const b = { version, dir, manifest, manifestSha256: createHash('sha256').update(raw).digest('hex') }
      this.known.set(version, b)
      return b
    } catch {
      return undefined
    }
  }

  /** Bundle folders on disk, newest first. */
  private async onDisk(): Promise<{ version: string; mtimeMs: number }[]> {
    const names = await readdir(this.root).catch(() => [] as string[])
    const out: { version: string; mtimeMs: number }[] = []
    for (const name of names) {
      if (!versionPattern.test(name)) continue
      const s = await stat(join(this.root, name)).catch(() => undefined)
      if (s?.isDirectory()) out.push({ version: name, mtimeMs: s.mtimeMs })
    }
    return out.sort((a, b) => b.mtimeMs - a.mtimeMs)
  }

  private async loadLatest(): Promise<void> {
    for (const { version } of await this.onDisk()) {
      const b = await this.loadVersion(version)
      if (b) {
        if (!this.current) this.setCurrent(b)
        this.opts.log.info({ version }, 'offline bundle loaded from disk')
        void this.announce()
        return
      }
    }
  }

  /** Delete bundle folders beyond the newest `keep` (never the current one) and stale temp folders. */
  private async prune(): Promise<void> {
    const keep = this.opts.keep ?? 2
    const dirs = await this.onDisk()
    const kept = new Set([this.current?.version, ...dirs.filter((d) => d.version !== this.current?.version).slice(0, keep - 1).map((d) => d.version)])
    for (const d of dirs) {
      if (kept.has(d.version)) continue
      this.known.delete(d.version)
      await rm(join(this.root, d.version), { recursive: true, force: true })
      this.opts.log.info({ version: d.version }, 'old offline bundle deleted')
    }
    for (const name of await readdir(this.root).catch(() => [] as string[])) {
      // Only this service builds here and its build is done: any temp folder is a leftover.
      if (name.startsWith('.tmp-')) await rm(join(this.root, name), { recursive: true, force: true })
    }
  }
}
