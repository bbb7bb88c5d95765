// Per-node settings the hub pushes (room, name, wake word, volume), kept in
// <stateDir>/node-config.json. Written whole to a temp file and renamed over the old one,
// so a crash mid-write leaves the previous file, never half of one.
import { mkdir, readFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { writeAtomic, nodeConfigPatch, type NodeConfigPatch, type NodeConfigValues } from '@mirrormesh/broker'

export interface StoredNodeConfig { config: NodeConfigValues; updatedAt: number }

export class NodeConfigStore {
  private entries = new Map<string, StoredNodeConfig>()
  private writing: Promise<void> = Promise.resolve()

  constructor(readonly path: string, private readonly now: () => number = Date.now) {}

  /** Reads the file; a missing file is an empty store, a broken one an error (not silently lost). */
  async load(): Promise<void> {
    const text = await readFile(this.path, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return '{}'
      throw err
    })
    let raw: unknown
    try {
      raw = JSON.parse(text)
    } catch {
      throw new Error(`${this.path} is not JSON; fix or remove it`)
    }
    const entries = new Map<string, StoredNodeConfig>()
    for (const [id, v] of Object.entries(raw as Record<string, { config?: unknown; updatedAt?: unknown }>)) {
      const parsed = nodeConfigPatch.safeParse(v?.config)
      if (!parsed.success) throw new Error(`${this.path}: node ${id} has an invalid config (${parsed.error.issues[0]?.message ?? 'invalid'}); fix or remove it`)
      entries.set(id, { config: parsed.data, updatedAt: typeof v.updatedAt === 'number' ? v.updatedAt : 0 })
    }
    this.entries = entries
  }

  get(id: string): StoredNodeConfig | undefined {
    return this.entries.get(id)
  }

  list(): [string, StoredNodeConfig][] {
    return [...this.entries]
  }

  /** Merges a validated patch into the node's config and persists it. */
  async update(id: string, patch: NodeConfigPatch): Promise<StoredNodeConfig> {
    const next = { config: { ...this.entries.get(id)?.config, ...patch }, updatedAt: this.now() }
    this.entries.set(id, next)
    await this.save()
    return next
  }

  /** Drops a node's config (a node that moved to a new id); false when it had none. */
  async remove(id: string): Promise<boolean> {
    if (!this.entries.delete(id)) return false
    await this.save()
    return true
  }

  private save(): Promise<void> {
    // Writes queue up so the file on disk always ends at the newest state.
    this.writing = this.writing.catch(() => undefined).then(async () => {
      await mkdir(dirname(this.path), { recursive: true })
      await writeAtomic(this.path, JSON.stringify(Object.fromEntries(this.entries), null, 2) + '\n', { mode: 0o600 })
    })
    return this.writing
  }
}
