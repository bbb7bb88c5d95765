// `bench hubs`: turns per second the hubs sustain before admission control refuses, one hub vs
// three, on one real Mosquitto (HUB_ROLE active, the nodes split by the retained assignment).
// BENCH_NODES simulated nodes (real MQTT clients with node credentials: status, heartbeat,
// audio/out + events) send typed turns ("what time is it": the time skill, espeak-ng speaks
// the reply, paced like playback) on nodes/{id}/turn/text at a rising offered rate; each step
// lasts BENCH_STEP_S and then waits (bounded) for its turns to end. A node sends its next turn
// only once its last one has ended (a mirror does not talk over itself): an offered turn with
// every node busy is counted "no free node", not sent.
// Per step: turns served per second (a reply), refused (the hub's "busy" event: admission
// control, MAX_CONCURRENT_SESSIONS running + QUEUE_MAX waiting), errors, TTFA p50/p95 at the
// node (turn sent -> first reply audio frame). Never fails on timing.
import { loadavg } from 'node:os'
import mqtt from 'mqtt'
import { decodeAudioFrame } from '../../broker/dist/index.js'
import { sleep, waitFor } from '../support/dist/harness.js'
import { BASE, createHubBed } from '../support/dist/multihub.js'
import { envInt, fmt, printMachine, quantile, systemCpu, table } from './lib.mjs'

const RATES = (process.env.BENCH_RATES ?? '0.5,1,2,3,4,6').split(',').map(Number).filter((r) => r > 0)

export async function main() {
  const machine = printMachine()
  console.log(`load: ${loadavg().map((v) => v.toFixed(1)).join(' ')} (1/5/15 min) at the start`)
  const nodeCount = envInt('BENCH_NODES', 30)
  const stepS = envInt('BENCH_STEP_S', 10)
  const hubCounts = (process.env.BENCH_HUBS ?? '1,3').split(',').map(Number).filter((n) => n >= 1 && n <= 3)
  // BENCH_HUB_<SETTING>=value goes to every hub as <SETTING> (e.g. BENCH_HUB_MAX_CONCURRENT_SESSIONS=4).
  const hubEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('BENCH_HUB_')).map(([k, v]) => [k.slice(10), v]))
  console.log(`hubs: ${nodeCount} nodes, offered ${RATES.join(', ')} turns/s, ${stepS} s a step; hubs ${hubCounts.join(' vs ')}; hub env ${JSON.stringify(hubEnv)} (defaults MAX_CONCURRENT_SESSIONS=2, QUEUE_MAX=4)`)
  const results = []
  for (const n of hubCounts) results.push(...await run(n, nodeCount, stepS, hubEnv))
  console.log(`\nturns by offered rate (skill turn "what time is it", espeak-ng reply; TTFA = turn sent -> first reply audio frame at the node)`)
  table([['hubs', 'offered/s', 'sent', 'served/s', 'served', 'refused', 'errors', 'no free node', 'TTFA p50', 'TTFA p95', 'busy %'],
    ...results.map((r) => [r.hubs, r.rate, r.sent, fmt(r.servedPerS, 2), r.served, r.refused, r.errors, r.noNode, fmt(r.p50, 0), fmt(r.p95, 0), fmt(r.cpuPct, 0)])])
  for (const n of hubCounts) {
    const rows = results.filter((r) => r.hubs === n)
    const clean = rows.filter((r) => r.refused === 0 && r.errors === 0)
    const best = clean.length ? Math.max(...clean.map((r) => r.servedPerS)) : 0
    console.log(`${n} hub(s): sustained ${fmt(best, 2)} turns/s before the first refusal; max served ${fmt(Math.max(...rows.map((r) => r.servedPerS)), 2)} turns/s`)
  }
  console.log(`load: ${loadavg().map((v) => v.toFixed(1)).join(' ')} (1/5/15 min) at the end`)
  console.log(JSON.stringify({ bench: 'hubs', machine, nodes: nodeCount, stepS, hubEnv, steps: results }))
}

