// Hostile strings from a node do not reach people: the hub refuses a heartbeat whose versions or
// room carry escape sequences, bidi overrides or NULs (so /api/nodes never serves them), and the
// terminal table printer shows any that get through as text.
import { afterEach, describe, expect, it } from 'vitest'
import { renderTable } from '../ops/src/table.js'
import { createKit, type Kit } from './support/kit.js'

let kit: Kit
afterEach(() => kit?.close())

const esc = 'v1\u001b]0;pwned\u0007\u001b[2J'

describe('hostile strings from the wire', () => {
  it('a heartbeat with escape sequences, RTL overrides or NULs never reaches /api/nodes', async () => {
    kit = await createKit()
    const hub = await kit.hub()
    const node = await kit.connect(hub.url, 'kitchen', { clientId: 'node-kitchen' })
    const hb = (patch: object) => JSON.stringify({ v: 1, ts: Date.now(), seq: 1, uptimeS: 1, cpuPct: 1, memPct: 1, rssMb: 1, temperatureC: null, versions: { agent: '1.0.0' }, mode: 'online', ...patch })
    await node.publishAsync('mirrormesh/nodes/kitchen/status', 'online', { qos: 1, retain: true })
    for (const patch of [{ versions: { agent: esc } }, { room: '<img src=x onerror=alert(1)>\u202e' }, { room: 'a\u0000b' }, { uptimeS: 1e308 }, { ts: 9e15 }]) {
      await node.publishAsync('mirrormesh/nodes/kitchen/heartbeat', hb(patch), { qos: 1 })
    }
    const base = `http://127.0.0.1:${hub.httpAddress!.port}`
    // The hub has seen all five once it has counted them refused; the last one would otherwise be what /api/nodes shows.
    await kit.waitFor(async () => /mirrormesh_payload_rejected_total\{[^}]*reason="schema"[^}]*\} 5/.test(await (await fetch(`${base}/metrics`)).text()), { what: 'five heartbeats refused' })
    const body = await (await fetch(`${base}/api/nodes`)).text()
    for (const bad of ['\\u001b', '\u001b', 'pwned', 'onerror', '\\u202e', '\\u0000', '1e+308']) expect(body).not.toContain(bad)
  })

  it('the table printer (mirrormesh nodes) shows escape sequences as text, not as terminal commands', () => {
    const out = renderTable(['ID', 'VERSIONS'], [['kitchen', `agent=${esc}`], ['hall\u202e', 'x']])
    // eslint-disable-next-line no-control-regex
    for (const line of out.split('\n')) expect(line).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e]/)
    expect(out).toContain('agent=v1\\u001b]0;pwned\\u0007\\u001b[2J')
    expect(out).toContain('hall\\u202e')
  })
})
