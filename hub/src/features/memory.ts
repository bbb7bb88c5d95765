// Long-term memory as a hub feature: opens the store (embedded SQLite file under the state dir,
// or Qdrant at QDRANT_URL) and the embedder (EMBEDDING_MODEL, or hashed n-grams), then puts the
// memory stage into the voice pipeline between listen and reply. It starts after the voice
// feature; a store that cannot open fails this feature only (turns go on without memory).
import { join } from 'node:path'
import type { Registry } from 'prom-client'
import type { Feature, Logger } from '@mirrormesh/broker'
import type { HubConfig } from '../config.js'
import type { Pipeline } from '../pipeline/index.js'
import { HashedEmbedder, LlamaEmbedder, type Embedder } from '../memory/embed.js'
import { isMemoryKey } from '../memory/keys.js'
import { QdrantMemoryStore } from '../memory/qdrant.js'
import { Memory, clearSimilarityFor, memoryMetrics, type MemoryMetrics } from '../memory/service.js'
import { SqliteMemoryStore } from '../memory/sqlite.js'
import { MemoryStage } from '../memory/stage.js'
import type { MemoryStore } from '../memory/types.js'

const DAY_MS = 86_400_000

export class MemoryFeature implements Feature {
  readonly name = 'memory'
  memory: Memory | undefined
  /** Something the operator must know (a damaged file moved aside, a model that failed to load). */
  private notice: string | undefined
  private metrics: MemoryMetrics | undefined
  private timer: NodeJS.Timeout | undefined

  constructor(private readonly config: HubConfig, private readonly pipeline: () => Pipeline | undefined, private readonly registry: Registry, private readonly log: Logger) {}

  async start(): Promise<void> {
    const c = this.config
    let embedder: Embedder = new HashedEmbedder()
    if (c.embeddingModel) {
      try {
        embedder = await LlamaEmbedder.load({ modelPath: c.embeddingModel, maxThreads: c.embeddingMaxThreads, timeoutMs: c.embeddingTimeoutMs })
      } catch (err) {
        this.notice = `embedding model ${c.embeddingModel} did not load (${(err as Error).message.slice(0, 120)}); using hashed n-grams`
        this.log.error({ err: (err as Error).message, model: c.embeddingModel }, 'memory: embedding model did not load; falling back to keyword search + hashed n-gram vectors')
      }
    }
    let store: MemoryStore
    try {
      store = c.qdrantUrl
        ? await QdrantMemoryStore.open({ url: c.qdrantUrl, apiKey: c.qdrantApiKey, collection: c.qdrantCollection, dim: embedder.dim })
        : this.openFile(embedder.dim)
    } catch (err) {
      await embedder.close?.()
      throw err
    }
    const metrics = this.metrics ??= memoryMetrics(this.registry, () => this.memory?.store.stats() ?? Promise.resolve({ memories: 0 }))
    const shared = c.memorySharedKeys.split('|').map((k) => k.trim()).filter(Boolean)
    const bad = shared.filter((k) => !isMemoryKey(k))
    if (bad.length) this.log.warn({ keys: bad }, 'MEMORY_SHARED_KEYS: ignoring keys that are not <kind>:<name> (e.g. user:family)')
    const memory = this.memory = new Memory(store, embedder, {
      topK: 4, recentTurns: 4, contextTokens: c.memoryContextTokens, clearSimilarity: clearSimilarityFor(embedder.mode), clearMargin: 0.1,
      retention: { maxCount: c.memoryMaxPerKey, maxAgeMs: c.memoryMaxAgeDays * DAY_MS },
      sharedKeys: shared.filter(isMemoryKey),
    }, metrics, this.log)
    const pruned = await memory.pruneAll().catch((err: unknown) => { this.log.warn({ err: (err as Error).message }, 'memory: prune failed'); return 0 })
    this.timer = setInterval(() => void memory.pruneAll().catch(() => metrics.errors.inc({ op: 'prune' })), DAY_MS)
    this.timer.unref()
    const pipeline = this.pipeline()
    if (pipeline) {
      pipeline.turns.memory = new MemoryStage(memory, () => pipeline.llmConfigured, (op, err) => {
        metrics.errors.inc({ op })
        this.log.warn({ err: (err as Error).message, op }, 'memory failed for a turn; it went on without memory')
      })
    }
    this.log.info({ mode: memory.mode, pruned, ...(await store.stats()) }, 'memory ready')
    // Vectors into memory now, not on each room's first recall (10k memories: tens of ms).
    void store.warm?.().then((keys) => this.log.debug({ keys }, 'memory: vectors loaded'), (err: unknown) => this.log.warn({ err: (err as Error).message }, 'memory: vectors not preloaded; each key loads on its first recall'))
  }

  private openFile(dim: number): SqliteMemoryStore {
    const s = new SqliteMemoryStore(join(this.config.stateDir, 'memory.db'), { dim, vectorCacheBytes: this.config.memoryVectorCacheMb * 1024 * 1024, log: (m) => this.log.warn(m) })
    if (s.movedAside) {
      this.notice = s.movedAside.message
      this.log.error({ path: s.movedAside.path, movedTo: s.movedAside.movedTo }, `memory: ${s.movedAside.message}`)
    }
    return s
  }

  /** health/memory: which mode, and anything the operator must act on (degraded). */
  health(): { state: 'ok' | 'degraded'; reason: string } | undefined {
    if (!this.memory) return undefined
    return this.notice ? { state: 'degraded', reason: `${this.memory.mode}; ${this.notice}`.slice(0, 256) } : { state: 'ok', reason: this.memory.mode }
  }

  async stop(): Promise<void> {
    const p = this.pipeline()
    if (p) p.turns.memory = undefined
    if (this.timer) clearInterval(this.timer)
    await this.memory?.close()
    this.memory = undefined
  }
}
