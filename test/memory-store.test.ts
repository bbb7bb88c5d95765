// The embedded store (SQLite + sqlite-vec + FTS5) under the conformance suite, plus what only a
// file has: other processes writing at once, and a damaged file moved aside, never reset.
import { execFile } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import { HASHED_DIM, hashedVector } from '../hub/src/memory/hash-embed.js'
import { SqliteMemoryStore } from '../hub/src/memory/sqlite.js'
import type { MemoryStore } from '../hub/src/memory/types.js'
import { removeDir, root, tempDir } from './support/harness.js'
import { memoryConformance } from './support/memory-conformance.js'

const exec = promisify(execFile)
const v = hashedVector
const dirs: string[] = []
const paths = new WeakMap<MemoryStore, string>()
afterAll(async () => { for (const d of dirs) await removeDir(d) })

async function freshPath(): Promise<string> {
  const d = await tempDir('mm-memory-')
  dirs.push(d)
  return join(d, 'memory.db')
}

memoryConformance('embedded (SQLite)', {
  async fresh() {
    const path = await freshPath()
    const s = new SqliteMemoryStore(path, { dim: HASHED_DIM })
    paths.set(s, path)
    return s
  },
  async reopen(s) {
    const path = paths.get(s)!
    return new SqliteMemoryStore(path, { dim: HASHED_DIM })
  },
})

