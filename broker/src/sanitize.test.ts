import { describe, expect, it } from 'vitest'
import { forLog, forTerminal, isPrintable } from './sanitize.js'
import { decode } from './contract.js'

const hostile = {
  escape: 'v1\u001b]0;pwned\u0007\u001b[2J',
  rlo: 'kitchen\u202egnp.exe',
  nul: 'hall\u0000x',
  c1: 'x\u009bc',
}

describe('sanitize', () => {
  it.each(Object.entries(hostile))('refuses and escapes %s', (_name, s) => {
    expect(isPrintable(s)).toBe(false)
    const shown = forTerminal(s)
    expect(isPrintable(shown)).toBe(true)
    expect(shown).toContain('\\u')
  })

  it('leaves ordinary text, accents and emoji alone', () => {
    for (const s of ['Küche', 'salle à manger', '客厅', 'v1.2.3-rc1', 'living room 🛋']) {
      expect(isPrintable(s)).toBe(true)
      expect(forTerminal(s)).toBe(s)
    }
    expect(forLog('x'.repeat(100), 10)).toBe('xxxxxxxxxx…')
  })
})

describe('contract bounds on wire strings and numbers', () => {
  const hb = { v: 1, ts: Date.now(), seq: 1, uptimeS: 5, cpuPct: 1, memPct: 1, rssMb: 10, temperatureC: null, versions: { agent: '1.0.0' }, mode: 'online', room: 'kitchen' }
  const decodeHb = (o: object) => decode('mm', 'mm/nodes/kitchen/heartbeat', Buffer.from(JSON.stringify(o)))

  it('accepts an ordinary heartbeat', () => {
    expect(decodeHb(hb).ok).toBe(true)
    expect(decodeHb({ ...hb, room: 'Küche' }).ok).toBe(true)
  })

  it.each([
    ['escape in a version', { versions: { agent: hostile.escape } }],
    ['escape in a version name', { versions: { [hostile.escape]: '1' } }],
    ['right-to-left override in the room', { room: hostile.rlo }],
    ['NUL in the room', { room: hostile.nul }],
    ['uptime 1e308', { uptimeS: 1e308 }],
    ['clock 9e15 ms', { ts: 9e15 }],
    ['rss 1e300 MB', { rssMb: 1e300 }],
    ['a room of 65 characters', { room: 'r'.repeat(65) }],
  ])('refuses a heartbeat with %s', (_what, patch) => {
    expect(decodeHb({ ...hb, ...patch })).toMatchObject({ ok: false, reason: 'schema' })
  })

  it('refuses hostile strings in presence, health and the hub heartbeat', () => {
    expect(decode('mm', 'mm/nodes/kitchen/presence', Buffer.from(JSON.stringify({ v: 1, ts: Date.now(), present: true, since: Date.now(), source: hostile.c1 }))).ok).toBe(false)
    expect(decode('mm', 'mm/health/hub', Buffer.from(JSON.stringify({ v: 1, ts: Date.now(), state: 'ok', reason: hostile.escape }))).ok).toBe(false)
  })
})
