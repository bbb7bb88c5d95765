// Memory for the conversation: one store, one embedder, the retention and sharing rules.
// Every call that embeds falls back to keyword search when the embedding fails, and counts it
// (mirrormesh_memory_embedding_fallbacks_total), as every other stage falls back.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import type { Logger } from '@mirrormesh/broker'
import type { Embedder } from './embed.js'
import type { MemoryHit, MemoryRecord, MemoryStore, Retention } from './types.js'

export interface MemoryOptions {
  /** Facts offered to the LLM per turn. */
  topK: number
  /** Recent turns of the same key offered to the LLM. */
  recentTurns: number
  /** Most tokens the memories may take in the LLM prompt (about 4 characters a token). */
  contextTokens: number
  retention: Retention
  /** Keys every turn also reads (a household's shared memory); a room never reads another room's otherwise. */
  sharedKeys: readonly string[]
  /**
   * A fact found only by vector is a clear answer from this cosine similarity up, and when it
   * leads the next hit by `clearMargin`. Hashed n-grams score near spellings low (0.2–0.3) but
   * unrelated text near 0; a model scores related text higher: see clearSimilarityFor().
   */
  clearSimilarity: number
  clearMargin: number
}

export const defaultMemoryOptions: MemoryOptions = {
  topK: 4, recentTurns: 4, contextTokens: 256, retention: { maxCount: 5000, maxAgeMs: 365 * 86_400_000 }, sharedKeys: [], clearSimilarity: 0.2, clearMargin: 0.1,
}

/** The clear-match threshold for an embedder: hashed n-grams, or a model. */
export const clearSimilarityFor = (mode: 'model' | 'hashed'): number => (mode === 'hashed' ? 0.2 : 0.5)

export function memoryMetrics(reg: Registry, stats: () => Promise<{ memories: number; bytes?: number }>) {
  return {
    recall: new Histogram({ name: 'mirrormesh_memory_recall_seconds', help: 'Memory recall (embed + search) within a turn', buckets: [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1], registers: [reg] }),
    fallbacks: new Counter({ name: 'mirrormesh_memory_embedding_fallbacks_total', help: 'Embeddings that failed: the memory fell back to keyword search', labelNames: ['reason'], registers: [reg] }),
    errors: new Counter({ name: 'mirrormesh_memory_errors_total', help: 'Memory operations that failed (the turn went on without memory)', labelNames: ['op'], registers: [reg] }),
    size: new Gauge({ name: 'mirrormesh_memory_store_size', help: 'Memory store size: memories kept, and bytes on disk (embedded)', labelNames: ['unit'], registers: [reg],
      async collect() {
        const s = await stats().catch(() => undefined)
        if (!s) return
        this.set({ unit: 'memories' }, s.memories)
        if (s.bytes !== undefined) this.set({ unit: 'bytes' }, s.bytes)
      } }),
  }
}
export type MemoryMetrics = ReturnType<typeof memoryMetrics>

/** How long a turn's transcript waits before it is stored (past a skill reply's first audio). */
export const RECORD_DELAY_MS = 300

const approxTokens = (s: string) => Math.ceil(s.length / 4)

export class Memory {
  private readonly pending = new Set<Promise<unknown>>()
  private writes = 0
  /** Turns waiting to be stored: written a moment later, once the reply has started playing. */
  private queued: Array<{ key: string; text: string; at: number }> = []
  private flushTimer: NodeJS.Timeout | undefined

  constructor(readonly store: MemoryStore, readonly embedder: Embedder, readonly opts: MemoryOptions, private readonly metrics: MemoryMetrics, private readonly log: Logger) {}

  /** One line for /readyz, health/memory and `mirrormesh status`. */
  get mode(): string {
    const vectors = this.embedder.mode === 'model' ? `embedding model ${this.embedder.name} (${this.embedder.dim} dims)` : 'keyword + hashed n-gram vectors (no embedding model)'
    return `${this.store.kind}, ${vectors}`
  }

  /** The keys a turn under `key` reads: its own and the shared ones. */
  readKeys(key: string): string[] {
    return [key, ...this.opts.sharedKeys.filter((k) => k !== key)]
  }

  /** The vector of `text`, or undefined (counted) when the embedder failed. */
  async vector(text: string): Promise<Float32Array | undefined> {
    try {
      return await this.embedder.embed(text)
    } catch (err) {
      const reason = String((err as { code?: string }).code ?? 'error').slice(0, 32)
      this.metrics.fallbacks.inc({ reason })
      this.log.warn({ err: (err as Error).message, reason }, 'embedding failed: memory uses keyword search for this turn')
      return undefined
    }
  }

