import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import type { Client } from 'aedes'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FailureLimiter, createAuthHooks } from './auth.js'
import { CredentialStore } from './credentials.js'
import { createLogger, LogLimiter } from './log.js'

describe('FailureLimiter', () => {
  it('blocks a source after 5 failures inside the window, and lets it in again after', () => {
    const limiter = new FailureLimiter()
    const t0 = 1_000_000
    for (let i = 0; i < 4; i++) limiter.fail('10.0.0.5|kitchen', t0 + i)
    expect(limiter.blocked('10.0.0.5|kitchen', t0 + 10)).toBe(false)
    limiter.fail('10.0.0.5|kitchen', t0 + 4)
    expect(limiter.blocked('10.0.0.5|kitchen', t0 + 10)).toBe(true)
    expect(limiter.blocked('10.0.0.6|kitchen', t0 + 10)).toBe(false) // other sources unaffected
    expect(limiter.blocked('10.0.0.5|kitchen', t0 + 59_999)).toBe(true)
    expect(limiter.blocked('10.0.0.5|kitchen', t0 + 60_000)).toBe(false) // the first failure has aged out
  })

  it('does not block failures spread wider than the window', () => {
    const limiter = new FailureLimiter(5, 60_000)
    for (let i = 0; i < 10; i++) limiter.fail('k', i * 20_000)
    expect(limiter.blocked('k', 10 * 20_000)).toBe(false)
  })
})

describe('FailureLimiter under a flood of new keys', () => {
  it('keeps a lock while 20,000 made-up keys fail, and its memory stays bounded', () => {
    const limiter = new FailureLimiter({ max: 5, windowMs: 60_000, maxKeys: 1000 })
    const t0 = 1_000_000
    for (let i = 0; i < 5; i++) limiter.fail('10.0.0.5|kitchen', t0 + i)
    for (let i = 0; i < 20_000; i++) limiter.fail(`10.1.${i >> 8}.${i & 255}|made-up-${i}`, t0 + 10)
    expect(limiter.blocked('10.0.0.5|kitchen', t0 + 20)).toBe(true)
    expect(limiter.size).toBeLessThanOrEqual(1000)
  })

  it('refuses a new key rather than drop a lock when every slot is locked', () => {
    const limiter = new FailureLimiter({ max: 2, windowMs: 60_000, maxKeys: 3 })
    for (const k of ['a', 'b', 'c']) { limiter.fail(k, 0); limiter.fail(k, 1) }
    expect(limiter.hasRoom('d', 2)).toBe(false)
    expect(limiter.fail('d', 2)).toBe(false)
    for (const k of ['a', 'b', 'c']) expect(limiter.blocked(k, 3)).toBe(true)
    // Once the window has passed the slots free up again.
    expect(limiter.hasRoom('d', 60_002)).toBe(true)
  })
})

