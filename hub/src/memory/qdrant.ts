// The Qdrant memory store (@qdrant/js-client-rest 1.18): one collection, created on start with
// the embedder's size as the named vector "dense" (a point may lack it: an embedding that
// failed), payload indexes on key (keyword), kind (keyword), at (integer) and text (full text).
// Every query filters on the memory key. Keyword search is Qdrant's text match, ranked here by
// words matched; the rankings are fused by reciprocal rank as in the embedded store.
// Not yet run against a live Qdrant (none can be installed here): README "Memory".
import { randomUUID } from 'node:crypto'
import { QdrantClient } from '@qdrant/js-client-rest'
import { fuseRanks, keywords, type MemoryHit, type MemoryKind, type MemoryRecord, type MemoryStore, type Retention, type SearchQuery } from './types.js'

export interface QdrantStoreOptions {
  url: string
  apiKey?: string
  collection: string
  dim: number
  candidates?: number
}

interface Payload { key: string; kind: MemoryKind; text: string; at: number }
type Condition = Record<string, unknown>

const VECTOR = 'dense'

export class QdrantMemoryStore implements MemoryStore {
  readonly kind = 'qdrant' as const
  private readonly client: QdrantClient
  private readonly name: string

  private constructor(private readonly opts: QdrantStoreOptions) {
    this.client = new QdrantClient({ url: opts.url, ...(opts.apiKey ? { apiKey: opts.apiKey } : {}), checkCompatibility: false })
    this.name = opts.collection
  }

  /** Connects, creates the collection and its indexes when missing, and checks the vector size. */
  static async open(opts: QdrantStoreOptions): Promise<QdrantMemoryStore> {
    const s = new QdrantMemoryStore(opts)
    const { exists } = await s.client.collectionExists(s.name)
    if (!exists) {
      await s.client.createCollection(s.name, { vectors: { [VECTOR]: { size: opts.dim, distance: 'Cosine' } } })
    } else {
      const info = await s.client.getCollection(s.name)
      const vectors = info.config.params.vectors as Record<string, { size?: number }> | undefined
      const size = vectors?.[VECTOR]?.size
      if (size !== opts.dim) throw Object.assign(new Error(`Qdrant collection ${s.name} has ${size ?? 'no'} "${VECTOR}" vectors of that name/size; the embedder makes ${opts.dim}. Fix: QDRANT_COLLECTION=<a new name>, or the embedding model the collection was made with`), { code: 'dim_mismatch' })
    }
    for (const [field_name, field_schema] of [['key', 'keyword'], ['kind', 'keyword'], ['at', 'integer'], ['text', 'text']] as const) {
      await s.client.createPayloadIndex(s.name, { wait: true, field_name, field_schema })
    }
    return s
  }

  private filter(keys: readonly string[], kind?: MemoryKind, extra: Condition[] = []): { must: Condition[] } {
    return { must: [{ key: 'key', match: { any: [...keys] } }, ...(kind ? [{ key: 'kind', match: { value: kind } }] : []), ...extra] }
  }

  async add(key: string, kind: MemoryKind, text: string, vector: Float32Array | undefined, at = Date.now()): Promise<MemoryRecord> {
    if (vector && vector.length !== this.opts.dim) throw new Error(`vector has ${vector.length} dimensions, the store ${this.opts.dim}`)
    const id = randomUUID()
    const payload: Payload = { key, kind, text, at }
    await this.client.upsert(this.name, { wait: true, points: [{ id, vector: vector ? { [VECTOR]: Array.from(vector) } : {}, payload: { ...payload } }] })
    return { id, ...payload }
  }