describe('embedded memory file', () => {
  it('takes writes from several processes at once (WAL, busy timeout) and loses none', async () => {
    const path = await freshPath()
    await new SqliteMemoryStore(path, { dim: HASHED_DIM }).close()
    const script = `
      const { SqliteMemoryStore } = await import(${JSON.stringify(join(root, 'hub/dist/memory/sqlite.js'))})
      const { hashedVector } = await import(${JSON.stringify(join(root, 'hub/dist/memory/hash-embed.js'))})
      const s = new SqliteMemoryStore(process.argv[1], { dim: 256 })
      const who = process.argv[2]
      for (let i = 0; i < 300; i++) await s.add('room:w' + who, 'turn', 'writer ' + who + ' line ' + i, hashedVector('writer ' + who + ' line ' + i))
      await s.close()`
    await Promise.all(['1', '2', '3'].map((who) => exec(process.execPath, ['--input-type=module', '-e', script, path, who], { timeout: 60_000 })))
    const s = new SqliteMemoryStore(path, { dim: HASHED_DIM })
    try {
      expect((await s.stats()).memories).toBe(900)
      for (const who of ['1', '2', '3']) expect((await s.list(`room:w${who}`, 1000)).length).toBe(300)
      const hit = await s.search(['room:w2'], { text: 'line 299', vector: hashedVector('writer 2 line 299'), k: 1 })
      expect(hit[0]?.text).toBe('writer 2 line 299')
    } finally { await s.close() }
  })

  it('moves a damaged file aside, says where, and starts a new one', async () => {
    const path = await freshPath()
    const s = new SqliteMemoryStore(path, { dim: HASHED_DIM })
    await s.add('room:kitchen', 'fact', 'the keys are in the drawer', hashedVector('the keys are in the drawer'))
    await s.close()
    // Scribble over the middle of the file (what a bad sector or a half-copied backup leaves).
    const bytes = await readFile(path)
    bytes.fill(0x5a, 100, bytes.length)
    await writeFile(path, bytes)
    const again = new SqliteMemoryStore(path, { dim: HASHED_DIM })
    try {
      expect(again.movedAside).toBeDefined()
      expect(again.movedAside!.message).toMatch(/memory file .*memory\.db is damaged .*moved aside to .*memory\.db\.corrupt-/)
      expect(existsSync(again.movedAside!.movedTo)).toBe(true)
      expect((await readFile(again.movedAside!.movedTo)).equals(bytes)).toBe(true) // kept as it was
      expect((await again.stats()).memories).toBe(0)
      await again.add('room:kitchen', 'fact', 'new fact', hashedVector('new fact'))
      expect((await again.list('room:kitchen')).length).toBe(1)
    } finally { await again.close() }
  })

  it('moves aside a file that is not a database at all', async () => {
    const path = await freshPath()
    await writeFile(path, 'this is not sqlite '.repeat(200))
    const s = new SqliteMemoryStore(path, { dim: HASHED_DIM })
    try {
      expect(s.movedAside?.message).toMatch(/damaged/)
      expect(readdirSync(join(path, '..')).filter((f) => f.includes('.corrupt-')).length).toBe(1)
    } finally { await s.close() }
  })

  it('ranks from memory exactly as sqlite-vec does, and stays in step with adds, deletes and prunes', async () => {
    const path = await freshPath()
    const logs: string[] = []
    const fast = new SqliteMemoryStore(path, { dim: HASHED_DIM, log: (m) => logs.push(m) })
    // A budget of 0 bytes: no key fits in memory, every vector search goes through sqlite-vec.
    const slow = new SqliteMemoryStore(path, { dim: HASHED_DIM, vectorCacheBytes: 0 })
    try {
      const things = ['keys', 'wallet', 'glasses', 'charger', 'umbrella', 'passport', 'helmet', 'remote']
      const places = ['drawer', 'shelf', 'cupboard', 'garage', 'fridge', 'basket', 'desk', 'porch']
      for (let i = 0; i < 300; i++) {
        const t = `the ${things[i % 8]} number ${i} is in the ${places[(i * 7) % 8]}`
        await fast.add(i % 2 ? 'room:a' : 'room:b', i % 5 ? 'fact' : 'turn', t, v(t), i)
      }
      const same = async (keys: string[], text: string, kind?: 'fact' | 'turn') => {
        const q = { text: '', vector: v(text), k: 8, ...(kind ? { kind } : {}) }
        const a = await fast.search(keys, q)
        const b = await slow.search(keys, q)
        expect(a.length).toBe(b.length)
        a.forEach((h, i) => expect(h.similarity).toBeCloseTo(b[i]!.similarity!, 4))
        // Same ids in the same order, except among equal similarities (ties rank either way).
        const tied = (i: number) => [i - 1, i + 1].some((j) => b[j] && Math.abs(b[j].similarity! - b[i]!.similarity!) < 1e-5)
        a.forEach((h, i) => { if (!tied(i)) expect(h.id).toBe(b[i]!.id) })
        return a
      }
      await same(['room:a'], 'the umbrela in the garag', 'fact')
      await same(['room:a', 'room:b'], 'pasport on the shelf')
      const added = await fast.add('room:a', 'fact', 'the zebra toy is in the bathtub', v('the zebra toy is in the bathtub'))
      expect((await same(['room:a'], 'zebra toy bathtub'))[0]?.id).toBe(added.id)
      await fast.delete('room:a', added.id)
      expect((await same(['room:a'], 'zebra toy bathtub')).map((h) => h.id)).not.toContain(added.id)
      expect(await fast.prune({ maxCount: 50, maxAgeMs: 0 }, 'room:a')).toBe(100)
      const left = await same(['room:a'], 'the keys number 1 in the drawer')
      expect(left.every((h) => h.at >= 200)).toBe(true)
      expect(logs).toEqual([]) // read vec0's chunks directly (the fast load), never fell back
      const again = new SqliteMemoryStore(path, { dim: HASHED_DIM })
      try {
        expect(await again.warm()).toBe(2) // both keys' vectors loaded ahead of a search
      } finally { await again.close() }
    } finally {
      await fast.close()
      await slow.close()
    }
  })

  it('sees another process\'s writes and deletes after it has loaded a key into memory', async () => {
    const path = await freshPath()
    const s = new SqliteMemoryStore(path, { dim: HASHED_DIM })
    try {
      const old = await s.add('room:hall', 'fact', 'the bike pump is in the shed', v('the bike pump is in the shed'))
      expect((await s.search(['room:hall'], { text: '', vector: v('bike pump'), k: 1 }))[0]?.id).toBe(old.id)
      const script = `
        const { SqliteMemoryStore } = await import(${JSON.stringify(join(root, 'hub/dist/memory/sqlite.js'))})
        const { hashedVector } = await import(${JSON.stringify(join(root, 'hub/dist/memory/hash-embed.js'))})
        const s = new SqliteMemoryStore(process.argv[1], { dim: 256 })
        await s.delete('room:hall', process.argv[2])
        await s.add('room:hall', 'fact', 'the bike pump is in the car', hashedVector('the bike pump is in the car'))
        await s.close()`
      await exec(process.execPath, ['--input-type=module', '-e', script, path, old.id], { timeout: 60_000 })
      const hits = await s.search(['room:hall'], { text: '', vector: v('bike pump'), k: 5 })
      expect(hits.map((h) => h.text)).toEqual(['the bike pump is in the car'])
    } finally { await s.close() }
  })

  it('opens a file from before the keyword index carried key tags, and still finds its memories by keyword', async () => {
    const path = await freshPath()
    // The previous layout's keyword index, as the store of round 2 wrote it.
    const old = new Database(path)
    old.exec(`
      CREATE TABLE memories(id INTEGER PRIMARY KEY, mkey TEXT NOT NULL, kind TEXT NOT NULL, text TEXT NOT NULL, at INTEGER NOT NULL);
      CREATE INDEX memories_key_at ON memories(mkey, at);
      CREATE VIRTUAL TABLE memories_fts USING fts5(text, content='memories', content_rowid='id', tokenize='porter unicode61');
      CREATE TRIGGER memories_ai AFTER INSERT ON memories BEGIN INSERT INTO memories_fts(rowid, text) VALUES (new.id, new.text); END;
      CREATE TRIGGER memories_ad AFTER DELETE ON memories BEGIN INSERT INTO memories_fts(memories_fts, rowid, text) VALUES ('delete', old.id, old.text); END;
      INSERT INTO memories(mkey, kind, text, at) VALUES ('room:kitchen', 'fact', 'the keys are in the drawer', 1), ('room:hall', 'fact', 'the keys are on the hook', 2), ('room:kitchen', 'turn', 'what keys', 3);`)
    old.close()
    for (let open = 0; open < 2; open++) {
      const s = new SqliteMemoryStore(path, { dim: HASHED_DIM })
      try {
        expect((await s.search(['room:kitchen'], { text: 'keys', k: 5, kind: 'fact' })).map((h) => h.text)).toEqual(['the keys are in the drawer'])
        expect((await s.search(['room:kitchen'], { text: 'keys', k: 5 })).map((h) => h.text).sort()).toEqual(['the keys are in the drawer', 'what keys'])
        expect((await s.search(['room:hall', 'room:kitchen'], { text: 'keys', k: 5, kind: 'fact' })).length).toBe(2)
      } finally { await s.close() }
    }
    const check = new Database(path)
    try {
      expect(check.prepare("SELECT name FROM sqlite_master WHERE name LIKE 'memories_fts%' OR name IN ('memories_ai', 'memories_ad')").all()).toEqual([])
    } finally { check.close() }
  })
})
