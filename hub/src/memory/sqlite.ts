// The embedded memory store: one SQLite file under the hub's state dir, WAL mode. Keyword
// search is FTS5 (BM25, porter stemming: "keys" meets "key"); vector search is sqlite-vec's
// vec0 table with the memory key as its partition key, so a search never reads another key's
// vectors. The two rankings are fused by reciprocal rank. better-sqlite3 is synchronous: every
// call here is a few indexed statements (figures: README "Memory").
// A file that is not a database, or fails its quick check, is moved aside (never reset in place)
// and a fresh one started; `movedAside` says where it went, for the log and health/memory.
// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- an ambient module declaration (no @types package), needed by the test typecheck too
/// <reference path="./better-sqlite3.d.ts" />
import Database from 'better-sqlite3'
import { renameSync, statSync, existsSync } from 'node:fs'
import * as sqliteVec from 'sqlite-vec'
import { fuseRanks, keywords, type MemoryHit, type MemoryKind, type MemoryRecord, type MemoryStore, type Retention, type SearchQuery } from './types.js'

export interface SqliteStoreOptions {
  /** Vector size (the embedder's); vectors of another size live in their own table. */
  dim: number
  /** How long a writer waits for another process's lock. */
  busyTimeoutMs?: number
  /** Candidates each ranking contributes before fusion. */
  candidates?: number
}

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
  private readonly st: Record<'insert' | 'insertVec' | 'byIds' | 'list' | 'listKind', ReturnType<Database['prepare']>>

  constructor(readonly path: string, private readonly opts: SqliteStoreOptions) {
    if (!Number.isInteger(opts.dim) || opts.dim < 1 || opts.dim > 8192) throw new Error(`memory vector size ${opts.dim} is not 1…8192`)
    this.candidates = opts.candidates ?? 20
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
    }
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
        CREATE VIRTUAL TABLE IF NOT EXISTS memories_fts USING fts5(text, content='memories', content_rowid='id', tokenize='porter unicode61');
        CREATE TRIGGER IF NOT EXISTS memories_ai AFTER INSERT ON memories BEGIN INSERT INTO memories_fts(rowid, text) VALUES (new.id, new.text); END;
        CREATE TRIGGER IF NOT EXISTS memories_ad AFTER DELETE ON memories BEGIN INSERT INTO memories_fts(memories_fts, rowid, text) VALUES ('delete', old.id, old.text); END;
        CREATE VIRTUAL TABLE IF NOT EXISTS ${this.vecTable} USING vec0(mkey text partition key, kind text, embedding float[${this.opts.dim}] distance_metric=cosine);
      `)
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
    return { id: String(id), key, kind, text, at }
  }

  async search(keys: readonly string[], q: SearchQuery): Promise<MemoryHit[]> {
    if (keys.length === 0 || q.k <= 0) return []
    const n = Math.max(q.k, this.candidates)
    const marks = keys.map(() => '?').join(', ')
    const sims = new Map<string, number>()
    const byVector: string[] = []
    if (q.vector) {
      // vec0 filters on the partition key before it ranks: other keys' vectors are never read.
      const rows = this.db.prepare(`SELECT rowid AS id, distance FROM ${this.vecTable} WHERE embedding MATCH ? AND k = ? AND ${keys.length === 1 ? 'mkey = ?' : `mkey IN (${marks})`}${q.kind ? ' AND kind = ?' : ''}`)
        .all(q.vector, n, ...keys, ...(q.kind ? [q.kind] : [])) as Array<{ id: number; distance: number }>
      for (const r of rows) { byVector.push(String(r.id)); sims.set(String(r.id), 1 - r.distance) }
    }
    const words = keywords(q.text)
    const byKeyword: string[] = []
    if (words.length) {
      const match = words.map((w) => `"${w.replace(/"/g, '')}"`).join(' OR ')
      const rows = this.db.prepare(`SELECT m.id AS id FROM memories_fts JOIN memories m ON m.id = memories_fts.rowid
        WHERE memories_fts MATCH ? AND m.mkey IN (${marks})${q.kind ? ' AND m.kind = ?' : ''} ORDER BY bm25(memories_fts) LIMIT ?`).all(match, ...keys, ...(q.kind ? [q.kind] : []), n) as Array<{ id: number }>
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

  async list(key: string, limit = 100, kind?: MemoryKind): Promise<MemoryRecord[]> {
    const rows = (kind ? this.st.listKind.all(key, kind, limit) : this.st.list.all(key, limit)) as Row[]
    return rows.map((r) => ({ id: String(r.id), key: r.mkey, kind: r.kind, text: r.text, at: r.at }))
  }

  private deleteIds(ids: number[]): number {
    if (!ids.length) return 0
    const json = JSON.stringify(ids)
    return this.db.transaction(() => {
      this.db.prepare(`DELETE FROM ${this.vecTable} WHERE rowid IN (SELECT value FROM json_each(?))`).run(json)
      return this.db.prepare('DELETE FROM memories WHERE id IN (SELECT value FROM json_each(?))').run(json).changes
    })()
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
