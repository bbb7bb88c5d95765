// `bench pipeline`: voice-pipeline latency on this machine, through the hub's embedded broker.
//   1. TTFA over varied skill and LLM turns (one node, sequential), twice: ended by the hub's VAD
//      (no end flag: TTFA includes the VAD tail) and ended by the node's end flag.
//      Per-stage figures come from the hub's "turn finished" log line; hub and bench share one
//      clock (same machine), so hub timestamps and client timestamps are compared directly.
//   2. Barge-in: reply frame -> +200 ms -> bargeIn control frame -> cancel frame (client side),
//      plus the hub's mirrormesh_barge_in_seconds histogram.
//   3. Heartbeat delay: 20 simulated nodes at 10 Hz (forked load generator), idle vs. while two
//      nodes run turns back to back (one skill, one LLM).
//   4. Hub RSS: idle with the pipeline loaded, max during the turn loops.
// Figures only: nothing here fails on timing.
//
// Run: `node test/bench/pipeline.mjs` (or import and call main()). Settings (env):
//   BENCH_TURNS=30        skill turns per TTFA mode      BENCH_LLM_TURNS=10   LLM turns per TTFA mode
//   BENCH_EOS_TURNS=<BENCH_TURNS>  skill turns for the end-flag mode; its LLM turns scale alike (0 skips the mode)
//   BENCH_BARGE_REPS=12   BENCH_HB_NODES=20  BENCH_HB_HZ=10  BENCH_HB_SECONDS=10
//   VAD_END_SILENCE_MS=500 (passed to the hub)   BENCH_VERBOSE=1 prints every TTFA turn
//   BENCH_HUB_<SETTING>=value is passed to the pipeline hub as <SETTING> (e.g. BENCH_HUB_LLM_MAX_THREADS=1)
import { fork } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'
import { cpus, release, availableParallelism, totalmem, loadavg } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import mqtt from 'mqtt'
import { AudioFlags, CredentialStore, decodeAudioFrame, encodeAudioFrame, quantile as hubQuantile } from '../../broker/dist/index.js'
import { killAll, removeDir, sleep, startHub, tempDir, waitFor } from '../support/dist/harness.js'
import { metricValue } from '../support/dist/mesh.js'
import { makeTinyGguf } from '../support/dist/tiny-gguf.js'
import { synth } from '../support/dist/voice.js'

const here = fileURLToPath(import.meta.url)
const BASE = 'mirrormesh'
const FRAME = 320 // 20 ms at 16 kHz
const EXTRA = 'tell me a joke|what should i cook tonight'
const SKILL_UTTERANCES = ['what time is it', 'turn on the kitchen light', 'turn off the hall light', 'are you there',
  'what is the date', 'set a timer for five minutes', 'volume up', 'what is the weather like']
const LLM_UTTERANCES = ['tell me a joke', 'what should i cook tonight']
const BARGE_UTTERANCE = 'what is the weather like'

const envInt = (name, def) => {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return def
  const v = Number(raw)
  return Number.isFinite(v) && v >= 0 ? Math.floor(v) : def
}

// ---------------------------------------------------------------- small helpers

/** Nearest-rank quantile of the finite numbers in `values` (the hub's own, broker/src/stats.ts). */
const quantile = (values, q) => hubQuantile(values.filter((x) => typeof x === 'number' && Number.isFinite(x)), q)
const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined)
const fmt = (v, d = 0) => (v === undefined || v === null || Number.isNaN(v) ? '-' : typeof v === 'number' ? v.toFixed(d) : String(v))
const r1 = (v) => (typeof v === 'number' && Number.isFinite(v) ? Math.round(v * 10) / 10 : null)

function table(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i] ?? '').length)))
  const line = (r) => r.map((c, i) => (i === 0 ? String(c ?? '').padEnd(widths[i]) : String(c ?? '').padStart(widths[i]))).join('  ')
  console.log(line(rows[0]))
  console.log(widths.map((w) => '-'.repeat(w)).join('  '))
  for (const r of rows.slice(1)) console.log(line(r))
}

function rssKb(pid) {
  try {
    return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN)
  } catch {
    return NaN
  }
}

/** pid plus all its descendants (pocketsphinx, espeak-ng, sox children of the hub). */
function processTree(root) {
  const kids = new Map()
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      const s = readFileSync(`/proc/${d}/stat`, 'utf8')
      const ppid = Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1])
      if (!kids.has(ppid)) kids.set(ppid, [])
      kids.get(ppid).push(Number(d))
    } catch { /* gone */ }
  }
  const out = [root]
  for (let i = 0; i < out.length; i++) out.push(...(kids.get(out[i]) ?? []))
  return out
}

/** Samples hub RSS (process, and process + children) every `ms` until stop(). */
function rssSampler(pid, ms = 250) {
  const s = { maxKb: 0, maxTreeKb: 0, samples: 0 }
  const tick = () => {
    const own = rssKb(pid)
    if (!Number.isFinite(own)) return
    const tree = processTree(pid).reduce((a, p) => a + (rssKb(p) || 0), 0)
    s.maxKb = Math.max(s.maxKb, own)
    s.maxTreeKb = Math.max(s.maxTreeKb, tree)
    s.samples++
  }
  tick()
  const timer = setInterval(tick, ms)
  return { stop() { clearInterval(timer); tick(); return { maxMb: s.maxKb / 1024, maxTreeMb: s.maxTreeKb / 1024, samples: s.samples } } }
}

