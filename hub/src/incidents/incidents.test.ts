// Fallback bursts read from the real prom-client counter the fallback chains raise, grouped by
// stage + reason into one record per burst; and the store's two views of a record.
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Counter, Registry } from 'prom-client'
import { afterEach, describe, expect, it } from 'vitest'
import { createLogger } from '@mirrormesh/broker'
import { FallbackBursts } from './fallbacks.js'
import type { FallbackBurst } from './records.js'
import { IncidentStore } from './store.js'
import { humanDuration } from './runbook.js'

const log = createLogger({ name: 'test', level: 'silent' })
const dirs: string[] = []
afterEach(async () => { for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true }) })

describe('FallbackBursts', () => {
  it('one record per stage and reason once the burst is quiet, with its count and steps', async () => {
    const metrics = new Registry()
    const fallback = new Counter({ name: 'mirrormesh_fallback_total', help: 'x', labelNames: ['stage', 'from', 'to', 'reason'], registers: [metrics] })
    fallback.inc({ stage: 'asr', from: 'a', to: 'b', reason: 'down' }, 7) // before start: not part of a burst
    let now = 1_000_000
    const out: FallbackBurst[] = []
    const b = new FallbackBursts({ metrics, settleMs: 1000, pollMs: 60_000, now: () => now, onRecord: (r) => out.push(r), recovery: async () => ({ ok: true }) })
    await b.start()
    const poll = () => (b as unknown as { poll(count: boolean): Promise<void> }).poll(true)
    for (let i = 0; i < 12; i++) {
      fallback.inc({ stage: 'asr', from: 'a', to: 'b', reason: 'down' })
      if (i % 4 === 0) fallback.inc({ stage: 'asr', from: 'b', to: 'c', reason: 'down' })
      now += 500
      await poll()
    }
    fallback.inc({ stage: 'tts', from: 'x', to: 'y', reason: 'timeout' }, 2)
    await poll()
    expect(out).toEqual([])
    now += 1000
    await poll()
    await b.stop()
    expect(out.map((r) => [r.stage, r.reason, r.count, r.steps])).toEqual([['asr', 'down', 15, ['a→b', 'b→c']], ['tts', 'timeout', 2, ['x→y']]])
    expect(out[0]).toMatchObject({ start: 1_000_500, end: 1_006_000, durationMs: 5500, recovery: { ok: true } })
  })
})

describe('IncidentStore', () => {
  it('writes the JSON line and the runbook entry for the UTC day the incident began', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'mm-inc-'))
    dirs.push(stateDir)
    const store = new IncidentStore({ stateDir, log })
    const start = Date.UTC(2026, 11, 1, 23, 59, 0)
    await store.add({ type: 'fallback_burst', stage: 'tts', reason: 'timeout', steps: ['piper→espeak'], count: 4, at: start + 90_000, start, end: start + 80_000, durationMs: 80_000, recovery: { 'mirrormesh_engine_health{engine="tts:piper"}': 1 } })
    const line = JSON.parse(await readFile(join(stateDir, 'incidents', '2026-12-01.jsonl'), 'utf8')) as FallbackBurst
    expect(line).toMatchObject({ type: 'fallback_burst', count: 4 })
    const md = await readFile(join(stateDir, 'entries', '2026-12-01-runbook.md'), 'utf8')
    expect(md).toContain('# Runbook journal 2026-12-01 (UTC)')
    expect(md).toContain('## 2026-12-01 23:59:00 UTC — fallbacks: tts (timeout) ×4')
    expect(md).toContain('- **Date:** 2026-12-01 23:59:00 UTC → 2026-12-02 00:00:20 UTC (1 min 20 s)')
    expect(md).toContain('- **Recovery confirmed by:** `mirrormesh_engine_health{engine="tts:piper"}` 1')
  })

  it('humanDuration', () => {
    expect([850, 5_000, 126_000, 3_780_000].map(humanDuration)).toEqual(['850 ms', '5 s', '2 min 6 s', '1 h 3 min'])
  })
})