async function run(hubCount, nodeCount, stepS, hubEnv) {
  const hubIds = ['one', 'two', 'three'].slice(0, hubCount)
  const nodes = Array.from({ length: nodeCount }, (_, i) => `n${String(i + 1).padStart(2, '0')}`)
  const bed = await createHubBed(hubIds, nodes)
  const sims = []
  const out = []
  try {
    for (const id of hubIds) await bed.startHub(id, 'active', { PIPELINE_ENABLED: 'true', ...hubEnv })
    for (const id of nodes) sims.push(await simNode(bed, id))
    await waitFor(() => nodes.every((n) => bed.hubOf(n)), { timeoutMs: 30_000, what: 'every node assigned' })
    const split = hubIds.map((h) => `${h} ${nodes.filter((n) => bed.hubOf(n) === h).length}`).join(', ')
    console.log(`\n${hubCount} hub(s) up, nodes split: ${split}`)
    // One warm-up turn per hub's first node: the first espeak-ng start is slower.
    for (const h of hubIds) { const s = sims.find((x) => bed.hubOf(x.id) === h); if (s) await s.turn().catch(() => undefined) }
    for (const rate of RATES) {
      const sys0 = systemCpu()
      const turns = []
      let noNode = 0
      const t0 = Date.now()
      let next = 0
      for (let k = 0; Date.now() - t0 < stepS * 1000; k++) {
        const due = t0 + k * (1000 / rate)
        if (due - t0 >= stepS * 1000) break
        if (due > Date.now()) await sleep(due - Date.now())
        const free = sims.length ? sims.map((_, i) => sims[(next + i) % sims.length]).find((s) => !s.busy) : undefined
        next = (next + 1) % sims.length
        if (!free) { noNode++; continue }
        turns.push(free.turn())
      }
      const done = await Promise.all(turns)
      const wallS = (Date.now() - t0) / 1000
      const served = done.filter((r) => r.outcome === 'reply')
      const ttfa = served.map((r) => r.ttfaMs).filter((v) => v !== undefined)
      const row = {
        hubs: hubCount, rate, sent: turns.length, served: served.length, servedPerS: served.length / wallS,
        refused: done.filter((r) => r.outcome === 'busy').length, errors: done.filter((r) => r.outcome !== 'reply' && r.outcome !== 'busy').length,
        noNode, p50: quantile(ttfa, 0.5), p95: quantile(ttfa, 0.95), cpuPct: systemCpu(sys0),
      }
      out.push(row)
      console.log(`${hubCount} hub(s), offered ${rate}/s: sent ${row.sent}, served ${row.served} (${fmt(row.servedPerS, 2)}/s over ${fmt(wallS, 1)} s), refused ${row.refused}, errors ${row.errors}, no free node ${noNode}, TTFA p50 ${fmt(row.p50, 0)} p95 ${fmt(row.p95, 0)} ms`)
      // Past saturation more offered load only adds refusals.
      if (row.refused + row.errors > row.sent / 2) break
      await sleep(500)
    }
  } finally {
    for (const s of sims) await s.close()
    for (const h of bed.hubs.values()) { h.kill('SIGTERM'); await Promise.race([h.exited, sleep(10_000)]); h.kill('SIGKILL') }
    await bed.close()
  }
  return out
}

/** One simulated node: online, heartbeating, one typed turn at a time. */
async function simNode(bed, id) {
  const c = await mqtt.connectAsync(bed.url, {
    clientId: `node-${id}/bench-${Math.random().toString(36).slice(2, 8)}`, username: id, password: bed.passwords[id], reconnectPeriod: 0,
    will: { topic: `${BASE}/nodes/${id}/status`, payload: Buffer.from('offline'), qos: 1, retain: true },
  })
  await c.subscribeAsync([`${BASE}/nodes/${id}/audio/out`, `${BASE}/nodes/${id}/events`], { qos: 1 })
  let seq = 0
  const beat = () => void c.publishAsync(`${BASE}/nodes/${id}/heartbeat`, JSON.stringify({ v: 1, ts: Date.now(), seq: seq++, uptimeS: 1, cpuPct: null, memPct: null, rssMb: 50, temperatureC: null, versions: {}, mode: 'online', room: null })).catch(() => undefined)
  beat()
  const timer = setInterval(beat, 1000)
  await c.publishAsync(`${BASE}/nodes/${id}/status`, 'online', { qos: 1, retain: true })
  /** The turn in flight: its id once the hub names it (transcript/busy event), the first frame time. */
  let cur
  c.on('message', (topic, payload) => {
    if (!cur) return
    if (topic.endsWith('/audio/out')) {
      const f = decodeAudioFrame(payload)
      if (typeof f !== 'string' && f.turnId === cur.turnId && cur.firstAt === undefined && !cur.refused) cur.firstAt = Date.now()
      return
    }
    let ev
    try { ev = JSON.parse(payload.toString()) } catch { return }
    if (ev.type === 'transcript' && cur.turnId === undefined) cur.turnId = ev.turnId
    else if (ev.type === 'busy') cur.finish('busy')
    else if (ev.type === 'reply' && ev.turnId === cur.turnId) cur.finish('reply')
    else if (ev.type === 'turn_error' && ev.turnId === cur.turnId) cur.finish(`error:${ev.reason}`)
  })
  const sim = {
    id,
    get busy() { return cur !== undefined },
    turn() {
      return new Promise((resolve) => {
        const t = { sentAt: Date.now(), turnId: undefined, firstAt: undefined, refused: false }
        const timeout = setTimeout(() => t.finish('timeout'), 30_000)
        t.finish = (outcome) => {
          clearTimeout(timeout)
          if (cur === t) cur = undefined
          resolve({ outcome, ttfaMs: t.firstAt === undefined ? undefined : t.firstAt - t.sentAt })
        }
        cur = t
        c.publish(`${BASE}/nodes/${id}/turn/text`, JSON.stringify({ v: 1, ts: Date.now(), text: 'what time is it' }), { qos: 1 })
      })
    },
    async close() { clearInterval(timer); await c.endAsync(true).catch(() => undefined) },
  }
  return sim
}
