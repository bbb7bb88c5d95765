import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { CredentialStore, openSealed, sealForHolder } from './credentials.js'

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

describe('CredentialStore.rotate (keys rotate)', () => {
  it('the old password keeps working for the grace period, then is refused; the new one works at once', async () => {
    const store = new CredentialStore(path)
    const old = await store.add('kitchen', 'node', { cost })
    await expect(store.verify('kitchen', old)).resolves.toBeDefined() // now in the verified cache
    const t0 = Date.now()
    const { password, previousUntil } = await store.rotate('kitchen', 300, { cost })
    expect(password).not.toBe(old)
    expect(Date.parse(previousUntil!)).toBeGreaterThanOrEqual(t0 + 300)
    await expect(store.verify('kitchen', password)).resolves.toEqual({ role: 'node', id: 'kitchen' })
    await expect(store.verify('kitchen', old)).resolves.toEqual({ role: 'node', id: 'kitchen' })
    expect(store.list()[0]).toMatchObject({ id: 'kitchen', previousUntil })
    await new Promise((r) => setTimeout(r, 350))
    // Also after a successful verify inside the grace period: the cache must not outlive it.
    await expect(store.verify('kitchen', old)).resolves.toBeUndefined()
    await expect(store.verify('kitchen', password)).resolves.toBeDefined()
    expect(store.list()[0]!.previousUntil).toBeUndefined()
    expect(await readFile(path, 'utf8')).not.toContain(password)
  })

  it('grace 0 refuses the old password at once; a second rotation retires the first old one', async () => {
    const store = new CredentialStore(path)
    const first = await store.add('hall', 'node', { cost })
    const { password: second } = await store.rotate('hall', 0, { cost })
    await expect(store.verify('hall', first)).resolves.toBeUndefined()
    const { password: third } = await store.rotate('hall', 60_000, { cost })
    await expect(store.verify('hall', second)).resolves.toBeDefined()
    const { password: fourth } = await store.rotate('hall', 60_000, { cost })
    await expect(store.verify('hall', second)).resolves.toBeUndefined()
    await expect(store.verify('hall', third)).resolves.toBeDefined()
    await expect(store.verify('hall', fourth)).resolves.toBeDefined()
  })

  it('a store that is already running (the broker\'s) sees another process\'s rotation at its next verify', async () => {
    const broker = new CredentialStore(path)
    const cliStore = new CredentialStore(path)
    const old = await cliStore.add('kitchen', 'node', { cost })
    await expect(broker.verify('kitchen', old)).resolves.toBeDefined()
    const { password } = await cliStore.rotate('kitchen', 0, { cost })
    await expect(broker.verify('kitchen', old)).resolves.toBeUndefined()
    await expect(broker.verify('kitchen', password)).resolves.toBeDefined()
  })

  it('refuses to rotate an unknown id', async () => {
    const store = new CredentialStore(path)
    await expect(store.rotate('nobody', 1000, { cost })).rejects.toThrow(/no credentials for "nobody"/)
  })
})

describe('sealForHolder / openSealed (a new identity\'s password over MQTT)', () => {
  it('opens with the password behind the hash, not with another one, and carries no plaintext', async () => {
    const store = new CredentialStore(path)
    const pw = await store.add('kitchen', 'node', { cost })
    const other = await store.add('hall', 'node', { cost })
    const sealed = sealForHolder(store.hashOf('kitchen')!, 'the-new-password')
    expect(JSON.stringify(sealed)).not.toContain('the-new-password')
    await expect(openSealed(pw, sealed)).resolves.toBe('the-new-password')
    await expect(openSealed(other, sealed)).rejects.toThrow(/does not open/)
    const tampered = { ...sealed, data: Buffer.from(Buffer.from(sealed.data, 'base64').map((b, i) => (i === 0 ? b ^ 1 : b))).toString('base64') }
    await expect(openSealed(pw, tampered)).rejects.toThrow(/does not open/)
  })
})
