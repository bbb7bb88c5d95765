// The embedded memory store: one SQLite file under the hub's state dir, WAL mode. Keyword
// search is FTS5 (BM25, porter stemming: "keys" meets "key"); each row's FTS entry carries a
// tag token for its key and kind, so a search scores only that key's facts (filtering after the
// match by a join scored every key's rows: 8 ms instead of 2 at 10k). Vector search is sqlite-vec's
// vec0 table with the memory key as its partition key (the durable copy). A search ranks the
// key's vectors from an in-memory copy (vector-cache.ts), loaded on the key's first search and
// kept in step on every add/delete/prune here; a write by another process (SQLite's
// data_version moves) drops the copies. A key too big for the cache budget is searched by
// sqlite-vec instead. The two rankings are fused by reciprocal rank. better-sqlite3 is
// synchronous: every call here is a few indexed statements (figures: README "Memory").
// A file that is not a database, or fails its quick check, is moved aside (never reset in place)
// and a fresh one started; `movedAside` says where it went, for the log and health/memory.
// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- an ambient module declaration (no @types package), needed by the test typecheck too
/// <reference path="./better-sqlite3.d.ts" />
import Database from 'better-sqlite3'
import { renameSync, statSync, existsSync } from 'node:fs'
import * as sqliteVec from 'sqlite-vec'
import { KeyVectors, KIND_FACT, KIND_TURN, type VectorHit } from './vector-cache.js'
import { fuseRanks, keywords, type MemoryHit, type MemoryKind, type MemoryRecord, type MemoryStore, type Retention, type SearchQuery } from './types.js'

export interface SqliteStoreOptions {
  /** Vector size (the embedder's); vectors of another size live in their own table. */
  dim: number
  /** How long a writer waits for another process's lock. */
  busyTimeoutMs?: number
  /** Candidates each ranking contributes before fusion. */
  candidates?: number
  /** Most bytes of vectors kept in memory across keys (least recently searched key goes first). */
  vectorCacheBytes?: number
  /** Where the store says something worth a log line. */
  log?: (message: string) => void
}

/** The FTS tag token of a key and kind: hex keeps any key one token; a final digit keeps the stemmer off it. */
const tagOf = (key: string, kind: MemoryKind) => `k${Buffer.from(key, 'utf8').toString('hex')}${kind === 'fact' ? 1 : 2}`
const TAG_SQL = (row: string) => `'k' || lower(hex(${row}.mkey)) || CASE ${row}.kind WHEN 'fact' THEN '1' ELSE '2' END`

const kindCode = (k: MemoryKind | undefined) => (k === 'fact' ? KIND_FACT : k === 'turn' ? KIND_TURN : -1)

interface Row { id: number; mkey: string; kind: MemoryKind; text: string; at: number }

export class CorruptMemoryFile extends Error {
  readonly code = 'memory_corrupt'
  constructor(readonly path: string, readonly movedTo: string, cause: string) {
    super(`memory file ${path} is damaged (${cause}); moved aside to ${movedTo} and a new one started`)
  }
}

const isCorruption = (err: unknown) => /SQLITE_(NOTADB|CORRUPT)/.test(String((err as { code?: string }).code ?? '')) || /malformed|not a database/i.test(String((err as Error).message))

export class SqliteMemoryStore implements MemoryStore {
  readonly kind = 'embedded' as const
  /** Set when the file found at open was damaged and moved aside. */
  readonly movedAside: CorruptMemoryFile | undefined
  private readonly db: Database
  private readonly vecTable: string
  private readonly candidates: number
  private readonly st: Record<'insert' | 'insertVec' | 'byIds' | 'list' | 'listKind' | 'dataVersion' | 'loadVec' | 'kinds', ReturnType<Database['prepare']>>
  /** Search statements by shape (how many keys, which kind), prepared once. */
  private readonly shaped = new Map<string, ReturnType<Database['prepare']>>()
  /** In-memory vectors per key, least recently searched first (Map order). */
  private readonly cached = new Map<string, KeyVectors>()
  /** Keys whose vectors exceed the cache budget on their own: searched by sqlite-vec. */
  private readonly tooBig = new Set<string>()
  private readonly cacheBudget: number
  private dataVersion = 0
  private readonly log: ((message: string) => void) | undefined
  /** Scratch for vector scores, reused across searches. */
  private scores = new Float32Array(1024)

