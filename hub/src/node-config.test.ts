import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { NodeConfigStore } from './node-config.js'

let dir: string
beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'mm-node-config-')) })
afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

describe('NodeConfigStore', () => {
  it('merges partial updates, keeps them on disk, and leaves no temp files', async () => {
    const path = join(dir, 'node-config.json')
    const store = new NodeConfigStore(path, () => 1000)
    await store.load()
    expect(store.get('kitchen')).toBeUndefined()
    await store.update('kitchen', { room: 'kitchen', volume: 40 })
    await store.update('kitchen', { wakeWord: null })
    const again = new NodeConfigStore(path)
    await again.load()
    expect(again.get('kitchen')).toEqual({ config: { room: 'kitchen', volume: 40, wakeWord: null }, updatedAt: 1000 })
    expect(await readdir(dir)).toEqual(['node-config.json'])
  })

  it('refuses a broken file with its path instead of starting empty', async () => {
    const path = join(dir, 'node-config.json')
    await writeFile(path, '{"kitchen":{"config":{"volume":300}}}')
    await expect(new NodeConfigStore(path).load()).rejects.toThrow(/node-config\.json: node kitchen has an invalid config/)
    await writeFile(path, 'not json')
    await expect(new NodeConfigStore(path).load()).rejects.toThrow(/not JSON/)
    expect(await readFile(path, 'utf8')).toBe('not json')
  })
})