/** espeak-ng speech, trailing near-silence trimmed: speech ends at the last sample returned. */
async function speech(text, opts) {
  const pcm = await synth(text, { padMs: 0, ...opts })
  let end = pcm.length
  while (end > 0 && Math.abs(pcm[end - 1]) < 300) end--
  return pcm.slice(0, end)
}
function withPad(pcm, padMs) {
  const out = new Int16Array(pcm.length + Math.round(padMs * 16))
  out.set(pcm)
  return out
}

// ---------------------------------------------------------------- hub log

/** The hub's pino lines, parsed (cached by text length). */
function hubLog(hub) {
  const text = hub.out.text
  if (hub._logCache?.len === text.length) return hub._logCache.lines
  const lines = []
  for (const l of text.split('\n')) {
    if (!l.startsWith('{')) continue
    try { lines.push(JSON.parse(l)) } catch { /* partial line */ }
  }
  hub._logCache = { len: text.length, lines }
  return lines
}
const turnLog = (hub, nodeId, turnId) => hubLog(hub).find((l) => l.msg === 'turn finished' && l.nodeId === nodeId && l.turnId === turnId)

// ---------------------------------------------------------------- a mirror node

let nextTurnId = 5000

/** A node that streams speech and timestamps what comes back, per turn. */
class Mirror {
  constructor(client, nodeId) {
    this.client = client
    this.nodeId = nodeId
    this.turns = new Map()
    this.waiters = new Set()
    client.on('message', (topic, payload) => {
      const at = Date.now()
      if (topic.endsWith('/audio/out')) {
        const f = decodeAudioFrame(payload)
        if (typeof f === 'string') { this.badFrames = (this.badFrames ?? 0) + 1; return }
        const t = this.turn(f.turnId)
        t.frames++
        t.samples += f.samples.length
        if (f.seq !== t.nextSeq) t.seqGaps++
        t.nextSeq = f.seq + 1
        t.firstFrameAt ??= at
        if (f.flags & AudioFlags.end) t.endAt ??= at
        if (f.flags & AudioFlags.cancel) t.cancelAt ??= at
        else if (t.cancelAt !== undefined) t.framesAfterCancel++
      } else if (topic.endsWith('/events')) {
        let ev
        try { ev = JSON.parse(payload.toString()) } catch { return }
        if (typeof ev.turnId !== 'number') { (this.otherEvents ??= []).push(ev); return }
        const t = this.turn(ev.turnId)
        t.events.push({ at, ...ev })
      }
      for (const w of [...this.waiters]) w()
    })
  }

  static async connect(url, nodeId, password) {
    const client = await mqtt.connectAsync(url, {
      clientId: `node-${nodeId}/bench-${Math.random().toString(36).slice(2, 8)}`,
      username: nodeId, password, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000,
    })
    client.stream?.setNoDelay?.(true) // as the node agent's MeshClient does
    await client.subscribeAsync([`${BASE}/nodes/${nodeId}/audio/out`, `${BASE}/nodes/${nodeId}/events`], { qos: 1 })
    return new Mirror(client, nodeId)
  }

  turn(id) {
    let t = this.turns.get(id)
    if (!t) this.turns.set(id, (t = { id, frames: 0, samples: 0, nextSeq: 0, seqGaps: 0, framesAfterCancel: 0, events: [], seq: 0 }))
    return t
  }

  event(t, type) { return t.events.find((e) => e.type === type) }

  /** Resolves when pred() is truthy (checked on every message), or with undefined after timeoutMs. */
  until(pred, timeoutMs) {
    const v = pred()
    if (v) return Promise.resolve(v)
    return new Promise((resolve) => {
      const done = (val) => { clearTimeout(timer); this.waiters.delete(check); resolve(val) }
      const check = () => { const val = pred(); if (val) done(val) }
      const timer = setTimeout(() => done(undefined), timeoutMs)
      this.waiters.add(check)
    })
  }

  /**
   * Stream `pcm` paced like a microphone: frame k (samples [320k, 320k+320)) goes out when its
   * last sample has been "spoken", t0 + 20(k+1) ms. Records when the frame holding sample
   * `speechSamples - 1` (the end of speech) and the last frame were published.
   */
  async say(pcm, { speechSamples, endFlag = false, turnId = nextTurnId++ } = {}) {
    const t = this.turn(turnId)
    const topic = `${BASE}/nodes/${this.nodeId}/audio/in`
    const lastSpeechFrame = Math.floor((speechSamples - 1) / FRAME)
    const nFrames = Math.ceil(pcm.length / FRAME)
    const t0 = Date.now()
    for (let k = 0; k < nFrames; k++) {
      const due = t0 + (k + 1) * 20
      const wait = due - Date.now()
      if (wait > 0) await sleep(wait)
      let flags = k === 0 ? AudioFlags.start : 0
      if (endFlag && k === nFrames - 1) flags |= AudioFlags.end
      const samples = pcm.subarray(k * FRAME, Math.min(pcm.length, (k + 1) * FRAME))
      this.client.publish(topic, encodeAudioFrame({ flags, turnId, seq: t.seq++, samples }), { qos: 0 })
      const now = Date.now()
      if (k === 0) t.firstSentAt = now
      if (k === lastSpeechFrame) t.speechEndAt = now
      if (k === nFrames - 1) t.lastSentAt = now
    }
    return t
  }