  constructor(readonly path: string, private readonly opts: SqliteStoreOptions) {
    if (!Number.isInteger(opts.dim) || opts.dim < 1 || opts.dim > 8192) throw new Error(`memory vector size ${opts.dim} is not 1…8192`)
    this.candidates = opts.candidates ?? 20
    this.cacheBudget = opts.vectorCacheBytes ?? 64 * 1024 * 1024
    this.log = opts.log
    this.vecTable = `vectors_${opts.dim}`
    let db: Database
    try {
      db = this.openChecked()
    } catch (err) {
      if (!isCorruption(err) && !(err instanceof CorruptCheck)) throw err
      const movedTo = `${path}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`
      renameSync(path, movedTo)
      for (const side of ['-wal', '-shm']) if (existsSync(path + side)) renameSync(path + side, movedTo + side)
      this.movedAside = new CorruptMemoryFile(path, movedTo, (err as Error).message)
      db = this.openChecked()
    }
    this.db = db
    this.st = {
      insert: db.prepare('INSERT INTO memories(mkey, kind, text, at) VALUES (?, ?, ?, ?)'),
      insertVec: db.prepare(`INSERT INTO ${this.vecTable}(rowid, mkey, kind, embedding) VALUES (?, ?, ?, ?)`),
      byIds: db.prepare('SELECT id, mkey, kind, text, at FROM memories WHERE id IN (SELECT value FROM json_each(?))'),
      list: db.prepare('SELECT id, mkey, kind, text, at FROM memories WHERE mkey = ? ORDER BY at DESC, id DESC LIMIT ?'),
      listKind: db.prepare('SELECT id, mkey, kind, text, at FROM memories WHERE mkey = ? AND kind = ? ORDER BY at DESC, id DESC LIMIT ?'),
      dataVersion: db.prepare('PRAGMA data_version'),
      loadVec: db.prepare(`SELECT rowid AS id, kind, embedding FROM ${this.vecTable} WHERE mkey = ?`),
      kinds: db.prepare('SELECT id, kind FROM memories WHERE mkey = ?'),
    }
    this.dataVersion = this.readDataVersion()
  }

  private openChecked(): Database {
    const db = new Database(this.path, { timeout: this.opts.busyTimeoutMs ?? 5000 })
    try {
      sqliteVec.load(db)
      db.pragma('journal_mode = WAL')
      db.pragma('synchronous = NORMAL')
      // A search scans the key's vector chunks: keep them in memory (SQLite's default cache is 2 MB,
      // which made a 10k-memory scan re-read the file every time: 2-3x slower).
      db.pragma('cache_size = -65536')
      db.pragma('mmap_size = 268435456')
      const check = db.pragma('quick_check', { simple: true })
      if (check !== 'ok') throw new CorruptCheck(String(check))
      db.exec(`
        CREATE TABLE IF NOT EXISTS memories(id INTEGER PRIMARY KEY, mkey TEXT NOT NULL, kind TEXT NOT NULL, text TEXT NOT NULL, at INTEGER NOT NULL);
        CREATE INDEX IF NOT EXISTS memories_key_at ON memories(mkey, at);
        CREATE INDEX IF NOT EXISTS memories_key_kind_at ON memories(mkey, kind, at);
        CREATE VIRTUAL TABLE IF NOT EXISTS memories_words USING fts5(text, tag, content='', contentless_delete=1, tokenize='porter unicode61');
        CREATE TRIGGER IF NOT EXISTS memories_words_ai AFTER INSERT ON memories BEGIN INSERT INTO memories_words(rowid, text, tag) VALUES (new.id, new.text, ${TAG_SQL('new')}); END;
        CREATE TRIGGER IF NOT EXISTS memories_words_ad AFTER DELETE ON memories BEGIN DELETE FROM memories_words WHERE rowid = old.id; END;
        CREATE VIRTUAL TABLE IF NOT EXISTS ${this.vecTable} USING vec0(mkey text partition key, kind text, embedding float[${this.opts.dim}] distance_metric=cosine);
      `)
      if (db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'memories_fts'").get()) {
        // A file from before the tag: index its memories again (once), then drop the old index.
        db.transaction(() => {
          db.exec(`INSERT INTO memories_words(rowid, text, tag) SELECT id, text, ${TAG_SQL('memories')} FROM memories;
            DROP TRIGGER IF EXISTS memories_ai; DROP TRIGGER IF EXISTS memories_ad; DROP TABLE memories_fts;`)
        })()
      }
      return db
    } catch (err) {
      db.close()
      throw err
    }
  }