  async search(keys: readonly string[], q: SearchQuery): Promise<MemoryHit[]> {
    if (!keys.length || q.k <= 0) return []
    const n = Math.max(q.k, this.opts.candidates ?? 20)
    const found = new Map<string, Payload>()
    const sims = new Map<string, number>()
    const byVector: string[] = []
    if (q.vector) {
      const r = await this.client.query(this.name, { query: Array.from(q.vector), using: VECTOR, filter: this.filter(keys, q.kind), limit: n, with_payload: true })
      for (const p of r.points) {
        const id = String(p.id)
        byVector.push(id)
        sims.set(id, p.score)
        found.set(id, p.payload as unknown as Payload)
      }
    }
    const words = keywords(q.text)
    const byKeyword: string[] = []
    if (words.length) {
      const r = await this.client.scroll(this.name, { filter: { ...this.filter(keys, q.kind), should: words.map((w) => ({ key: 'text', match: { text: w } })) }, limit: n * 5, with_payload: true })
      const ranked = r.points.map((p) => {
        const payload = p.payload as unknown as Payload
        const have = new Set(keywords(payload.text))
        return { id: String(p.id), payload, matched: words.filter((w) => have.has(w)).length }
      }).sort((a, b) => b.matched - a.matched || b.payload.at - a.payload.at).slice(0, n)
      for (const x of ranked) { byKeyword.push(x.id); found.set(x.id, x.payload) }
    }
    const fused = fuseRanks([byVector, byKeyword])
    const kw = new Set(byKeyword)
    return [...fused.entries()].map(([id, score]): MemoryHit => {
      const p = found.get(id)!
      const sim = sims.get(id)
      return { id, key: p.key, kind: p.kind, text: p.text, at: p.at, score, keyword: kw.has(id), ...(sim === undefined ? {} : { similarity: sim }) }
    }).sort((a, b) => b.score - a.score || b.at - a.at).slice(0, q.k)
  }

  async list(key: string, limit = 100, kind?: MemoryKind): Promise<MemoryRecord[]> {
    const r = await this.client.scroll(this.name, { filter: this.filter([key], kind), limit, with_payload: true, order_by: { key: 'at', direction: 'desc' } })
    return r.points.map((p) => ({ id: String(p.id), ...(p.payload as unknown as Payload) }))
  }

  private async deleteWhere(filter: { must: Condition[] }): Promise<number> {
    const { count } = await this.client.count(this.name, { filter, exact: true })
    if (count) await this.client.delete(this.name, { wait: true, filter })
    return count
  }

  async delete(key: string, id?: string): Promise<number> {
    return this.deleteWhere(this.filter([key], undefined, id === undefined ? [] : [{ has_id: [id] }]))
  }

  async prune(r: Retention, key?: string, now = Date.now()): Promise<number> {
    let keys = key !== undefined ? [key] : []
    if (key === undefined) {
      const seen = new Set<string>()
      let offset: string | number | undefined
      do {
        const page = await this.client.scroll(this.name, { limit: 1000, with_payload: ['key'], ...(offset !== undefined ? { offset } : {}) })
        for (const p of page.points) seen.add((p.payload as { key: string }).key)
        offset = (page.next_page_offset ?? undefined) as string | number | undefined
      } while (offset !== undefined)
      keys = [...seen]
    }
    let gone = 0
    for (const k of keys) {
      if (r.maxAgeMs > 0) gone += await this.deleteWhere(this.filter([k], undefined, [{ key: 'at', range: { lt: now - r.maxAgeMs } }]))
      if (r.maxCount > 0) {
        const { count } = await this.client.count(this.name, { filter: this.filter([k]), exact: true })
        if (count > r.maxCount) {
          const old = await this.client.scroll(this.name, { filter: this.filter([k]), limit: count - r.maxCount, with_payload: false, order_by: { key: 'at', direction: 'asc' } })
          const ids = old.points.map((p) => p.id)
          if (ids.length) await this.client.delete(this.name, { wait: true, points: ids })
          gone += ids.length
        }
      }
    }
    return gone
  }

  async stats(): Promise<{ memories: number }> {
    const { count } = await this.client.count(this.name, { exact: true })
    return { memories: count }
  }

  /** Deletes the whole collection (tests, benchmarks). */
  async drop(): Promise<void> { await this.client.deleteCollection(this.name) }

  async close(): Promise<void> { /* REST: nothing held open */ }
}