  control(t, flags) {
    this.client.publish(`${BASE}/nodes/${this.nodeId}/audio/in`, encodeAudioFrame({ flags, turnId: t.id, seq: t.seq++, samples: new Int16Array(0) }), { qos: 0 })
    return Date.now()
  }
}

/**
 * One turn: speak, wait for the reply (reply event + end/cancel frame), then the hub's log line.
 * Returns a flat record of client and hub timings (all ms).
 */
async function runTurn(hub, node, utt, { endFlag, timeoutMs = 30_000 }) {
  const t = node.turn(nextTurnId++)
  const saying = node.say(endFlag ? utt.pcmEos : utt.pcmVad, { speechSamples: utt.speech.length, endFlag, turnId: t.id })
  const ok = await node.until(() => node.event(t, 'turn_error') || node.event(t, 'busy') || (node.event(t, 'reply') && (t.endAt || t.cancelAt || !node.event(t, 'reply').audio)), timeoutMs)
  await saying
  const log = await waitFor(() => turnLog(hub, node.nodeId, t.id), { timeoutMs: 3000, intervalMs: 20, what: `hub log for turn ${t.id}` }).catch(() => undefined)
  const rec = { node: node.nodeId, utterance: utt.text, expect: utt.kind, endFlag, turnId: t.id, timedOut: !ok, frames: t.frames, seqGaps: t.seqGaps,
    replyAudioS: t.samples / 16000, transcript: node.event(t, 'transcript')?.text, reply: node.event(t, 'reply')?.text,
    error: node.event(t, 'turn_error')?.reason ?? (node.event(t, 'busy') ? 'busy' : undefined) }
  if (log) {
    const tm = log.timings ?? {}
    rec.kind = log.kind
    rec.outcome = log.outcome
    rec.engines = log.engines
    rec.hub = tm
    // pino's `time` is Date.now() at the log call, totalMs = that - turn start (±1 ms).
    const startAbs = log.time - tm.totalMs
    const eosAbs = num(tm.listenMs) !== undefined ? startAbs + tm.listenMs : undefined
    const firstAbs = eosAbs !== undefined && num(tm.ttfaMs) !== undefined ? eosAbs + tm.ttfaMs : undefined
    rec.startTransitMs = startAbs - t.firstSentAt // clock sanity check: should be a few ms
    if (eosAbs !== undefined) rec.eosDelayMs = eosAbs - (endFlag ? t.lastSentAt : t.speechEndAt) // VAD tail, or end-frame transit
    if (firstAbs !== undefined && t.firstFrameAt !== undefined) rec.transportOutMs = t.firstFrameAt - firstAbs
  }
  rec.kind ??= 'unknown'
  if (t.firstFrameAt !== undefined) {
    rec.clientTtfaMs = t.firstFrameAt - (endFlag ? t.lastSentAt : t.speechEndAt)
  }
  return rec
}

// ---------------------------------------------------------------- heartbeat load generator (forked)

async function heartbeatWorker() {
  process.on('disconnect', () => process.exit(0))
  const nodes = []
  const stats = { published: 0, skipped: 0, errors: 0 }
  let ticker
  const stop = () => { clearInterval(ticker); ticker = undefined }
  process.on('message', async (m) => {
    if (m.type === 'connect') {
      await Promise.all(m.nodes.map(async ({ id, password }) => {
        const client = await mqtt.connectAsync(m.url, { clientId: `node-${id}`, username: id, password, protocolVersion: 4, reconnectPeriod: 1000, connectTimeout: 5000,
          will: { topic: `${BASE}/nodes/${id}/status`, payload: Buffer.from('offline'), qos: 1, retain: true } })
        client.stream?.setNoDelay?.(true)
        client.on('error', () => { stats.errors++ })
        await client.publishAsync(`${BASE}/nodes/${id}/status`, 'online', { qos: 1, retain: true })
        nodes.push({ id, client, seq: 0, topic: `${BASE}/nodes/${id}/heartbeat`, startedAt: Date.now() })
      }))
      process.send({ type: 'connected', n: nodes.length })
    } else if (m.type === 'start') {
      stop()
      const period = 1000 / m.hz
      const t0 = Date.now()
      nodes.forEach((n, i) => { n.next = t0 + (i * period) / nodes.length })
      const p0 = stats.published
      ticker = setInterval(() => {
        const now = Date.now()
        for (const n of nodes) {
          if (now < n.next) continue
          if (!n.client.connected) stats.skipped++
          else {
            n.client.publish(n.topic, JSON.stringify({ v: 1, ts: now, seq: n.seq++, uptimeS: Math.round((now - n.startedAt) / 1000), cpuPct: null, memPct: null,
              rssMb: 40, temperatureC: null, versions: { agent: 'bench' }, mode: 'online' }), { qos: 0 })
            stats.published++
          }
          n.next += period
          if (n.next <= now) { stats.skipped += Math.floor((now - n.next) / period) + 1; n.next = now + period } // a late tick does not burst
        }
      }, 2)
      process.send({ type: 'started', published0: p0 })
    } else if (m.type === 'stop') {
      stop()
      process.send({ type: 'stopped', stats })
    } else if (m.type === 'exit') {
      stop()
      for (const n of nodes) n.client.end(true)
      setTimeout(() => process.exit(0), 100)
    }
  })
  process.send({ type: 'ready' })
}

