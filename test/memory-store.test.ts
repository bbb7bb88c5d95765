// The embedded store (SQLite + sqlite-vec + FTS5) under the conformance suite, plus what only a
// file has: other processes writing at once, and a damaged file moved aside, never reset.
import { execFile } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'
import { HASHED_DIM, hashedVector } from '../hub/src/memory/hash-embed.js'
import { SqliteMemoryStore } from '../hub/src/memory/sqlite.js'
import type { MemoryStore } from '../hub/src/memory/types.js'
import { removeDir, root, tempDir } from './support/harness.js'
import { memoryConformance } from './support/memory-conformance.js'

const exec = promisify(execFile)
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
})