  async remember(key: string, fact: string): Promise<MemoryRecord> {
    const r = await this.store.add(key, 'fact', fact, await this.vector(fact))
    this.afterWrite(key)
    return r
  }

  /** Facts about `about` under the turn's keys, best first; the time taken is observed. */
  async recall(key: string, about: string, k = this.opts.topK): Promise<MemoryHit[]> {
    const end = this.metrics.recall.startTimer()
    try {
      return await this.store.search(this.readKeys(key), { text: about, vector: await this.vector(about), k, kind: 'fact' })
    } finally { end() }
  }

  /** Whether a hit answers a question on its own (the skill answer) or needs the LLM to judge. */
  isClear(hits: readonly MemoryHit[]): boolean {
    const [top, next] = hits
    if (!top) return false
    if (top.keyword) return true
    const sim = top.similarity ?? 0
    return sim >= this.opts.clearSimilarity && sim - (next?.similarity ?? 0) >= this.opts.clearMargin
  }

  /** Deletes the newest fact under `key` (`about` unset) or the one that best matches `about`. */
  async forget(key: string, about?: string): Promise<MemoryRecord | undefined> {
    const hits = about ? (await this.recall(key, about, 2)).filter((h) => h.key === key) : []
    const target = about ? (this.isClear(hits) ? hits[0] : undefined) : (await this.store.list(key, 1, 'fact'))[0]
    if (!target) return undefined
    await this.store.delete(key, target.id)
    return target
  }

  /** Lines for the LLM prompt: the best facts, then recent turns, within the token budget. */
  async context(key: string, text: string): Promise<string[]> {
    const end = this.metrics.recall.startTimer()
    try {
      const [facts, turns] = await Promise.all([
        this.store.search(this.readKeys(key), { text, vector: await this.vector(text), k: this.opts.topK, kind: 'fact' }),
        this.opts.recentTurns > 0 ? this.store.list(key, this.opts.recentTurns, 'turn') : Promise.resolve([]),
      ])
      const lines: string[] = []
      let budget = this.opts.contextTokens
      const take = (line: string) => {
        const cost = approxTokens(line)
        if (cost > budget) return false
        budget -= cost
        lines.push(line)
        return true
      }
      for (const f of facts) if (!take(`- The user told you: ${f.text}`)) break
      for (const t of [...turns].reverse()) if (!take(`- Said here earlier: ${t.text}`)) break
      return lines
    } finally { end() }
  }

  /**
   * Stores a turn's transcript after the reply has started (never on the turn's critical path:
   * better-sqlite3 writes synchronously, so a write made now would run before the reply stage
   * gets the transcript; it is queued for RECORD_DELAY_MS, past a skill reply's first audio, and
   * keeps the time it was said). Without a vector: turns are found by keyword and listed as
   * recent turns, never searched by vector, so the vector index holds only facts (a search scans
   * a fifth as much; no model call per turn).
   */
  recordTurn(key: string, text: string): void {
    if (this.queued.length >= 1000) return void this.metrics.errors.inc({ op: 'record' }) // the store is stuck: drop, counted
    this.queued.push({ key, text, at: Date.now() })
    this.flushTimer ??= setTimeout(() => this.flushTurns(), RECORD_DELAY_MS)
  }

  private flushTurns(): void {
    clearTimeout(this.flushTimer)
    this.flushTimer = undefined
    for (const { key, text, at } of this.queued.splice(0)) {
      const p = (async () => {
        await this.store.add(key, 'turn', text, undefined, at)
        this.afterWrite(key)
      })().catch((err: unknown) => {
        this.metrics.errors.inc({ op: 'record' })
        this.log.warn({ err: (err as Error).message }, 'memory: turn not stored')
      }).finally(() => this.pending.delete(p))
      this.pending.add(p)
    }
  }

  /** Retention every 20 writes: keeps pruning off most turns. */
  private afterWrite(key: string): void {
    if (++this.writes % 20 !== 0) return
    void this.store.prune(this.opts.retention, key).catch((err: unknown) => {
      this.metrics.errors.inc({ op: 'prune' })
      this.log.warn({ err: (err as Error).message }, 'memory: prune failed')
    })
  }

  /** Prunes every key (at start and daily). */
  async pruneAll(): Promise<number> {
    return this.store.prune(this.opts.retention)
  }

  async close(): Promise<void> {
    this.flushTurns()
    await Promise.allSettled([...this.pending])
    await this.store.close()
    await this.embedder.close?.()
  }
}