function startHeartbeatWorker() {
  const child = fork(here, ['--heartbeat-worker'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const next = (type, timeoutMs = 20_000) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.off('message', on); reject(new Error(`heartbeat worker: no ${type} in ${timeoutMs} ms`)) }, timeoutMs)
    const on = (m) => { if (m.type === type) { clearTimeout(timer); child.off('message', on); resolve(m) } }
    child.on('message', on)
  })
  const ready = next('ready')
  return {
    child,
    ready,
    async call(msg, reply) { const p = next(reply); child.send(msg); return p },
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return
      try { child.send({ type: 'exit' }) } catch {}
      await Promise.race([new Promise((r) => child.once('exit', r)), sleep(2000).then(() => { try { child.kill('SIGKILL') } catch {} })])
    },
  }
}

// ---------------------------------------------------------------- the bench

function machine() {
  const c = cpus()
  return { cpu: c[0]?.model ?? '?', nproc: availableParallelism(), cpus: c.length, memGb: Math.round(totalmem() / 2 ** 30), node: process.version, kernel: release() }
}

async function setupHub({ env, simNodes = 0, llm = true }) {
  const stateDir = await tempDir('mm-bench-pipe-')
  const store = new CredentialStore(join(stateDir, 'credentials.json'))
  const passwords = {}
  for (const id of ['kitchen', 'hall', 'a', 'b']) passwords[id] = await store.add(id, 'node', { cost: 1024 })
  const sims = []
  for (let i = 0; i < simNodes; i++) {
    const id = `sim-${String(i).padStart(2, '0')}`
    sims.push({ id, password: await store.add(id, 'node', { cost: 1024 }) })
  }
  let modelBytes
  if (llm) {
    const model = join(stateDir, 'tiny.gguf')
    modelBytes = (await makeTinyGguf(model, 7)).bytes
    env = { LLM_MODEL: model, LLM_MAX_TOKENS: '40', ...env }
  }
  const t0 = Date.now()
  const hub = await startHub({ stateDir, env: { NODE_STALE_MS: '3000', ...env }, timeoutMs: 60_000 }) // waits for /readyz 200 (LLM loaded)
  return { hub, passwords, sims, stateDir, readyMs: Date.now() - t0, modelBytes }
}

function stageRows(recs, endFlag) {
  const by = { skill: recs.filter((r) => r.kind === 'skill'), llm: recs.filter((r) => r.kind === 'llm') }
  const rows = [['stage (ms)', 'skill n', 'p50', 'p95', 'max', 'llm n', 'p50', 'p95', 'max']]
  const add = (label, get) => {
    const cells = [label]
    for (const k of ['skill', 'llm']) {
      const v = by[k].map(get).filter((x) => num(x) !== undefined)
      cells.push(v.length, fmt(quantile(v, 0.5)), fmt(quantile(v, 0.95)), fmt(quantile(v, 1)))
    }
    rows.push(cells)
  }
  add(endFlag ? 'end-frame transit node->hub eos' : 'VAD tail: speech end -> hub eos', (r) => r.eosDelayMs)
  add('ASR final (eos ->)', (r) => r.hub?.asrMs)
  add('LLM first token (eos ->)', (r) => r.hub?.llmFirstMs)
  add('first sentence (eos ->)', (r) => r.hub?.firstSentenceMs)
  add('TTS first chunk (duration)', (r) => r.hub?.ttsFirstChunkMs)
  add('hub TTFA: eos -> 1st frame sent', (r) => r.hub?.ttfaMs)
  add('transport: hub send -> client recv', (r) => r.transportOutMs)
  add(endFlag ? 'CLIENT TTFA: end frame sent -> 1st frame' : 'CLIENT TTFA: speech end -> 1st frame', (r) => r.clientTtfaMs)
  add('  (check) start-frame transit', (r) => r.startTransitMs)
  add('reply audio (ms)', (r) => r.replyAudioS * 1000)
  add('reply text (chars)', (r) => r.reply?.length)
  add('turn total (hub, ms)', (r) => r.hub?.totalMs)
  return rows
}

function summarize(recs) {
  const out = {}
  for (const k of ['skill', 'llm']) {
    const v = recs.filter((r) => r.kind === k)
    const q = (get) => ({ p50: r1(quantile(v.map(get), 0.5)), p95: r1(quantile(v.map(get), 0.95)) })
    out[k] = { n: v.length, clientTtfa: q((r) => r.clientTtfaMs), hubTtfa: q((r) => r.hub?.ttfaMs), eosDelay: q((r) => r.eosDelayMs), asr: q((r) => r.hub?.asrMs),
      llmFirst: q((r) => r.hub?.llmFirstMs), firstSentence: q((r) => r.hub?.firstSentenceMs), ttsFirstChunk: q((r) => r.hub?.ttsFirstChunkMs), transport: q((r) => r.transportOutMs) }
  }
  return out
}

