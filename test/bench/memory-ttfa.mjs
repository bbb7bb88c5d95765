// `bench memory` part 2: what memory adds to a turn's TTFA, through a real hub. The same turns
// run against one state dir holding 10k memories under the mirror's room key, with memory on
// (MEMORY_ENABLED=true) and off, in alternating rounds (on, off, on, off …) so a change in the
// machine's load hits both alike. A tiny GGUF LLM is configured: with an LLM the memory stage
// searches on every turn that is not a memory intent (the prompt's context), which is the
// case memory can slow; the turns themselves are skill turns, answered the same either way.
//   text turns: POST /api/turns; TTFA = text in -> first reply frame out (the hub's own figure)
//   voice turns: espeak-ng speech streamed like a mirror, end flag; TTFA from the hub's
//                "turn finished" log line (end of speech -> first reply frame)
// Settings: BENCH_TTFA_TURNS=40 text turns per mode, BENCH_TTFA_VOICE=10 voice turns per mode,
// BENCH_TTFA_ROUNDS=2, BENCH_TTFA_MEMORIES=10000 (a third of them facts).
import { join } from 'node:path'
import mqtt from 'mqtt'
import { AudioFlags, CredentialStore, encodeAudioFrame } from '../../broker/dist/index.js'
import { hashedVector, HASHED_DIM } from '../../hub/dist/memory/hash-embed.js'
import { SqliteMemoryStore } from '../../hub/dist/memory/sqlite.js'
import { killAll, sleep, startHub, tempDir, waitFor } from '../support/dist/harness.js'
import { makeTinyGguf } from '../support/dist/tiny-gguf.js'
import { synth } from '../support/dist/voice.js'
import { envInt, fmt, logLines, quantile, startHubRetry, table, trackDir } from './lib.mjs'

const BASE = 'mirrormesh'
const NODE = 'kitchen'
const TEXT_TURNS = ['what time is it', 'turn on the kitchen light', 'what is the date', 'turn off the kitchen light', 'are you there']
const VOICE_TURNS = ['what time is it', 'turn on the kitchen light', 'what is the date']

const things = 'keys wallet glasses charger umbrella passport bike helmet remote scissors tape gloves scarf ticket receipt battery torch hammer drill ladder'.split(' ')
const places = 'drawer shelf cupboard garage shed fridge basket box hook table desk bag car attic cellar hall porch sofa bench window'.split(' ')
const sentence = (i) => `the ${things[i % things.length]} number ${i} is in the ${places[(i * 7) % places.length]}`

async function fill(path, n) {
  const store = new SqliteMemoryStore(path, { dim: HASHED_DIM })
  for (let i = 0; i < n; i++) {
    const fact = i % 3 === 0
    await store.add(`room:${NODE}`, fact ? 'fact' : 'turn', sentence(i), fact ? hashedVector(sentence(i)) : undefined, Date.now() - (n - i) * 1000)
  }
  await store.close()
}

/** The mirror as the hub sees it: online, heartbeating with its room; streams speech on request. */
async function mirror(hub, password) {
  const client = await mqtt.connectAsync(hub.mqttUrl, { clientId: `node-${NODE}/bench-${Math.random().toString(36).slice(2, 8)}`, username: NODE, password, protocolVersion: 4, reconnectPeriod: 0 })
  client.stream?.setNoDelay?.(true)
  let seq = 0
  const beat = () => client.publish(`${BASE}/nodes/${NODE}/heartbeat`, JSON.stringify({ v: 1, ts: Date.now(), seq: seq++, uptimeS: 1, cpuPct: null, memPct: null, rssMb: 50, temperatureC: null, versions: {}, mode: 'online', room: NODE }), { qos: 0 })
  await client.publishAsync(`${BASE}/nodes/${NODE}/status`, 'online', { qos: 1, retain: true })
  beat()
  const timer = setInterval(beat, 500)
  await waitFor(async () => (await hub.node(NODE))?.room === NODE, { what: `${NODE} registered in its room` })
  let turnId = 7000
  return {
    /** Streams `pcm` paced like a microphone, end flag on the last frame; returns the turn id. */
    async say(pcm) {
      const id = turnId++
      const frames = Math.ceil(pcm.length / 320)
      const t0 = Date.now()
      for (let k = 0; k < frames; k++) {
        const wait = t0 + (k + 1) * 20 - Date.now()
        if (wait > 0) await sleep(wait)
        const flags = (k === 0 ? AudioFlags.start : 0) | (k === frames - 1 ? AudioFlags.end : 0)
        client.publish(`${BASE}/nodes/${NODE}/audio/in`, encodeAudioFrame({ flags, turnId: id, seq: k, samples: pcm.subarray(k * 320, (k + 1) * 320) }), { qos: 0 })
      }
      return id
    },
    stop() { clearInterval(timer); client.end(true) },
  }
}

async function typed(hub, text) {
  const res = await fetch(`http://127.0.0.1:${hub.httpPort}/api/turns`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ node: NODE, text }), signal: AbortSignal.timeout(30_000) })
  return res.json()
}

