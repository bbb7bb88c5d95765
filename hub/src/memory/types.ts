// Long-term memory: what a MemoryStore keeps and finds. Two stores implement it (sqlite.ts,
// embedded and the default; qdrant.ts, a Qdrant server) and pass one conformance suite
// (conformance.ts). Vectors come from the caller (embed.ts), so a store never loads a model.

/** A fact someone asked to be remembered, or one turn's transcript. */
export type MemoryKind = 'fact' | 'turn'

export interface MemoryRecord {
  /** Store-assigned id (a number as text in SQLite, a UUID in Qdrant). */
  readonly id: string
  /** Whose memory: `room:<room>`, `node:<id>` or `user:<name>` (see keys.ts). */
  readonly key: string
  readonly kind: MemoryKind
  readonly text: string
  /** When it was said, ms since epoch. */
  readonly at: number
}

export interface MemoryHit extends MemoryRecord {
  /** Reciprocal rank fusion of the vector and keyword rankings; higher is better. */
  readonly score: number
  /** Cosine similarity to the query vector (−1…1); absent when it was found by keywords only. */
  readonly similarity?: number
  /** Whether keyword search (FTS5 BM25, or Qdrant's text match) found it. */
  readonly keyword: boolean
}

export interface SearchQuery {
  /** The words searched by keyword. */
  text: string
  /** The query's embedding; absent: keyword search only (an embedding that failed). */
  vector?: Float32Array
  /** Most hits returned. */
  k: number
  /** Only this kind; absent: both. */
  kind?: MemoryKind
}

export interface Retention {
  /** Most memories kept per key; the oldest go first. 0: no limit. */
  maxCount: number
  /** Memories older than this are pruned. 0: kept for ever. */
  maxAgeMs: number
}

export interface MemoryStore {
  /** 'embedded' (SQLite file) or 'qdrant'. */
  readonly kind: 'embedded' | 'qdrant'
  /** Stores one memory with its vector (absent: found by keywords only). */
  add(key: string, kind: MemoryKind, text: string, vector: Float32Array | undefined, at?: number): Promise<MemoryRecord>
  /** Hybrid search restricted to `keys`: nothing under any other key is ever returned. */
  search(keys: readonly string[], q: SearchQuery): Promise<MemoryHit[]>
  /** Newest first. */
  list(key: string, limit?: number, kind?: MemoryKind): Promise<MemoryRecord[]>
  /** Deletes one memory of `key` (by id), or every memory of `key`; returns how many went. */
  delete(key: string, id?: string): Promise<number>
  /** Applies retention to one key (or every key); returns how many went. */
  prune(retention: Retention, key?: string, now?: number): Promise<number>
  /** Prepares for fast first searches (the embedded store loads vectors into memory); optional. */
  warm?(): Promise<number>
  /** Memories kept, and the file's size where there is one. */
  stats(): Promise<{ memories: number; bytes?: number }>
  close(): Promise<void>
}

/** Reciprocal rank fusion constant (Cormack et al.): 60 damps the top ranks' weight. */
export const RRF_K = 60

/** Fuses ranked id lists: each list adds 1/(RRF_K + rank) per id. */
export function fuseRanks(lists: ReadonlyArray<readonly string[]>): Map<string, number> {
  const score = new Map<string, number>()
  for (const list of lists) list.forEach((id, i) => score.set(id, (score.get(id) ?? 0) + 1 / (RRF_K + i + 1)))
  return score
}

/** Words worth searching by keyword: no stop words, no punctuation. */
export function keywords(text: string): string[] {
  const words = text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []
  return [...new Set(words.filter((w) => w.length > 1 && !STOP.has(w)))]
}

const STOP = new Set(('a an and are as at be but by did do does for from had has have i in into is it its me my mine of on or our so that the their them there they this to told tell was we were what when where which who why will with you your about remember recall forget'.split(' ')))