  async add(key: string, kind: MemoryKind, text: string, vector: Float32Array | undefined, at = Date.now()): Promise<MemoryRecord> {
    if (vector && vector.length !== this.opts.dim) throw new Error(`vector has ${vector.length} dimensions, the store ${this.opts.dim}`)
    const id = this.db.transaction(() => {
      const id = BigInt(this.st.insert.run(key, kind, text, at).lastInsertRowid)
      if (vector) this.st.insertVec.run(id, key, kind, vector)
      return id
    })()
    if (vector) this.cached.get(key)?.add(Number(id), kindCode(kind), vector)
    return { id: String(id), key, kind, text, at }
  }

  async search(keys: readonly string[], q: SearchQuery): Promise<MemoryHit[]> {
    if (keys.length === 0 || q.k <= 0) return []
    const n = Math.max(q.k, this.candidates)
    const sims = new Map<string, number>()
    const byVector: string[] = []
    if (q.vector) {
      for (const r of this.vectorSearch(keys, q.vector, n, q.kind)) { byVector.push(String(r.id)); sims.set(String(r.id), r.similarity) }
    }
    const words = keywords(q.text)
    const byKeyword: string[] = []
    if (words.length) {
      const tags = keys.flatMap((k) => (q.kind ? [tagOf(k, q.kind)] : [tagOf(k, 'fact'), tagOf(k, 'turn')]))
      const match = `tag : (${tags.join(' OR ')}) AND text : (${words.map((w) => `"${w.replace(/"/g, '')}"`).join(' OR ')})`
      // The tag column weighs nothing in the ranking: it only filters.
      const rows = this.statement('fts', () => 'SELECT rowid AS id FROM memories_words WHERE memories_words MATCH ? ORDER BY bm25(memories_words, 1.0, 0.0) LIMIT ?').all(match, n) as Array<{ id: number }>
      for (const r of rows) byKeyword.push(String(r.id))
    }
    const fused = fuseRanks([byVector, byKeyword])
    if (fused.size === 0) return []
    const rows = this.st.byIds.all(JSON.stringify([...fused.keys()].map(Number))) as Row[]
    const kw = new Set(byKeyword)
    return rows
      .filter((r) => !q.kind || r.kind === q.kind)
      .map((r): MemoryHit => {
        const id = String(r.id)
        const sim = sims.get(id)
        return { id, key: r.mkey, kind: r.kind, text: r.text, at: r.at, score: fused.get(id)!, keyword: kw.has(id), ...(sim === undefined ? {} : { similarity: sim }) }
      })
      .sort((a, b) => b.score - a.score || b.at - a.at)
      .slice(0, q.k)
  }

  /** The `n` nearest vectors under `keys`: from the in-memory copies, or sqlite-vec for a key too big for them. */
  private vectorSearch(keys: readonly string[], vector: Float32Array, n: number, kind: MemoryKind | undefined): VectorHit[] {
    if (vector.length !== this.opts.dim) throw new Error(`query vector has ${vector.length} dimensions, the store ${this.opts.dim}`)
    this.syncWithOtherWriters()
    const top: VectorHit[] = []
    const uncached: string[] = []
    for (const key of keys) {
      const kv = this.vectorsOf(key)
      if (!kv) { uncached.push(key); continue }
      if (this.scores.length < kv.size) this.scores = new Float32Array(Math.max(kv.size, this.scores.length * 2))
      kv.search(vector, kindCode(kind), n, this.scores, top)
    }
    if (uncached.length) {
      // vec0 filters on the partition key before it ranks: other keys' vectors are never read.
      const marks = uncached.map(() => '?').join(', ')
      const rows = this.statement(`vec:${uncached.length}:${kind ?? ''}`, () => `SELECT rowid AS id, distance FROM ${this.vecTable} WHERE embedding MATCH ? AND k = ? AND ${uncached.length === 1 ? 'mkey = ?' : `mkey IN (${marks})`}${kind ? ' AND kind = ?' : ''}`)
        .all(vector, n, ...uncached, ...(kind ? [kind] : [])) as Array<{ id: number; distance: number }>
      for (const r of rows) top.push({ id: r.id, similarity: 1 - r.distance })
      top.sort((a, b) => b.similarity - a.similarity)
      top.length = Math.min(top.length, n)
    }
    return top
  }

  /**
   * Loads the most recently used keys' vectors ahead of their first search (at start, off any
   * turn's path), one key per event-loop turn; the newest key is loaded last, so it is kept
   * when the budget runs out. Returns how many keys are in memory.
   */
  async warm(maxKeys = 64): Promise<number> {
    const keys = (this.db.prepare('SELECT mkey FROM memories GROUP BY mkey ORDER BY max(at) DESC LIMIT ?').all(maxKeys) as Array<{ mkey: string }>).map((r) => r.mkey)
    for (const key of keys.reverse()) {
      await new Promise((resolve) => setImmediate(resolve))
      if (!this.db.open) return 0
      this.syncWithOtherWriters()
      this.vectorsOf(key)
    }
    return this.cached.size
  }

  /** The key's in-memory vectors, loaded on first use; undefined when the key alone is over budget. */
  private vectorsOf(key: string): KeyVectors | undefined {
    const hit = this.cached.get(key)
    if (hit) {
      this.cached.delete(key) // most recently used goes last
      this.cached.set(key, hit)
      return hit
    }
    if (this.tooBig.has(key)) return undefined
    const kv = this.loadVectors(key)
    if (!kv) { this.tooBig.add(key); return undefined }
    let total = kv.bytes
    for (const other of this.cached.values()) total += other.bytes
    for (const [k, other] of this.cached) {
      if (total <= this.cacheBudget) break
      this.cached.delete(k)
      total -= other.bytes
    }
    this.cached.set(key, kv)
    return kv
  }

  /**
   * Reads a key's vectors straight from vec0's chunk tables (10k vectors: a few ms; through the
   * vec0 table: 100–400 ms on the 2-core EPYC, long enough to delay the key's first turn). The
   * layout is sqlite-vec 0.1's; anything unexpected falls back to reading through vec0.
   */
  private loadVectors(key: string): KeyVectors | undefined {
    const kinds = new Map<number, string>()
    for (const r of this.st.kinds.all(key) as Array<{ id: number; kind: string }>) kinds.set(r.id, r.kind)
    try {
      const chunks = this.statement('chunks', () => `SELECT c.size AS size, c.validity AS validity, c.rowids AS rowids, v.vectors AS vectors
        FROM ${this.vecTable}_chunks c JOIN ${this.vecTable}_vector_chunks00 v ON v.rowid = c.chunk_id WHERE c.partition00 = ?`).all(key) as Array<{ size: number; validity: Buffer; rowids: Buffer; vectors: Buffer }>
      const rowBytes = this.opts.dim * 4
      let count = 0
      for (const c of chunks) {
        if (c.validity.length !== Math.ceil(c.size / 8) || c.rowids.length !== c.size * 8 || c.vectors.length !== c.size * rowBytes) throw new Error('unexpected vec0 chunk layout')
        for (let i = 0; i < c.size; i++) if (c.validity[i >> 3]! & (1 << (i & 7))) count++
      }
      const kv = new KeyVectors(this.opts.dim, count + 16)
      if (kv.bytes > this.cacheBudget) return undefined
      for (const c of chunks) {
        const rows: number[] = []
        const ids: number[] = []
        const codes: number[] = []
        for (let i = 0; i < c.size; i++) {
          if (!(c.validity[i >> 3]! & (1 << (i & 7)))) continue
          const id = Number(c.rowids.readBigInt64LE(i * 8))
          const kind = kinds.get(id)
          if (kind === undefined) throw new Error(`vec0 row ${id} has no memory under ${key}`)
          rows.push(i)
          ids.push(id)
          codes.push(kindCode(kind as MemoryKind))
        }
        kv.addRows(floats(c.vectors), rows, ids, codes)
      }
      return kv
    } catch (err) {
      this.log?.(`memory: vectors of ${key} read through vec0 (${(err as Error).message})`)
      const rows = this.st.loadVec.all(key) as Array<{ id: number; kind: string; embedding: Buffer }>
      const kv = new KeyVectors(this.opts.dim, rows.length + 16)
      if (kv.bytes > this.cacheBudget) return undefined
      for (const r of rows) kv.add(r.id, kindCode(r.kind as MemoryKind), floats(r.embedding))
      return kv
    }
  }

  /** Another process (or connection) wrote: the in-memory copies may be stale, so they go. */
  private syncWithOtherWriters(): void {
    const v = this.readDataVersion()
    if (v === this.dataVersion) return
    this.dataVersion = v
    this.cached.clear()
    this.tooBig.clear()
  }

  private readDataVersion(): number {
    return Number((this.st.dataVersion.get() as { data_version: number }).data_version)
  }

  private statement(shape: string, sql: () => string): ReturnType<Database['prepare']> {
    let st = this.shaped.get(shape)
    if (!st) this.shaped.set(shape, st = this.db.prepare(sql()))
    return st
  }

  async list(key: string, limit = 100, kind?: MemoryKind): Promise<MemoryRecord[]> {
    const rows = (kind ? this.st.listKind.all(key, kind, limit) : this.st.list.all(key, limit)) as Row[]
    return rows.map((r) => ({ id: String(r.id), key: r.mkey, kind: r.kind, text: r.text, at: r.at }))
  }

  private deleteIds(ids: number[]): number {
    if (!ids.length) return 0
    const json = JSON.stringify(ids)
    const gone = this.db.transaction(() => {
      this.statement('delVec', () => `DELETE FROM ${this.vecTable} WHERE rowid IN (SELECT value FROM json_each(?))`).run(json)
      return this.statement('del', () => 'DELETE FROM memories WHERE id IN (SELECT value FROM json_each(?))').run(json).changes
    })()
    for (const kv of this.cached.values()) for (const id of ids) kv.remove(id)
    this.tooBig.clear() // a key over budget may fit now
    return gone
  }

  async delete(key: string, id?: string): Promise<number> {
    const rows = (id === undefined
      ? this.db.prepare('SELECT id FROM memories WHERE mkey = ?').all(key)
      : this.db.prepare('SELECT id FROM memories WHERE mkey = ? AND id = ?').all(key, Number(id))) as Array<{ id: number }>
    return this.deleteIds(rows.map((r) => r.id))
  }

  async prune(r: Retention, key?: string, now = Date.now()): Promise<number> {
    const keys = key !== undefined ? [key] : (this.db.prepare('SELECT DISTINCT mkey FROM memories').all() as Array<{ mkey: string }>).map((x) => x.mkey)
    let gone = 0
    for (const k of keys) {
      const ids = new Set<number>()
      if (r.maxAgeMs > 0) for (const x of this.db.prepare('SELECT id FROM memories WHERE mkey = ? AND at < ?').all(k, now - r.maxAgeMs) as Array<{ id: number }>) ids.add(x.id)
      if (r.maxCount > 0) for (const x of this.db.prepare('SELECT id FROM memories WHERE mkey = ? ORDER BY at DESC, id DESC LIMIT -1 OFFSET ?').all(k, r.maxCount) as Array<{ id: number }>) ids.add(x.id)
      gone += this.deleteIds([...ids])
    }
    return gone
  }

  async stats(): Promise<{ memories: number; bytes: number }> {
    const { n } = this.db.prepare('SELECT count(*) AS n FROM memories').get() as { n: number }
    let bytes = 0
    for (const side of ['', '-wal']) { try { bytes += statSync(this.path + side).size } catch { /* no WAL yet */ } }
    return { memories: n, bytes }
  }

  async close(): Promise<void> {
    if (this.db.open) {
      try { this.db.pragma('wal_checkpoint(TRUNCATE)') } catch { /* another process holds it: it checkpoints later */ }
      this.db.close()
    }
  }
}

class CorruptCheck extends Error {}

/** A vec0 float32 blob as floats (copied when the Buffer is not 4-byte aligned). */
function floats(b: Buffer): Float32Array {
  if (b.byteOffset % 4 === 0) return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4)
  return new Float32Array(Uint8Array.prototype.slice.call(b).buffer)
}
