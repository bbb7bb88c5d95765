import { Writable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { FailureLimiter } from './auth.js'
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
