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

describe('NodeConfigFeature with a broken file', () => {
  it('answers unavailable and leaves the file alone instead of replacing it with one entry', async () => {
    const { NodeConfigFeature } = await import('./features/node-config.js')
    const { CredentialStore, createLogger } = await import('@mirrormesh/broker')
    const path = join(dir, 'node-config.json')
    const broken = '{"kitchen":{"config":{"volume":300}},"hall":{"config":{"room":"hall"}}}'
    await writeFile(path, broken)
    const mqtt = { connected: false, onConnect: () => undefined, publish: async () => undefined }
    const feature = new NodeConfigFeature({ stateDir: dir } as never, mqtt as never, new CredentialStore(join(dir, 'credentials.json')), { get: () => ({ id: 'hall' }) } as never, createLogger({ name: 'test', level: 'silent' }))
    await expect(feature.start()).rejects.toThrow(/invalid config/)
    await expect(feature.update('hall', { volume: 10 })).rejects.toMatchObject({ code: 'unavailable' })
    await expect(feature.get('hall')).rejects.toMatchObject({ code: 'unavailable' })
    expect(await readFile(path, 'utf8')).toBe(broken)
  })
})