function turnProblems(recs) {
  const canned = /unavailable|didn't catch/i // the LLM failed / ASR heard nothing, though the turn is logged ok
  return recs.filter((r) => r.timedOut || r.error || r.outcome !== 'ok' || r.kind !== r.expect || r.seqGaps || (r.frames === 0) || canned.test(r.reply ?? ''))
    .map((r) => `turn ${r.turnId} (${r.node}, "${r.utterance}", ${r.endFlag ? 'end flag' : 'hub VAD'}): kind=${r.kind} expected=${r.expect} outcome=${r.outcome ?? '-'}${r.timedOut ? ' TIMED OUT' : ''}${r.error ? ` error=${r.error}` : ''} transcript=${JSON.stringify(r.transcript)} reply=${JSON.stringify(r.reply)?.slice(0, 80)} frames=${r.frames}${r.seqGaps ? ` seqGaps=${r.seqGaps}` : ''}`)
}

/** Metric families of interest from the hub's /metrics, as "name{labels} value" lines. */
async function hubCounters(hub, names) {
  const text = (await hub.http('/metrics')).body
  return String(text).split('\n').filter((l) => names.some((n) => l.startsWith(n)) && !l.startsWith('#'))
}

function logProblems(hub) {
  const lines = hubLog(hub).filter((l) => l.level >= 40)
  const counts = new Map()
  for (const l of lines) {
    const key = `${l.level >= 50 ? 'ERROR' : 'WARN'} ${l.msg}${l.reason ? ` reason=${l.reason}` : ''}${l.engine ? ` engine=${l.engine}` : ''}${l.err?.message ? ` err=${String(l.err.message).slice(0, 120)}` : typeof l.err === 'string' ? ` err=${l.err.slice(0, 120)}` : ''}`
    counts.set(key, (counts.get(key) ?? 0) + 1)
  }
  const nonJson = hub.out.text.split('\n').filter((l) => l.trim() && !l.startsWith('{')).slice(0, 5)
  return { counts: [...counts].map(([k, n]) => `${n}x ${k}`), nonJson }
}