describe('createAuthHooks against a real credential store', () => {
  let dir: string
  let store: CredentialStore
  let kitchen: string
  let slow: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mm-auth-'))
    store = new CredentialStore(join(dir, 'credentials.json'))
    kitchen = await store.add('kitchen', 'node', { cost: 1024 })
    slow = await store.add('slow', 'node') // the default scrypt cost, as `mirrormesh node add` uses
  })
  afterAll(() => rm(dir, { recursive: true, force: true }))

  function setup(dummyCost?: number) {
    let out = ''
    const destination = new Writable({ write(chunk, _enc, cb) { out += String(chunk); cb() } })
    const log = createLogger({ name: 'test', destination, format: 'json' })
    const hooks = createAuthHooks({ base: 'mm', store, registry: new Registry(), log, dummyCost, internalUsers: [{ username: 'hub-main', password: 'in-process-secret', role: 'hub' }] })
    const connect = (username: string, password: string, { ip = '10.0.0.5', id = `node-${username}` } = {}) =>
      new Promise<string>((resolve) => {
        const client = { id, clean: true, conn: { remoteAddress: ip } } as unknown as Client
        hooks.authenticate(client, username, Buffer.from(password), (err) => resolve(err ? err.message : 'ok'))
      })
    return { hooks, connect, output: () => out }
  }

  it('a flood of made-up usernames from one address does not wipe a lockout, and is logged as a summary', async () => {
    const { hooks, connect, output } = setup(1024)
    for (let i = 0; i < 5; i++) expect(await connect('kitchen', 'wrong')).toMatch(/bad_password/)
    expect(await connect('kitchen', kitchen)).toMatch(/rate_limited/)
    const answers = new Map<string, number>()
    for (let i = 0; i < 10_050; i++) {
      const a = await connect(`made-up-${i}`, 'x')
      answers.set(a, (answers.get(a) ?? 0) + 1)
    }
    expect(await connect('kitchen', kitchen)).toMatch(/rate_limited/)
    expect([...answers.keys()].every((a) => /not authorized/.test(a))).toBe(true)
    hooks.stop()
    const lines = output().trim().split('\n')
    // One line at once, one summary: not one line per refusal (10,000 lines, 1.9 MB before).
    expect(lines.length).toBeLessThanOrEqual(3)
    expect(output()).toContain('"refused":')
  }, 120_000)

  it('refuses an unknown username after the same scrypt work as a known one (figures printed)', async () => {
    const { connect } = setup()
    const time = async (user: string, ip: string) => {
      const t = performance.now()
      expect(await connect(user, 'wrong', { ip })).toMatch(/not authorized: bad_password/)
      return performance.now() - t
    }
    const known: number[] = []
    const unknown: number[] = []
    for (let i = 0; i < 4; i++) {
      known.push(await time('slow', `10.2.0.${i}`))
      unknown.push(await time(`nobody-${i}`, `10.3.0.${i}`))
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!
    console.log(`[auth] wrong password, median of 4: known user ${median(known).toFixed(1)} ms, unknown user ${median(unknown).toFixed(1)} ms`)
    expect(median(unknown)).toBeGreaterThan(median(known) * 0.4)
  }, 60_000)

  it('failed logins from the same address do not lock the hub out of its own broker', async () => {
    const { connect } = setup(1024)
    for (let i = 0; i < 40; i++) await connect(`made-up-${i}`, 'x', { ip: '127.0.0.1' })
    expect(await connect('kitchen', kitchen, { ip: '127.0.0.1' })).toMatch(/rate_limited/)
    expect(await connect('hub-main', 'in-process-secret', { ip: '127.0.0.1', id: 'hub-main' })).toBe('ok')
    expect(await connect('hub-main', 'in-process-secret', { ip: '127.0.0.1', id: 'hub-main/x' })).toMatch(/client_id_not_allowed/)
  })

  it('a wrong client id with the right password does not count toward the lockout', async () => {
    const { connect } = setup(1024)
    for (let i = 0; i < 8; i++) expect(await connect('kitchen', kitchen, { id: 'node-hall' })).toMatch(/client_id_not_allowed/)
    expect(await connect('kitchen', kitchen)).toBe('ok')
    expect(slow).toBeTruthy()
  })
})

describe('LogLimiter', () => {
  it('allows one message per key per window', () => {
    const limiter = new LogLimiter(60_000)
    expect(limiter.allow('kitchen', 0)).toBe(true)
    expect(limiter.allow('kitchen', 1)).toBe(false)
    expect(limiter.allow('hall', 1)).toBe(true)
    expect(limiter.allow('kitchen', 59_999)).toBe(false)
    expect(limiter.allow('kitchen', 60_000)).toBe(true)
    expect(limiter.allow('kitchen', 60_001)).toBe(false)
  })
})

describe('createLogger', () => {
  function capture(pii?: boolean) {
    let out = ''
    const destination = new Writable({ write(chunk, _enc, cb) { out += String(chunk); cb() } })
    const log = createLogger({ name: 'test', destination, pii })
    return { log, output: () => out }
  }
  const fields = { password: 'hunter2', nested: { token: 'tok-8f3a' }, apiKey: 'ak-123', pii: { transcript: 'unlock the front door' } }

  it('redacts secrets and pii', () => {
    const { log, output } = capture()
    log.info(fields, 'hello')
    const line = output()
    expect(line).toContain('hello')
    expect(line).toContain('[redacted]')
    for (const secret of ['hunter2', 'tok-8f3a', 'ak-123', 'unlock the front door']) expect(line).not.toContain(secret)
  })

  it('shows pii only when asked, and still hides secrets', () => {
    const { log, output } = capture(true)
    log.info(fields, 'hello')
    const line = output()
    expect(line).toContain('unlock the front door')
    for (const secret of ['hunter2', 'tok-8f3a', 'ak-123']) expect(line).not.toContain(secret)
  })

  it('redacts secrets logged through a child logger', () => {
    const { log, output } = capture()
    log.child({ component: 'mqtt' }).warn({ credentials: { user: 'u', pass: 'p4ss' } }, 'x')
    expect(output()).toContain('"component":"mqtt"')
    expect(output()).not.toContain('p4ss')
  })
})
