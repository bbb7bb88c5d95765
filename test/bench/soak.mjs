// `npm run soak [-- --minutes N] [--nodes 200] [--voice 4] [--no-kill]`: a bounded soak. 200 simulated
// nodes heartbeat (in-process MeshClients with the agent's backoff) while a few voice nodes speak
// espeak-ng turns through the real pipeline (VAD, pocketsphinx, skills, espeak TTS); the hub is
// SIGKILLed once in the middle and restarted. Per minute: hub RSS, p99 heartbeat delay (an
// observer's receive time − the heartbeat's ts), TTFA p50/p99, turns ok / lost. At the end: RSS
// slope per hub process (MB/min), drift, and the turns lost (must be 0; a turn cut by the kill is
// counted apart as "interrupted").
//
// `npm run soak -- --rss-cycles 5`: the RSS question instead. N times: 200 nodes connect, all
// online, then all leave; hub RSS and V8 heap (prom-client's nodejs_heap_size_used_bytes) after
// each cycle: a heap that returns while RSS stays flat at its peak is a high-water mark, a heap
// that keeps growing is a leak.
import mqtt from 'mqtt'
import { killAll, sleep, waitFor } from '../support/dist/harness.js'
import { startFleetHub } from '../support/dist/fleet-hub.js'
import { startFleet } from '../support/dist/sim-nodes.js'
import { VoiceNode, synth } from '../support/dist/voice.js'
import { metricValue } from '../support/dist/mesh.js'
import { memOf, printMachine, quantile } from './lib.mjs'

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`)
  return i < 0 ? dflt : Number(process.argv[i + 1])
}
const MINUTES = arg('minutes', 10)
const NODES = arg('nodes', 200)
const VOICE = arg('voice', 4)
const CYCLES = arg('rss-cycles', 0)
const KILL = !process.argv.includes('--no-kill')

const round = (n, d = 1) => (n === undefined || Number.isNaN(n) ? '-' : Math.round(n * 10 ** d) / 10 ** d)
const slope = (pts) => {
  // least squares, MB per minute
  if (pts.length < 2) return NaN
  const n = pts.length
  const mx = pts.reduce((s, p) => s + p[0], 0) / n
  const my = pts.reduce((s, p) => s + p[1], 0) / n
  const num = pts.reduce((s, p) => s + (p[0] - mx) * (p[1] - my), 0)
  const den = pts.reduce((s, p) => s + (p[0] - mx) ** 2, 0)
  return den ? (num / den) * 60_000 : NaN
}

async function heapMb(fh) {
  const text = (await fh.hub.http('/metrics')).body
  return metricValue(text, 'nodejs_heap_size_used_bytes') / 1048576
}

async function rssCycles() {
  printMachine()
  const fh = await startFleetHub(NODES)
  const pid = () => fh.hub.proc.pid
  await sleep(3000)
  console.log(`rss cycles: ${CYCLES} × (${NODES} nodes connect, all online, all leave); hub after each (settled 10 s)`)
  console.log(`  start: RSS ${round(memOf(pid()).rssMb)} MB, heap used ${round(await heapMb(fh))} MB`)
  for (let c = 1; c <= CYCLES; c++) {
    const fleet = startFleet(fh.hub.mqttUrl, fh.creds)
    await waitFor(async () => (await fh.online()) === NODES, { timeoutMs: 120_000, intervalMs: 500, what: `${NODES} online` })
    await sleep(5000)
    const peak = memOf(pid())
    await fleet.stop()
    await waitFor(async () => (await fh.online()) === 0, { timeoutMs: 60_000, intervalMs: 500, what: 'all gone' })
    await sleep(10_000)
    const m = memOf(pid())
    console.log(`  cycle ${c}: connected RSS ${round(peak.rssMb)} MB; after leaving RSS ${round(m.rssMb)} MB (anon ${round(m.anonMb)}), VmHWM ${round(m.hwmMb)} MB, heap used ${round(await heapMb(fh))} MB`)
  }
}

async function soak() {
  printMachine()
  const voiceIds = Array.from({ length: VOICE }, (_, i) => `voice-${i}`)
  const fh = await startFleetHub(NODES, { ASR_GRAMMAR_EXTRA: 'what time is it', VAD_END_SILENCE_MS: '500' })
  // The voice nodes' logins live in the same store (the hub reads it on each connect).
  const { CredentialStore } = await import('@mirrormesh/broker')
  const store = new CredentialStore(`${fh.hub.stateDir}/credentials.json`)
  const voicePw = {}
  for (const id of voiceIds) voicePw[id] = await store.add(id, 'node', { cost: 1024 })
  const t0 = Date.now()
  const minute = () => Math.floor((Date.now() - t0) / 60_000)
  const per = new Map()
  const bucket = () => { const m = minute(); if (!per.has(m)) per.set(m, { hb: [], ttfa: [], ok: 0, lost: 0, interrupted: 0, rss: [] }); return per.get(m) }

  const fleet = startFleet(fh.hub.mqttUrl, fh.creds)
  await waitFor(async () => (await fh.online()) === NODES, { timeoutMs: 180_000, intervalMs: 500, what: `${NODES} nodes online` })
  console.log(`soak: ${MINUTES} min, ${NODES} heartbeating nodes + ${VOICE} voice nodes, ${KILL ? 'one hub SIGKILL in the middle' : 'no kill'}; all online after ${Date.now() - t0} ms`)

  // Observer: heartbeat delay as the mesh delivers it.
  const watch = await mqtt.connectAsync(fh.hub.mqttUrl, { clientId: `watch-${process.pid}`, username: fh.observer.id, password: fh.observer.password, reconnectPeriod: 500 })
  watch.on('message', (_t, p) => { try { bucket().hb.push(Date.now() - JSON.parse(p.toString()).ts) } catch {} })
  watch.on('connect', () => watch.subscribe('mirrormesh/nodes/+/heartbeat'))
  await watch.subscribeAsync('mirrormesh/nodes/+/heartbeat')

  const rssPts = [[]]
  const rssTimer = setInterval(() => {
    const m = memOf(fh.hub.proc.pid)
    if (m) { rssPts.at(-1).push([Date.now(), m.rssMb]); bucket().rss.push(m.rssMb) }
  }, 5000)

  const PAD_MS = 900
  const phrases = await Promise.all(['what time is it', 'turn on the kitchen light', 'what day is it'].map((t) => synth(t, { padMs: PAD_MS })))
  let hubUp = true
  let killed = false
  const end = t0 + MINUTES * 60_000
  const totals = { ok: 0, lost: 0, interrupted: 0 }

  const voiceLoop = async (id, k) => {
    const client = await mqtt.connectAsync(fh.hub.mqttUrl, { clientId: `node-${id}`, username: id, password: voicePw[id], reconnectPeriod: 500 })
    const node = new VoiceNode(client, id)
    await node.ready()
    client.on('connect', () => void node.ready().catch(() => undefined))
    await sleep(k * 1500)
    let i = 0
    while (Date.now() < end) {
      if (!hubUp || !client.connected) { await sleep(500); continue }
      const epoch = killedCount
      const { turnId, endOfSpeechAt } = await node.say(phrases[i++ % phrases.length])
      try {
        const r = await node.reply(turnId, 30_000)
        // TTFA from the end of the words (the trailing silence is what lets the hub's VAD end the turn).
        bucket().ttfa.push((r.firstFrameAt ?? Date.now()) - (endOfSpeechAt - PAD_MS))
        bucket().ok++; totals.ok++
      } catch {
        if (epoch !== killedCount || !hubUp) { bucket().interrupted++; totals.interrupted++ } else { bucket().lost++; totals.lost++ }
      }
      await sleep(3000 + Math.random() * 2000)
    }
    client.end(true)
  }
  let killedCount = 0
  const voices = voiceIds.map((id, k) => voiceLoop(id, k))

  const printed = new Set()
  const printUpTo = (last) => { for (const m of [...per.keys()].sort((a, b) => a - b)) if (m <= last) printMinute(m) }
  const report = setInterval(() => printUpTo(minute() - 1), 60_000)
  const printMinute = (m) => {
    const b = per.get(m)
    if (!b || printed.has(m)) return
    printed.add(m)
    console.log(`  min ${m + 1}: hub RSS ${round(Math.max(...b.rss))} MB; heartbeat delay p99 ${round(quantile(b.hb, 0.99))} ms (n ${b.hb.length}); TTFA p50 ${round(quantile(b.ttfa, 0.5), 0)} / p99 ${round(quantile(b.ttfa, 0.99), 0)} ms; turns ok ${b.ok}, lost ${b.lost}, interrupted ${b.interrupted}`)
  }

  if (KILL) {
    await sleep(Math.max(0, t0 + (MINUTES * 60_000) / 2 - Date.now()))
    hubUp = false
    killedCount++
    const k0 = Date.now()
    fh.hub.kill('SIGKILL')
    await fh.hub.exited
    rssPts.push([])
    await fh.restart()
    hubUp = true
    await waitFor(async () => (await fh.online()) === NODES, { timeoutMs: 180_000, intervalMs: 500, what: `${NODES} online after the kill` })
    console.log(`  hub SIGKILL at ${round((k0 - t0) / 60_000)} min: back, all ${NODES} nodes online ${Date.now() - k0} ms after the kill`)
    killed = true
  }
  await Promise.all(voices)
  clearInterval(report)
  clearInterval(rssTimer)
  printUpTo(minute())
  const slopes = rssPts.filter((p) => p.length > 2).map((p) => round(slope(p), 2))
  const mins = [...per.keys()].sort((a, b) => a - b)
  const first = per.get(mins[0]); const last = per.get(mins.at(-1))
  console.log(`soak result: turns ok ${totals.ok}, lost ${totals.lost}, interrupted by the kill ${totals.interrupted}; hub RSS slope per process ${JSON.stringify(slopes)} MB/min; ` +
    `heartbeat p99 first/last minute ${round(quantile(first.hb, 0.99))} / ${round(quantile(last.hb, 0.99))} ms; TTFA p50 first/last ${round(quantile(first.ttfa, 0.5), 0)} / ${round(quantile(last.ttfa, 0.5), 0)} ms${killed ? '' : ''}`)
  watch.end(true)
  await fleet.stop()
  if (totals.lost > 0) process.exitCode = 1
}

try {
  await (CYCLES > 0 ? rssCycles() : soak())
} finally {
  await killAll()
}
process.exit(process.exitCode ?? 0)
