import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { CredentialStore } from './credentials.js'

const cost = 1024 // fast; production uses 16384
let dir: string
let path: string

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mm-cred-'))
  path = join(dir, 'sub', 'credentials.json')
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('CredentialStore', () => {
  it('issues a password that verifies, and refuses a wrong one', async () => {
    const store = new CredentialStore(path)
    const pw = await store.add('kitchen', 'node', { cost })
    expect(pw.length).toBeGreaterThanOrEqual(20)
    await expect(store.verify('kitchen', pw)).resolves.toEqual({ role: 'node', id: 'kitchen' })
    await expect(store.verify('kitchen', Buffer.from(pw))).resolves.toEqual({ role: 'node', id: 'kitchen' })
    await expect(store.verify('kitchen', pw + 'x')).resolves.toBeUndefined()
    await expect(store.verify('hall', pw)).resolves.toBeUndefined()
  })

  it('stores only a hash, in a file only the owner can read', async () => {
    const store = new CredentialStore(path)
    const pw = await store.add('kitchen', 'node', { cost })
    const text = await readFile(path, 'utf8')
    expect(text).not.toContain(pw)
    expect(JSON.parse(text).users.kitchen.hash).toMatch(/^scrypt\$1024\$/)
    expect((await stat(path)).mode & 0o777).toBe(0o600)
  })

  it('refuses to overwrite an existing id unless asked to replace', async () => {
    const store = new CredentialStore(path)
    const pw = await store.add('kitchen', 'node', { cost })
    await expect(store.add('kitchen', 'node', { cost })).rejects.toThrow(/already has credentials/)
    await expect(store.verify('kitchen', pw)).resolves.toBeDefined()
  })

  it('rotates with replace: the old password stops working', async () => {
    const store = new CredentialStore(path)
    const old = await store.add('kitchen', 'node', { cost })
    await expect(store.verify('kitchen', old)).resolves.toBeDefined() // a connected node, cached
    const fresh = await store.add('kitchen', 'node', { cost, replace: true })
    expect(fresh).not.toBe(old)
    await expect(store.verify('kitchen', old)).resolves.toBeUndefined()
    await expect(store.verify('kitchen', fresh)).resolves.toBeDefined()
  })

  it('removes a credential', async () => {
    const store = new CredentialStore(path)
    const pw = await store.add('kitchen', 'node', { cost })
    await expect(store.remove('kitchen')).resolves.toBe(true)
    await expect(store.remove('kitchen')).resolves.toBe(false)
    expect(store.has('kitchen')).toBe(false)
    await expect(store.verify('kitchen', pw)).resolves.toBeUndefined()
  })

  it('re-adding a removed id does not let the old password back in', async () => {
    const store = new CredentialStore(path)
    const old = await store.add('kitchen', 'node', { cost })
    await expect(store.verify('kitchen', old)).resolves.toBeDefined()
    await store.remove('kitchen')
    await store.add('kitchen', 'node', { cost })
    await expect(store.verify('kitchen', old)).resolves.toBeUndefined()
  })

  it('picks up changes another process made to the file', async () => {
    const cli = new CredentialStore(path)
    const broker = new CredentialStore(path)
    await broker.refresh() // no file yet: empty
    expect(broker.list()).toEqual([])
    const pw = await cli.add('kitchen', 'node', { cost })
    await expect(broker.verify('kitchen', pw)).resolves.toEqual({ role: 'node', id: 'kitchen' })
    const rotated = await cli.add('kitchen', 'node', { cost, replace: true })
    await expect(broker.verify('kitchen', pw)).resolves.toBeUndefined()
    await expect(broker.verify('kitchen', rotated)).resolves.toBeDefined()
    await cli.remove('kitchen')
    await expect(broker.verify('kitchen', rotated)).resolves.toBeUndefined()
  })

  it('lists ids with their roles', async () => {
    const store = new CredentialStore(path)
    await store.add('kitchen', 'node', { cost })
    await store.add('grafana', 'observer', { cost })
    expect(store.list().map(({ id, role }) => ({ id, role }))).toEqual([
      { id: 'kitchen', role: 'node' }, { id: 'grafana', role: 'observer' },
    ])
  })

  it.each(['', 'a/b', 'a+b', '#', '.hidden', 'x'.repeat(65)])('rejects invalid id %j', async (id) => {
    const store = new CredentialStore(path)
    await expect(store.add(id, 'node', { cost })).rejects.toThrow(/invalid id/)
  })
})