async function round(setup, memoryOn, counts, out) {
  const hub = await startHubRetry(startHub, {
    stateDir: setup.stateDir, timeoutMs: 90_000,
    env: { MEMORY_ENABLED: String(memoryOn), MEMORY_MAX_PER_KEY: '0', LLM_MODEL: setup.model, LLM_MAX_TOKENS: '20', NODE_STALE_MS: '5000' },
  })
  const node = await mirror(hub, setup.password)
  try {
    const ready = await hub.http('/readyz')
    out.mode ??= ready.body?.modes?.memory
    for (let i = 0; i < 3; i++) await typed(hub, TEXT_TURNS[i]) // warm: TTS, skill matcher, memory vectors
    for (let i = 0; i < counts.text; i++) {
      const r = await typed(hub, TEXT_TURNS[i % TEXT_TURNS.length])
      if (r.kind === 'skill' && typeof r.ttfaMs === 'number') out.text.push(r.ttfaMs)
      else out.bad.push(`${r.outcome}/${r.kind}: ${r.transcript}`)
    }
    for (let i = 0; i < counts.voice; i++) {
      const id = await node.say(setup.speech[i % setup.speech.length])
      const line = await waitFor(() => logLines(hub.out.text).find((l) => l.msg === 'turn finished' && l.nodeId === NODE && l.turnId === id), { timeoutMs: 30_000, intervalMs: 20, what: `voice turn ${id}` }).catch(() => undefined)
      if (line?.kind === 'skill' && typeof line.timings?.ttfaMs === 'number') out.voice.push(line.timings.ttfaMs)
      else out.bad.push(`voice ${line?.outcome ?? 'timeout'}/${line?.kind ?? '-'}`)
      await sleep(300)
    }
    if (memoryOn) {
      const r = await typed(hub, 'where are my keys') // the recall itself, for reference
      if (typeof r.ttfaMs === 'number') out.recall.push(r.ttfaMs)
      // The hub's own recall timing (embed + search inside the turn): sum and count.
      const text = await (await fetch(`http://127.0.0.1:${hub.httpPort}/metrics`)).text()
      const metric = (name) => Number(new RegExp(`^${name} ([0-9.e+-]+)$`, 'm').exec(text)?.[1] ?? NaN)
      out.recallSum = (out.recallSum ?? 0) + metric('mirrormesh_memory_recall_seconds_sum')
      out.recallCount = (out.recallCount ?? 0) + metric('mirrormesh_memory_recall_seconds_count')
    }
  } finally {
    node.stop()
    hub.kill('SIGTERM')
    await hub.exited
  }
}

export async function ttfaBench() {
  const n = envInt('BENCH_TTFA_MEMORIES', 10_000)
  const counts = { text: envInt('BENCH_TTFA_TURNS', 40), voice: envInt('BENCH_TTFA_VOICE', 10) }
  const rounds = envInt('BENCH_TTFA_ROUNDS', 2)
  const stateDir = trackDir(await tempDir('mm-bench-memttfa-'))
  const password = await new CredentialStore(join(stateDir, 'credentials.json')).add(NODE, 'node', { cost: 1024 })
  const model = join(stateDir, 'tiny.gguf')
  await makeTinyGguf(model, 7)
  const t0 = performance.now()
  await fill(join(stateDir, 'memory.db'), n)
  console.log(`memory TTFA: ${n} memories under room:${NODE} (a third facts) written in ${fmt((performance.now() - t0) / 1000, 1)} s; ${rounds} rounds of ${counts.text} text + ${counts.voice} voice skill turns per mode`)
  const speech = []
  for (const t of VOICE_TURNS) speech.push(await synth(t, { padMs: 300 }))
  const res = { on: { text: [], voice: [], recall: [], bad: [] }, off: { text: [], voice: [], recall: [], bad: [] } }
  for (let r = 0; r < rounds; r++) {
    for (const on of [true, false]) await round({ stateDir, password, model, speech }, on, counts, on ? res.on : res.off)
  }
  await killAll()
  const q = (v, p) => (v.length ? quantile([...v].sort((a, b) => a - b), p) : undefined)
  const rows = [['turns', 'memory', 'n', 'TTFA p50 ms', 'p95 ms', 'max ms']]
  for (const kind of ['text', 'voice']) {
    for (const m of ['on', 'off']) { const v = res[m][kind]; rows.push([kind, m, v.length, fmt(q(v, 0.5), 0), fmt(q(v, 0.95), 0), fmt(q(v, 1), 0)]) }
    const d50 = q(res.on[kind], 0.5) - q(res.off[kind], 0.5)
    const d95 = q(res.on[kind], 0.95) - q(res.off[kind], 0.95)
    rows.push([kind, 'on - off', '', fmt(d50, 0), fmt(d95, 0), ''])
  }
  table(rows)
  console.log(`memory mode: ${res.on.mode ?? '?'}; "where are my keys" (recall, memory on): TTFA ${res.on.recall.map((x) => fmt(x, 0)).join(', ')} ms`)
  console.log(`recall inside the hub's turns (mirrormesh_memory_recall_seconds): ${res.on.recallCount} recalls, mean ${fmt((res.on.recallSum / res.on.recallCount) * 1000, 2)} ms`)
  const bad = [...res.on.bad, ...res.off.bad]
  if (bad.length) console.log(`turns left out (not a skill answer or no TTFA): ${bad.length} — ${bad.slice(0, 5).join('; ')}`)
}