export async function main() {
  const started = Date.now()
  const nSkill = envInt('BENCH_TURNS', 30)
  const nLlm = envInt('BENCH_LLM_TURNS', 10)
  const eosScale = process.env.BENCH_EOS_TURNS === undefined ? 1 : envInt('BENCH_EOS_TURNS', nSkill) / Math.max(1, nSkill)
  const bargeReps = envInt('BENCH_BARGE_REPS', 12)
  const hbNodes = envInt('BENCH_HB_NODES', 20)
  const hbHz = envInt('BENCH_HB_HZ', 10)
  const hbSeconds = envInt('BENCH_HB_SECONDS', 10)
  const vadEndMs = envInt('VAD_END_SILENCE_MS', 500)
  const verbose = process.env.BENCH_VERBOSE === '1'
  // BENCH_HUB_<SETTING>=v is passed to hub A as <SETTING>=v (e.g. BENCH_HUB_LLM_MAX_THREADS=1).
  const extraHubEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('BENCH_HUB_')).map(([k, v]) => [k.slice('BENCH_HUB_'.length), v]))
  const m = machine()
  const summary = { bench: 'pipeline', machine: m, goals: { skillTtfaP95Ms: 800, bargeInP95Ms: 100, heartbeatP99Ratio: 2 } }
  const problems = []
  const dirs = []
  let worker

  console.log(`machine: ${m.cpu} | nproc ${m.nproc} | ${m.memGb} GiB | node ${m.node} | linux ${m.kernel} | load avg at start ${loadavg().map((x) => x.toFixed(2)).join(' ')}`)
  if (Object.keys(extraHubEnv).length) console.log(`extra hub A settings: ${JSON.stringify(extraHubEnv)}`)
  console.log(`settings: ${nSkill} skill + ${nLlm} LLM turns per TTFA mode (end-flag mode x${eosScale}), VAD_END_SILENCE_MS=${vadEndMs}, barge-in reps ${bargeReps}, heartbeats ${hbNodes} nodes x ${hbHz} Hz x ${hbSeconds} s`)

  try {
    // ---- utterances, synthesized once
    const t0 = Date.now()
    const utterances = []
    for (const [list, kind] of [[SKILL_UTTERANCES, 'skill'], [LLM_UTTERANCES, 'llm']]) {
      for (const text of list) {
        const s = await speech(text)
        utterances.push({ text, kind, speech: s, pcmVad: withPad(s, 700), pcmEos: withPad(s, 60) })
      }
    }
    const bargeUtt = utterances.find((u) => u.text === BARGE_UTTERANCE)
    console.log(`synthesized ${utterances.length} utterances in ${Date.now() - t0} ms (speech ${fmt(Math.min(...utterances.map((u) => u.speech.length / 16)))}-${fmt(Math.max(...utterances.map((u) => u.speech.length / 16)))} ms; +700 ms silence for hub-VAD turns, +60 ms for end-flag turns)`)

    /** Sequence of turns: skill utterances cycled, one LLM turn after every `every` skill turns. */
    const plan = (ns, nl) => {
      const skills = utterances.filter((u) => u.kind === 'skill')
      const llms = utterances.filter((u) => u.kind === 'llm')
      const seq = []
      const every = nl ? Math.max(1, Math.floor(ns / nl)) : Infinity
      let s = 0, l = 0
      while (s < ns || l < nl) {
        if (s < ns) seq.push(skills[s++ % skills.length])
        if (l < nl && (s % every === 0 || s >= ns)) seq.push(llms[l++ % llms.length])
      }
      return seq
    }

    // ---- hub A: pipeline + tiny LLM (+ credentials for the simulated heartbeat nodes)
    const A = await setupHub({ env: { ASR_GRAMMAR_EXTRA: EXTRA, VAD_END_SILENCE_MS: String(vadEndMs), ...extraHubEnv }, simNodes: hbNodes })
    dirs.push(A.stateDir)
    const hub = A.hub
    const ready = hubLog(hub).find((l) => l.msg === 'pipeline ready')
    console.log(`hub A ready (/readyz 200, LLM loaded) in ${A.readyMs} ms; tiny GGUF ${Math.round(A.modelBytes / 1024)} KB; engines: asr ${ready?.asr?.join(',')} tts ${ready?.tts?.join(',')} llm ${ready?.llm} vad ${ready?.vad}`)
    await sleep(2000)
    const idleRss = { ownMb: rssKb(hub.proc.pid) / 1024, treeMb: processTree(hub.proc.pid).reduce((a, p) => a + (rssKb(p) || 0), 0) / 1024 }
    const kitchen = await Mirror.connect(hub.mqttUrl, 'kitchen', A.passwords.kitchen)

    // warm-up: one turn of each kind, not counted (first pocketsphinx / espeak / llama runs)
    for (const u of [utterances[0], utterances.find((x) => x.kind === 'llm')]) await runTurn(hub, kitchen, u, { endFlag: false })

    // ---- 1. TTFA
    const rssTurns = rssSampler(hub.proc.pid)
    const modes = [{ endFlag: false, ns: nSkill, nl: nLlm }, { endFlag: true, ns: Math.round(nSkill * eosScale), nl: Math.round(nLlm * eosScale) }]
    const results = {}
    for (const mode of modes) {
      if (!mode.ns && !mode.nl) continue
      const label = mode.endFlag ? 'endFlag' : 'hubVad'
      const recs = []
      const tm = Date.now()
      for (const u of plan(mode.ns, mode.nl)) {
        const r = await runTurn(hub, kitchen, u, { endFlag: mode.endFlag, timeoutMs: 30_000 })
        recs.push(r)
        if (verbose) console.log(`  turn ${r.turnId} ${label} ${r.kind}/${r.outcome} "${r.utterance}" client TTFA ${fmt(r.clientTtfaMs)} ms; hub ${JSON.stringify(r.hub)}`)
      }
      results[label] = recs
      console.log(`\n== TTFA (${mode.endFlag ? 'b' : 'a'}), ${mode.endFlag ? "turn ended by the node's end flag (eos = end frame sent; excludes any VAD tail)" : `turn ended by the hub's VAD (no end flag; client TTFA includes the ${vadEndMs} ms VAD tail)`} — ${recs.length} turns in ${((Date.now() - tm) / 1000).toFixed(0)} s, grouped by the kind the hub logged`)
      table(stageRows(recs, mode.endFlag))
      problems.push(...turnProblems(recs))
    }
    const turnRss = rssTurns.stop()
    const sA = results.hubVad ? summarize(results.hubVad) : undefined
    const sB = results.endFlag ? summarize(results.endFlag) : undefined
    summary.ttfa = { hubVad: sA, endFlag: sB, vadEndSilenceMs: vadEndMs }
    console.log(`\ngoal: skill-turn TTFA p95 <= 800 ms on CPU. measured skill p95: client, hub VAD (incl. VAD tail) ${fmt(sA?.skill.clientTtfa.p95)} ms | hub eos->1st frame, hub VAD ${fmt(sA?.skill.hubTtfa.p95)} ms | client, end flag ${fmt(sB?.skill.clientTtfa.p95)} ms`)

    // ---- 3. heartbeat delay, idle vs. two turn loops; 4. RSS during those loops
    worker = startHeartbeatWorker()
    await worker.ready
    await worker.call({ type: 'connect', url: hub.mqttUrl, nodes: A.sims }, 'connected')
    await waitFor(async () => (await hub.http('/api/nodes')).body.nodes.filter((n) => n.id.startsWith('sim-')).length >= hbNodes, { timeoutMs: 10_000, what: 'sim nodes in the registry' }).catch(() => {})
    const hbWindow = async () => {
      await hub.http('/api/stats/heartbeats', { method: 'DELETE' })
      await worker.call({ type: 'start', hz: hbHz }, 'started')
      await sleep(hbSeconds * 1000)
      const st = await worker.call({ type: 'stop' }, 'stopped')
      await sleep(300) // the last ones in flight
      return { ...(await hub.http('/api/stats/heartbeats')).body, gen: st.stats }
    }
    const hbIdle = await hbWindow()
    const [nodeA, nodeB] = [await Mirror.connect(hub.mqttUrl, 'a', A.passwords.a), await Mirror.connect(hub.mqttUrl, 'b', A.passwords.b)]
    let looping = true
    const loopRecs = []
    const loop = async (node, kind) => {
      const list = utterances.filter((u) => u.kind === kind)
      for (let i = 0; looping && i < 1000; i++) loopRecs.push(await runTurn(hub, node, list[i % list.length], { endFlag: false, timeoutMs: 30_000 }))
    }
    const rssLoad = rssSampler(hub.proc.pid)
    const loops = [loop(nodeA, 'skill'), sleep(150).then(() => loop(nodeB, 'llm'))]
    await sleep(1500) // both loops speaking
    const hbLoad = await hbWindow()
    looping = false
    await Promise.all(loops)
    const loadRss = rssLoad.stop()
    problems.push(...turnProblems(loopRecs))
    await worker.kill()
    const ratio = hbLoad.p99Ms / hbIdle.p99Ms
    console.log(`\n== heartbeat delay (node ts -> hub registry update), ${hbNodes} simulated nodes x ${hbHz} Hz for ${hbSeconds} s, separate process`)
    table([
      ['window', 'samples', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'published', 'skipped'],
      ['idle', hbIdle.samples, fmt(hbIdle.p50Ms), fmt(hbIdle.p95Ms), fmt(hbIdle.p99Ms), fmt(hbIdle.maxMs), hbIdle.gen.published, hbIdle.gen.skipped],
      [`2 turn loops (${loopRecs.length} turns)`, hbLoad.samples, fmt(hbLoad.p50Ms), fmt(hbLoad.p95Ms), fmt(hbLoad.p99Ms), fmt(hbLoad.maxMs), hbLoad.gen.published - hbIdle.gen.published, hbLoad.gen.skipped - hbIdle.gen.skipped],
    ])
    const loopSkill = loopRecs.filter((r) => r.kind === 'skill'), loopLlm = loopRecs.filter((r) => r.kind === 'llm')
    console.log(`p99 ratio loaded/idle: ${fmt(ratio, 2)}x (goal <= 2x; p99 ${fmt(hbIdle.p99Ms)} -> ${fmt(hbLoad.p99Ms)} ms). turns during the loaded window: ${loopSkill.length} skill (hub TTFA p50 ${fmt(quantile(loopSkill.map((r) => r.hub?.ttfaMs), 0.5))} ms), ${loopLlm.length} LLM (hub TTFA p50 ${fmt(quantile(loopLlm.map((r) => r.hub?.ttfaMs), 0.5))} ms), running 2 at a time`)
    summary.heartbeat = { nodes: hbNodes, hz: hbHz, seconds: hbSeconds, idle: { samples: hbIdle.samples, p50Ms: hbIdle.p50Ms, p95Ms: hbIdle.p95Ms, p99Ms: hbIdle.p99Ms, maxMs: hbIdle.maxMs },
      loaded: { samples: hbLoad.samples, p50Ms: hbLoad.p50Ms, p95Ms: hbLoad.p95Ms, p99Ms: hbLoad.p99Ms, maxMs: hbLoad.maxMs, turns: loopRecs.length }, p99Ratio: r1(ratio) }

    console.log('\n== hub RSS (MB; "+children" adds pocketsphinx / espeak-ng / sox children alive at the sample, every 250 ms)')
    table([
      ['phase', 'hub', '+children'],
      ['idle, pipeline + LLM loaded', fmt(idleRss.ownMb, 1), fmt(idleRss.treeMb, 1)],
      ['max during TTFA turn loop (1 node)', fmt(turnRss.maxMb, 1), fmt(turnRss.maxTreeMb, 1)],
      ['max during 2 turn loops + heartbeats', fmt(loadRss.maxMb, 1), fmt(loadRss.maxTreeMb, 1)],
    ])
    summary.rssMb = { idle: r1(idleRss.ownMb), idleTree: r1(idleRss.treeMb), maxTurnLoop: r1(turnRss.maxMb), maxTurnLoopTree: r1(turnRss.maxTreeMb), maxLoaded: r1(loadRss.maxMb), maxLoadedTree: r1(loadRss.maxTreeMb) }

    const countersA = await hubCounters(hub, ['mirrormesh_audio_frames_dropped_total', 'mirrormesh_audio_frames_lost_total', 'mirrormesh_turns_total', 'mirrormesh_fallback_total'])
    const logA = logProblems(hub)
    kitchen.client.end(true); nodeA.client.end(true); nodeB.client.end(true)
    await killAll()

    // ---- 2. barge-in, on hub B with slow espeak (a reply long enough to interrupt)
    const B = await setupHub({ env: { ESPEAK_SPEED_WPM: '110', VAD_END_SILENCE_MS: String(vadEndMs) }, llm: false })
    dirs.push(B.stateDir)
    const hubB = B.hub
    const hall = await Mirror.connect(hubB.mqttUrl, 'hall', B.passwords.hall)
    await runTurn(hubB, hall, bargeUtt, { endFlag: false }) // warm-up, played in full
    const barge = []
    for (let i = 0; i < bargeReps; i++) {
      const t = hall.turn(nextTurnId++)
      const saying = hall.say(bargeUtt.pcmVad, { speechSamples: bargeUtt.speech.length, turnId: t.id })
      const first = await hall.until(() => t.firstFrameAt, 15_000)
      if (!first) { barge.push({ turnId: t.id, error: 'no reply frame' }); await saying; continue }
      await sleep(200)
      const sentAt = hall.control(t, AudioFlags.bargeIn)
      const cancelled = await hall.until(() => t.cancelAt || t.endAt, 3000)
      await saying
      await sleep(400) // anything after the cancel?
      const log = await waitFor(() => turnLog(hubB, 'hall', t.id), { timeoutMs: 3000, intervalMs: 20, what: 'hub log' }).catch(() => undefined)
      barge.push({ turnId: t.id, latencyMs: t.cancelAt !== undefined ? t.cancelAt - sentAt : undefined, ended: t.endAt !== undefined && t.cancelAt === undefined, timedOut: !cancelled,
        framesAfterCancel: t.framesAfterCancel, audioS: t.samples / 16000, outcome: log?.outcome })
      await sleep(100)
    }
    const lat = barge.map((b) => b.latencyMs).filter((x) => x !== undefined)
    const metricsB = String((await hubB.http('/metrics')).body)
    const hSum = metricValue(metricsB, 'mirrormesh_barge_in_seconds_sum'), hCount = metricValue(metricsB, 'mirrormesh_barge_in_seconds_count')
    const buckets = [...metricsB.matchAll(/^mirrormesh_barge_in_seconds_bucket\{le="([^"]+)"\} (\S+)/gm)].map((x) => ({ le: x[1], n: Number(x[2]) }))
    const hubP95Bucket = buckets.find((b) => b.n >= 0.95 * hCount)?.le
    console.log(`\n== barge-in: "${BARGE_UTTERANCE}" at ESPEAK_SPEED_WPM=110 (hub B, no LLM), bargeIn frame 200 ms after the first reply frame, ${bargeReps} reps`)
    table([
      ['measure', 'n', 'p50 ms', 'p95 ms', 'max ms', 'mean ms'],
      ['client: bargeIn sent -> cancel frame received', lat.length, fmt(quantile(lat, 0.5), 1), fmt(quantile(lat, 0.95), 1), fmt(quantile(lat, 1), 1), fmt(lat.reduce((a, b) => a + b, 0) / lat.length, 1)],
      ['hub: mirrormesh_barge_in_seconds (recv -> last frame)', hCount, '-', hubP95Bucket ? `<= ${Number(hubP95Bucket) * 1000}` : '-', '-', fmt((hSum / hCount) * 1000, 1)],
    ])
    const played = barge.map((b) => b.audioS).filter((x) => x !== undefined)
    console.log(`goal: p95 <= 100 ms. audio sent before the cancel: p50 ${fmt(quantile(played, 0.5), 2)} s; frames after the cancel: ${barge.reduce((a, b) => a + (b.framesAfterCancel ?? 0), 0)}; reps without a cancel frame: ${barge.filter((b) => b.latencyMs === undefined).length}; hub outcomes: ${JSON.stringify(barge.reduce((a, b) => { a[b.outcome ?? 'no log'] = (a[b.outcome ?? 'no log'] ?? 0) + 1; return a }, {}))}`)
    summary.bargeIn = { reps: bargeReps, client: { n: lat.length, p50Ms: r1(quantile(lat, 0.5)), p95Ms: r1(quantile(lat, 0.95)), maxMs: r1(quantile(lat, 1)) },
      hub: { count: hCount, meanMs: r1((hSum / hCount) * 1000), p95BucketLeMs: hubP95Bucket ? Number(hubP95Bucket) * 1000 : null } }
    for (const b of barge) if (b.latencyMs === undefined || b.framesAfterCancel || b.ended) problems.push(`barge-in turn ${b.turnId}: ${JSON.stringify(b)}`)
    const countersB = await hubCounters(hubB, ['mirrormesh_audio_frames_dropped_total', 'mirrormesh_audio_frames_lost_total', 'mirrormesh_turns_total'])
    const logB = logProblems(hubB)
    hall.client.end(true)

    // ---- what the hubs said
    console.log('\n== hub counters / log')
    console.log(`hub A: ${countersA.join(' | ')}`)
    console.log(`hub B: ${countersB.join(' | ')}`)
    console.log(`hub A warn/error lines: ${logA.counts.length ? logA.counts.join(' ; ') : 'none'}${logA.nonJson.length ? ` ; non-JSON output: ${JSON.stringify(logA.nonJson)}` : ''}`)
    console.log(`hub B warn/error lines: ${logB.counts.length ? logB.counts.join(' ; ') : 'none'}${logB.nonJson.length ? ` ; non-JSON output: ${JSON.stringify(logB.nonJson)}` : ''}`)
    const llmEx = [...(results.hubVad ?? []), ...(results.endFlag ?? [])].find((r) => r.kind === 'llm')
    if (llmEx) console.log(`example LLM turn: transcript ${JSON.stringify(llmEx.transcript)} -> reply ${JSON.stringify(llmEx.reply)}`)
    console.log(`turn problems: ${problems.length ? '\n  ' + problems.join('\n  ') : 'none'}`)
    summary.turnProblems = problems.length
    summary.seconds = Math.round((Date.now() - started) / 1000)
    summary.loadAvgEnd = loadavg().map((x) => r1(x))
    console.log(`load avg at end ${loadavg().map((x) => x.toFixed(2)).join(' ')} (other processes on this machine share its ${m.nproc} CPUs)`)
    console.log(`\nSUMMARY ${JSON.stringify(summary)}`)
    return summary
  } finally {
    await worker?.kill()
    await killAll()
    for (const d of dirs) await removeDir(d).catch(() => {})
  }
}

export default main

// ---------------------------------------------------------------- entry points

// Run through `npm run bench -- pipeline` (run.mjs does the cleanup); the script forks itself
// with --heartbeat-worker for the simulated heartbeat load.
if (process.argv[1] && resolve(process.argv[1]) === here && process.argv.includes('--heartbeat-worker')) {
  void heartbeatWorker()
}
