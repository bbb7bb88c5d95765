// `bench offline`: the node's offline emergency mode on this machine, end to end with real processes
// (hub with the embedded broker building the reply bundle, node agent with its microphone on stdin and
// its speaker recorded by fileSink, pocketsphinx as the offline recognizer).
//   1. Offline reply latency, agent pinned to ONE core (taskset -c 1; pocketsphinx, its child, inherits
//      the pin), hub killed. The bench is the microphone: 20 ms PCM frames written to the agent's stdin
//      in real time, silence between utterances.
//        speech end    = wall time the frame holding the last speech sample was written to stdin
//                        (espeak's own trailing near-silence trimmed; the silence after it is not speech)
//        utterance end = when the agent ended the utterance (Listener 'utterance-end' Date.now()): the
//                        VAD's end-of-speech decision, or the offline early endpoint (a whole, confident
//                        grammar phrase and OFFLINE_ENDPOINT_SILENCE_MS of quiet; offline/recognizer.ts).
//                        `at` of the agent's "offline turn answered" line (older agents: the journal's `at`);
//                        `endpoint` there says which ended it ('early' | 'vad').
//        first sample  = fileSink record's firstSampleAt for the turn (matched by turnId from the
//                        agent's "offline turn answered" log line)
//      (a) first sample - speech end (includes the VAD tail VAD_END_SILENCE_MS unless the turn ended early),
//      (b) first sample - utterance end. Both also split by how the turn ended.
//   2. Recognition accuracy: synthesized in-grammar and out-of-grammar utterances, several espeak voices and
//      speeds, judged from the agent's "offline turn answered" line (matched, pii.heard).
//   3. Hub SIGKILL -> node offline, hub spawn -> node online (agent "node state changed" log times).
//   4. node-agent VmRSS: AUDIO_SOURCE=none (no models) and AUDIO_SOURCE=stdin (VAD + recognizer + bundle).
// Figures only: nothing here fails on timing.
//
// Run: `node test/bench/offline.mjs` (or import and call main()). Settings (env):
//   BENCH_N=20 latency utterances   BENCH_ACC=50 accuracy utterances (70 % in grammar)   BENCH_FAIL_REPS=5
//   BENCH_RSS_SECONDS=10 settle time before the RSS reading   VAD_END_SILENCE_MS=400   BENCH_VERBOSE=1 prints every turn
//   OFFLINE_ENDPOINT_SILENCE_MS (agent default 100; 0 = no early endpoint, the VAD ends every turn)
// 0 skips a part (BENCH_N=0 BENCH_ACC=0 ...).
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { loadavg, totalmem } from 'node:os'
import { join } from 'node:path'
import { killAll, sleep, startAgent, tempDir, waitFor } from '../support/dist/harness.js'
import { createMesh } from '../support/dist/mesh.js'
import { synth } from '../support/dist/voice.js'
import { fmt, logLines, memOf, printMachine, quantile, systemCpu, table, trackDir } from './lib.mjs'

const FRAME = 320 // 20 ms at 16 kHz
const AGENT_CPU = '1'
const GOAL_MS = 150
const LATENCY_PHRASES = ['what time is it', 'turn on the kitchen light', 'turn off the hall light', 'are you there',
  'what day is it', 'set a timer for five minutes', 'volume up', 'what is the weather like']
// In the bundle's grammar with ROOMS=kitchen|hall. 'stop' first: it also cancels the 5-minute timers the
// latency part set, so their "timer done" does not play in the middle of the accuracy part.
const IN_GRAMMAR = ['stop', 'what time is it', 'what is the time', 'tell me the time', 'what is the date', 'what day is it',
  'what day is it today', 'what is the date today', 'turn on the kitchen light', 'turn off the kitchen light',
  'turn on the hall light', 'turn off the hall lights', 'switch on the kitchen lights', 'switch off the hall light',
  'turn the kitchen light off', 'turn the hall lights on', 'set a timer for five minutes', 'set a timer for ten minutes',
  'set a fifteen minute timer', 'set a timer for twenty minutes', 'volume up', 'volume down', 'make it louder',
  'turn it quieter', 'set the volume to seven', 'are you there', 'hello mirror', 'can you hear me', 'what is the weather',
  'what is the weather like', 'how is the weather', 'what is the weather like in the kitchen', 'cancel', 'never mind', 'be quiet']
// Near misses marked (nm): close to a grammar phrase, still not one.
const OUT_OF_GRAMMAR = ['tell me about the roman empire', 'play some music', 'what is the capital of france', 'order a pizza',
  'how tall is mount everest', 'call my mother', 'what is two plus two', 'remind me to buy milk',
  'who won the football game last night', 'open the garage door', 'read me the news', 'how do i make pancakes',
  'what is the weather like tomorrow', 'turn on the bedroom light', 'set an alarm for seven in the morning']
const NEAR_MISS = new Set(['what is the weather like tomorrow', 'turn on the bedroom light', 'open the garage door'])
const VOICES = ['en-us', 'en', 'en+f3', 'en-us+m3']
const SPEEDS = [140, 150, 160, 170, 180]

const envNum = (name, def) => {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return def
  const v = Number(raw)
  return Number.isFinite(v) && v >= 0 ? Math.floor(v) : def
}
const verbose = process.env.BENCH_VERBOSE === '1'
const stats = (v) => {
  const x = v.filter((n) => typeof n === 'number' && Number.isFinite(n))
  return { n: x.length, p50: quantile(x, 0.5), p95: quantile(x, 0.95), min: x.length ? Math.min(...x) : NaN, max: x.length ? Math.max(...x) : NaN }
}
const r0 = (v) => (typeof v === 'number' && Number.isFinite(v) ? Math.round(v) : null)
const rs = (s) => ({ n: s.n, p50: r0(s.p50), p95: r0(s.p95), min: r0(s.min), max: r0(s.max) })
const normalize = (s) => s.toLowerCase().replace(/[^a-z']+/g, ' ').trim().replace(/\s+/g, ' ')

/**
 * espeak speech with its own trailing near-silence cut off and rounded up to whole 20 ms frames.
 * The last 10 ms window whose RMS is within 40 dB of the loudest one ends the speech.
 */
async function speechPcm(text, voice, wpm) {
  const raw = await synth(text, { voice, wpm, padMs: 0 })
  const W = 160
  const rmsOf = (i) => { let s = 0; for (let k = i; k < Math.min(raw.length, i + W); k++) s += raw[k] * raw[k]; return Math.sqrt(s / W) }
  let peak = 0
  for (let i = 0; i < raw.length; i += W) peak = Math.max(peak, rmsOf(i))
  const thr = Math.max(peak / 100, 16)
  let last = 0
  for (let i = 0; i < raw.length; i += W) if (rmsOf(i) >= thr) last = Math.min(raw.length, i + W)
  const len = Math.ceil(last / FRAME) * FRAME
  const pcm = new Int16Array(len)
  pcm.set(raw.subarray(0, Math.min(len, raw.length)))
  return { pcm, speechMs: (len / 16000) * 1000, trimmedMs: ((raw.length - Math.min(len, raw.length)) / 16000) * 1000 }
}

/** A microphone on the agent's stdin: 20 ms frames at real-time pace, silence unless an utterance is queued. */
class Mic {
  constructor(stream) {
    this.stream = stream
    this.queue = []
    this.running = false
    this.silence = new Int16Array(FRAME)
    this.late = 0 // frames written more than 20 ms after their due time
  }

  start() {
    this.running = true
    this.stream.on('error', () => {})
    this.done = (async () => {
      const t0 = performance.now()
      let n = 0
      while (this.running) {
        const item = this.queue[0]
        let frame = this.silence
        if (item) {
          if (item.off === 0) item.startAt = Date.now()
          frame = item.pcm.subarray(item.off, item.off + FRAME)
          item.off += FRAME
        }
        this.stream.write(Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength))
        if (item && item.off >= item.pcm.length) {
          this.queue.shift()
          item.resolve({ startAt: item.startAt, speechEndAt: Date.now() })
        }
        n++
        const now = performance.now()
        const due = t0 + n * 20
        if (now - due > 20) this.late++
        if (due > now) await sleep(due - now)
      }
    })()
  }

  /** Queue speech (whole frames); resolves when its last frame has been written. */
  say(pcm) {
    return new Promise((resolve) => this.queue.push({ pcm, off: 0, resolve }))
  }

  async stop() {
    this.running = false
    await this.done
  }
}

/** The node under test: reads of its log, its speaker record and its journal. */
function probe(agent, dir) {
  const played = join(dir, 'played.jsonl')
  const journalFile = join(dir, 'offline', 'journal', 'offline-journal.jsonl')
  const seen = new Set()
  const readJsonl = (f) => (existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean).flatMap((l) => { try { return [JSON.parse(l)] } catch { return [] } }) : [])
  return {
    played,
    answered: () => logLines(agent.out.text).filter((l) => l.msg === 'offline turn answered'),
    /** "offline turn answered" lines not handed out before. */
    fresh() {
      const out = this.answered().filter((l) => !seen.has(l.turnId))
      for (const l of out) seen.add(l.turnId)
      return out
    },
    peekFresh() { return this.answered().filter((l) => !seen.has(l.turnId)) },
    records: () => readJsonl(played),
    journal: () => readJsonl(journalFile),
  }
}

/**
 * Speak one utterance and wait for the node's answer and its playback to finish; then a quiet gap.
 * Returns timings for the first turn the utterance produced.
 */
async function utter(mic, node, u, { gapMs = 600 } = {}) {
  const stray = node.fresh().length // turns that appeared between utterances (should be none)
  const journalBefore = node.journal().length
  const { startAt, speechEndAt } = await mic.say(u.pcm)
  const first = await waitFor(() => node.peekFresh()[0], { timeoutMs: 15_000, intervalMs: 10, what: 'offline turn answered' }).catch(() => null)
  if (!first) {
    await sleep(gapMs)
    return { ...u, pcm: undefined, missed: true, stray, startAt, speechEndAt, turns: node.fresh().length }
  }
  let rec = null
  if (first.pii?.replied) {
    rec = await waitFor(() => node.records().find((r) => r.turnId === first.turnId), { timeoutMs: 30_000, intervalMs: 20, what: `speaker record of turn ${first.turnId}` }).catch(() => null)
  }
  await sleep(gapMs)
  const lines = node.fresh()
  const jEntries = node.journal().slice(journalBefore)
  const j = jEntries[lines.indexOf(lines.find((l) => l.turnId === first.turnId))] ?? jEntries[0]
  // Another reply (a "timer done", turnId 0) playing when ours was queued would delay it.
  const overlap = node.records().some((r) => r.turnId === 0 && rec && r.firstSampleAt <= rec.firstSampleAt && r.firstSampleAt + (r.samples / 16) >= speechEndAt)
  const vadEndAt = first.at ?? j?.at
  return {
    ...u, pcm: undefined, missed: false, stray, startAt, speechEndAt, turns: lines.length, endpoint: first.endpoint ?? 'vad',
    turnId: first.turnId, matched: first.matched, confident: first.confident, reason: first.reason, heard: first.pii?.heard ?? '', replied: first.pii?.replied ?? '',
    recognitionMs: first.recognitionMs, vadEndAt, firstSampleAt: rec?.firstSampleAt, journalReplyOk: j ? j.reply === first.pii?.replied : false, overlap,
    a: rec ? rec.firstSampleAt - speechEndAt : undefined,
    b: rec && vadEndAt ? rec.firstSampleAt - vadEndAt : undefined,
    vadTail: vadEndAt ? vadEndAt - speechEndAt : undefined,
    answerLogAfterVad: vadEndAt ? first.time - vadEndAt : undefined,
  }
}

function stateLine(agent, state, t0) {
  return logLines(agent.out.text).find((l) => l.msg === 'node state changed' && l.to === state && l.time >= t0)
}
async function stateReached(agent, state, t0, timeoutMs) {
  const line = await waitFor(() => stateLine(agent, state, t0), { timeoutMs, intervalMs: 10, what: `agent log "node state changed" to ${state}` })
  return line.time - t0
}

/** SIGTERM, then SIGKILL if the agent has not exited within 5 s; returns what happened. */
async function stopAgent(a) {
  const t0 = Date.now()
  a.kill('SIGTERM')
  const r = await Promise.race([a.exited.then(() => 'exited'), sleep(5000).then(() => 'timeout')])
  if (r === 'exited') return `exited ${Date.now() - t0} ms after SIGTERM`
  a.kill('SIGKILL')
  await a.exited
  return 'still running 5 s after SIGTERM: SIGKILLed'
}

function rssOf(pid) {
  const m = memOf(pid)
  return m ? { rssMb: m.rssMb, hwmMb: m.hwmMb, anonMb: m.anonMb, fileMb: m.fileMb } : null
}

/** Samples VmRSS once a second from `fromMs` after `t0` for `spanS` seconds; returns the reading at `fromMs` and the median. */
async function rssSettled(pid, t0, fromMs, spanS = 5) {
  const wait = t0 + fromMs - Date.now()
  if (wait > 0) await sleep(wait)
  const at10 = rssOf(pid)
  const v = [at10?.rssMb]
  for (let i = 0; i < spanS; i++) { await sleep(1000); v.push(rssOf(pid)?.rssMb) }
  const end = rssOf(pid)
  return { atMb: at10?.rssMb, medianMb: quantile(v.filter(Number.isFinite), 0.5), maxMb: Math.max(...v.filter(Number.isFinite)), hwmMb: end?.hwmMb, anonMb: end?.anonMb, fileMb: end?.fileMb }
}

export async function main() {
  const nLat = envNum('BENCH_N', 20)
  const nAcc = envNum('BENCH_ACC', 50)
  const failReps = envNum('BENCH_FAIL_REPS', 5)
  const rssSeconds = envNum('BENCH_RSS_SECONDS', 10)
  const vadMs = envNum('VAD_END_SILENCE_MS', 400)
  const endpointMs = process.env.OFFLINE_ENDPOINT_SILENCE_MS // unset: the agent's default
  const machine = printMachine()
  const mem = `${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')} at start`
  console.log(`${mem}; espeak-ng ${(spawnSync('espeak-ng', ['--version']).stdout?.toString() ?? '?').split(/\s+/)[3] ?? '?'}`)
  console.log(`offline: agent pinned to CPU ${AGENT_CPU} (taskset; its pocketsphinx children inherit it), hub unpinned; VAD_END_SILENCE_MS=${vadMs}; OFFLINE_ENDPOINT_SILENCE_MS=${endpointMs ?? '(agent default)'}; ` +
    `latency N=${nLat}, accuracy N=${nAcc}, failover reps=${failReps}`)
  const sys0 = systemCpu()
  const summary = { bench: 'offline', machine, vadEndSilenceMs: vadMs, endpointSilenceMs: endpointMs ?? null, agentCpu: AGENT_CPU }
  let mic

  try {
    const tHub = Date.now()
    const mesh = await createMesh('embedded', { hubEnv: { BUNDLE_ENABLED: 'true', ROOMS: 'kitchen|hall' } })
    trackDir(mesh.stateDir)
    const dir = trackDir(await tempDir('mm-offline-bench-'))
    const agent = await startAgent({
      nodeId: 'kitchen', mqttUrl: mesh.url, password: mesh.passwords.kitchen, stdin: true, cpuList: AGENT_CPU,
      env: { AUDIO_SOURCE: 'stdin', AUDIO_SINK: 'file', AUDIO_SINK_FILE: join(dir, 'played.jsonl'), MIRRORMESH_STATE_DIR: dir,
        HUB_HTTP_URL: `http://127.0.0.1:${mesh.hub.httpPort}`, VAD_END_SILENCE_MS: String(vadMs), LOG_PII: 'true',
        ...(endpointMs !== undefined ? { OFFLINE_ENDPOINT_SILENCE_MS: endpointMs } : {}) },
    })
    mic = new Mic(agent.proc.stdin)
    mic.start()
    const node = probe(agent, dir)
    const version = await waitFor(async () => (await agent.health()).offline?.bundleVersion, { timeoutMs: 180_000, intervalMs: 200, what: 'reply bundle synced to the node' })
    await agent.waitState('online', 30_000)
    const bundleS = (Date.now() - tHub) / 1000
    // The bundle's phrases (its grammar is written as a prefix tree once it is large: not a list to split).
    const manifest = JSON.parse(readFileSync(join(dir, 'offline', 'bundle', 'bundles', version, 'manifest.json'), 'utf8'))
    const grammar = new Set(manifest.replies.map((r) => r.phrase))
    const notInGrammar = [...new Set([...LATENCY_PHRASES, ...IN_GRAMMAR])].filter((p) => !grammar.has(p))
    const oogInGrammar = OUT_OF_GRAMMAR.filter((p) => grammar.has(p))
    console.log(`hub up, bundle ${version} synced and node online after ${bundleS.toFixed(1)} s; grammar: ${grammar.size} phrases` +
      `${notInGrammar.length ? `; NOT in grammar (counted anyway): ${notInGrammar.join(', ')}` : ''}${oogInGrammar.length ? `; out-of-grammar list items found IN grammar: ${oogInGrammar.join(', ')}` : ''}`)

    // Synthesize everything up front: espeak/sox must not compete with the agent during the turns.
    const latItems = []
    for (let i = 0; i < nLat; i++) {
      const text = LATENCY_PHRASES[i % LATENCY_PHRASES.length]
      latItems.push({ text, voice: 'en-us', wpm: 160, ...(await speechPcm(text, 'en-us', 160)) })
    }
    const accItems = []
    const nIn = Math.round(nAcc * 0.7)
    const plan = []
    for (let i = 0; i < nIn; i++) plan.push({ text: IN_GRAMMAR[i % IN_GRAMMAR.length], inGrammar: true })
    for (let i = 0; i < nAcc - nIn; i++) plan.push({ text: OUT_OF_GRAMMAR[i % OUT_OF_GRAMMAR.length], inGrammar: false })
    // Deterministic interleave (keep 'stop' first): out-of-grammar items spread evenly among the others.
    const ins = plan.filter((p) => p.inGrammar)
    const outs = plan.filter((p) => !p.inGrammar)
    const order = []
    for (let i = 0, o = 0; i < ins.length || o < outs.length; i++) {
      if (i < ins.length) order.push(ins[i])
      if (o < outs.length && (i + 1) * outs.length >= (o + 1) * ins.length) order.push(outs[o++])
      if (i >= ins.length && o < outs.length) order.push(outs[o++])
    }
    for (let i = 0; i < order.length; i++) {
      const voice = VOICES[i % VOICES.length]
      const wpm = SPEEDS[(i * 3 + Math.floor(i / 4)) % SPEEDS.length]
      accItems.push({ ...order[i], voice, wpm, ...(await speechPcm(order[i].text, voice, wpm)) })
    }
    const allSpeech = [...latItems, ...accItems]
    console.log(`synthesized ${allSpeech.length} utterances: speech ${fmt(Math.min(...allSpeech.map((x) => x.speechMs)), 0)}-${fmt(Math.max(...allSpeech.map((x) => x.speechMs)), 0)} ms; ` +
      `espeak trailing silence trimmed ${fmt(quantile(allSpeech.map((x) => x.trimmedMs), 0.5), 0)} ms (median)`)

    // Hub gone: the node must answer by itself.
    const killAt = Date.now()
    mesh.hub.kill('SIGKILL')
    const firstOffline = await stateReached(agent, 'offline', killAt, 15_000)
    await mesh.hub.exited
    const outageStart = killAt
    console.log(`hub SIGKILLed; node offline after ${firstOffline} ms`)
    await sleep(1500)

    // ---------------------------------------------------------------- 1. latency
    const lat = []
    if (nLat) {
      const sysL = systemCpu()
      for (let i = 0; i < latItems.length; i++) {
        const r = await utter(mic, node, latItems[i])
        lat.push(r)
        if (verbose) console.log(`lat ${i + 1}/${nLat} "${r.text}": a=${fmt(r.a, 0)} b=${fmt(r.b, 0)} tail=${fmt(r.vadTail, 0)} ${r.endpoint} rec=${fmt(r.recognitionMs, 0)} matched=${r.matched} heard="${r.heard}"${r.missed ? ' MISSED' : ''}`)
      }
      const busy = systemCpu(sysL)
      const ok = lat.filter((r) => !r.missed && r.a !== undefined)
      const A = stats(ok.map((r) => r.a))
      const B = stats(ok.map((r) => r.b))
      const T = stats(ok.map((r) => r.vadTail))
      const R = stats(ok.map((r) => r.recognitionMs))
      // Early turns log "answered" only after their resume window (the journal waits for it), so VAD-ended turns only.
      const L = stats(ok.filter((r) => r.endpoint !== 'early').map((r) => r.answerLogAfterVad))
      const SP = stats(ok.map((r) => r.speechMs))
      const okEarly = ok.filter((r) => r.endpoint === 'early')
      const okVad = ok.filter((r) => r.endpoint !== 'early')
      const AE = stats(okEarly.map((r) => r.a))
      const AV = stats(okVad.map((r) => r.a))
      const BE = stats(okEarly.map((r) => r.b))
      const BV = stats(okVad.map((r) => r.b))
      console.log(`\n1. offline reply latency, agent on ONE core (CPU ${AGENT_CPU}), hub killed, ${ok.length}/${nLat} turns answered with audio` +
        ` (${lat.filter((r) => r.missed).length} missed, ${lat.filter((r) => r.matched === false).length} unmatched, ${lat.filter((r) => r.turns > 1).length} split, ${lat.filter((r) => r.overlap).length} delayed by another reply); machine busy ${fmt(busy)} % (all cores)`)
      console.log(`   speech end = wall time the frame holding the last speech sample was written to the agent's stdin (espeak's trailing silence excluded);`)
      console.log(`   utterance end = the agent's end of the utterance: VAD end-of-speech decision, or early endpoint (a whole confident phrase + a short quiet);`)
      console.log(`   first sample = fileSink firstSampleAt. VAD_END_SILENCE_MS=${vadMs}; ${okEarly.length}/${ok.length} turns ended by the early endpoint, ${okVad.length} by the VAD`)
      table([['ms', 'n', 'p50', 'p95', 'min', 'max', `goal <= ${GOAL_MS} (p95)`],
        ['(a) first sample - speech end', A.n, fmt(A.p50, 0), fmt(A.p95, 0), fmt(A.min, 0), fmt(A.max, 0), A.p95 <= GOAL_MS ? 'met' : 'NOT met'],
        ['    (a) turns ended early', AE.n, fmt(AE.p50, 0), fmt(AE.p95, 0), fmt(AE.min, 0), fmt(AE.max, 0), ''],
        ['    (a) turns ended by the VAD', AV.n, fmt(AV.p50, 0), fmt(AV.p95, 0), fmt(AV.min, 0), fmt(AV.max, 0), ''],
        ['(b) first sample - utterance end', B.n, fmt(B.p50, 0), fmt(B.p95, 0), fmt(B.min, 0), fmt(B.max, 0), B.p95 <= GOAL_MS ? 'met' : 'NOT met'],
        ['    (b) turns ended early', BE.n, fmt(BE.p50, 0), fmt(BE.p95, 0), fmt(BE.min, 0), fmt(BE.max, 0), ''],
        ['    (b) turns ended by the VAD', BV.n, fmt(BV.p50, 0), fmt(BV.p95, 0), fmt(BV.min, 0), fmt(BV.max, 0), ''],
        ['    tail: utterance end - speech end', T.n, fmt(T.p50, 0), fmt(T.p95, 0), fmt(T.min, 0), fmt(T.max, 0), `(VAD: configured ${vadMs})`],
        ['    recognitionMs (agent log)', R.n, fmt(R.p50, 0), fmt(R.p95, 0), fmt(R.min, 0), fmt(R.max, 0), ''],
        ['    "answered" log time - utterance end (VAD-ended)', L.n, fmt(L.p50, 0), fmt(L.p95, 0), fmt(L.min, 0), fmt(L.max, 0), ''],
        ['    speech length', SP.n, fmt(SP.p50, 0), fmt(SP.p95, 0), fmt(SP.min, 0), fmt(SP.max, 0), '']])
      const byPhrase = LATENCY_PHRASES.map((p) => [p, stats(ok.filter((r) => r.text === p).map((r) => r.a)), stats(ok.filter((r) => r.text === p).map((r) => r.recognitionMs))]).filter(([, s]) => s.n)
      table([['per phrase (ms)', 'n', '(a) p50', '(a) max', 'recog p50', 'early'], ...byPhrase.map(([p, s, rc]) => [p, s.n, fmt(s.p50, 0), fmt(s.max, 0), fmt(rc.p50, 0), okEarly.filter((r) => r.text === p).length])])
      const notOk = lat.filter((r) => r.missed || !r.matched || r.heard !== r.text)
      for (const r of notOk) console.log(`   note: "${r.text}" -> ${r.missed ? 'no turn' : `heard "${r.heard}", matched=${r.matched}, reason=${r.reason ?? '-'}`}`)
      summary.latency = { n: nLat, answered: ok.length, early: okEarly.length, a: rs(A), b: rs(B), aEarly: rs(AE), aVad: rs(AV), bEarly: rs(BE), bVad: rs(BV), vadTail: rs(T), recognitionMs: rs(R), answeredLogAfterVad: rs(L), missed: lat.filter((r) => r.missed).length,
        wrongOrUnmatched: notOk.length, busyPct: r0(busy), micLateFrames: mic.late, goalP95Ms: GOAL_MS, goalA: A.p95 <= GOAL_MS, goalB: B.p95 <= GOAL_MS, all: ok.map((r) => [r0(r.a), r0(r.b), r.recognitionMs]) }
    }

    // ---------------------------------------------------------------- 2. accuracy
    const accAll = []
    if (nAcc) {
      const res = accAll
      for (let i = 0; i < accItems.length; i++) {
        const r = await utter(mic, node, accItems[i])
        res.push(r)
        if (verbose) console.log(`acc ${i + 1}/${nAcc} [${r.inGrammar ? 'in' : 'out'}] "${r.text}" ${r.voice}@${r.wpm}: heard "${r.heard ?? ''}" matched=${r.matched} reason=${r.reason ?? '-'} ${r.endpoint ?? ''}${r.missed ? ' MISSED' : ''}`)
      }
      const verdict = (r) => {
        if (r.missed) return 'missed'
        if (r.inGrammar) return !r.matched ? 'rejected' : normalize(r.heard) === r.text ? 'correct' : 'wrong'
        return r.matched ? 'wrong' : 'correct'
      }
      for (const r of res) r.verdict = verdict(r)
      const inR = res.filter((r) => r.inGrammar)
      const outR = res.filter((r) => !r.inGrammar)
      const count = (list, v) => list.filter((r) => r.verdict === v).length
      const correct = count(res, 'correct')
      console.log(`\n2. recognition accuracy, ${res.length} synthesized utterances (voices ${VOICES.join(', ')}; ${SPEEDS[0]}-${SPEEDS.at(-1)} wpm), agent on CPU ${AGENT_CPU}, hub killed`)
      table([['set', 'n', 'correct', 'wrong', 'rejected', 'no turn', 'accuracy'],
        ['in grammar (correct = heard the phrase, matched)', inR.length, count(inR, 'correct'), count(inR, 'wrong'), count(inR, 'rejected'), count(inR, 'missed'), `${fmt((100 * count(inR, 'correct')) / (inR.length || NaN))} %`],
        ['out of grammar (correct = matched=false)', outR.length, count(outR, 'correct'), count(outR, 'wrong'), '-', count(outR, 'missed'), `${fmt((100 * count(outR, 'correct')) / (outR.length || NaN))} %`],
        ['all', res.length, correct, count(res, 'wrong'), count(inR, 'rejected'), count(res, 'missed'), `${fmt((100 * correct) / (res.length || NaN))} %`]])
      const byVoice = VOICES.map((v) => { const l = inR.filter((r) => r.voice === v); return [v, l.length, count(l, 'correct'), count(l, 'wrong'), count(l, 'rejected')] })
      table([['in grammar by voice', 'n', 'correct', 'wrong', 'rejected'], ...byVoice])
      const reasons = {}
      for (const r of res.filter((x) => !x.missed && !x.matched)) reasons[r.reason ?? (r.confident ? 'confident, phrase has no reply' : '?')] = (reasons[r.reason ?? (r.confident ? 'confident, phrase has no reply' : '?')] ?? 0) + 1
      console.log(`   matched=false reasons: ${Object.entries(reasons).map(([k, v]) => `${k} ${v}`).join(', ') || '-'}`)
      for (const r of res.filter((x) => x.verdict !== 'correct')) {
        console.log(`   ${r.verdict.padEnd(8)} [${r.inGrammar ? 'in ' : 'out'}] "${r.text}"${NEAR_MISS.has(r.text) ? ' (near miss)' : ''} ${r.voice}@${r.wpm}: ` +
          `${r.missed ? 'no turn detected' : `heard "${r.heard}", matched=${r.matched}, confident=${r.confident}, reason=${r.reason ?? '-'}, ended by ${r.endpoint}`}${r.turns > 1 ? `, ${r.turns} turns` : ''}`)
      }
      const early = res.filter((r) => r.endpoint === 'early')
      const cut = [...lat, ...res].filter((r) => r.endpoint === 'early' && r.vadTail < 0)
      console.log(`   early endpoints before the speech had ended (user cut off), latency and accuracy parts: ${cut.length}${cut.length ? ` (${cut.map((r) => `"${r.text}" ${r.vadTail} ms`).join(', ')})` : ''}`)
      summary.earlyCutOff = cut.length
      console.log(`   ended by the early endpoint: ${early.length}/${res.length} (in grammar ${early.filter((r) => r.inGrammar).length}/${inR.length}, ` +
        `${early.filter((r) => r.inGrammar && r.verdict === 'correct').length} of them correct; out of grammar ${early.filter((r) => !r.inGrammar).length}/${outR.length}, each a wrong answer)`)
      const accLat = stats(res.filter((r) => r.a !== undefined && !r.overlap).map((r) => r.a))
      const accLatB = stats(res.filter((r) => r.b !== undefined && !r.overlap).map((r) => r.b))
      console.log(`   (latency on this mixed set, same definitions: (a) p50 ${fmt(accLat.p50, 0)} p95 ${fmt(accLat.p95, 0)} ms, (b) p50 ${fmt(accLatB.p50, 0)} p95 ${fmt(accLatB.p95, 0)} ms, n=${accLat.n})`)
      summary.accuracy = {
        n: res.length, correct, accuracyPct: r0((1000 * correct) / res.length) / 10,
        inGrammar: { n: inR.length, correct: count(inR, 'correct'), wrong: count(inR, 'wrong'), rejected: count(inR, 'rejected'), missed: count(inR, 'missed') },
        outOfGrammar: { n: outR.length, correct: count(outR, 'correct'), wrong: count(outR, 'wrong'), missed: count(outR, 'missed') },
        reasons, errors: res.filter((x) => x.verdict !== 'correct').map((r) => ({ text: r.text, voice: r.voice, wpm: r.wpm, verdict: r.verdict, heard: r.heard, reason: r.reason })),
        latencyA: rs(accLat), latencyB: rs(accLatB), early: early.length, earlyInGrammarCorrect: early.filter((r) => r.inGrammar && r.verdict === 'correct').length,
        earlyWrong: early.filter((r) => r.verdict !== 'correct').length,
      }
    }
    const timerDone = node.records().filter((r) => r.turnId === 0).length
    const journalPending = (await agent.health()).offline?.journalPending
    const strays = [...lat, ...(summary.accuracy ? accAll : [])].reduce((n, r) => n + r.stray, 0)
    const withdrawn = logLines(agent.out.text).filter((l) => l.msg?.startsWith('speech resumed after an early offline answer')).length
    console.log(`   other replies played ("timer done", turnId 0): ${timerDone}; stray turns between utterances: ${strays}; early answers withdrawn (speech resumed): ${withdrawn}; ` +
      `mic frames written >20 ms late: ${mic.late}; journal pending: ${journalPending}`)
    summary.earlyWithdrawn = withdrawn

    // ---------------------------------------------------------------- 3. hub loss / return
    const fail = { kill: [], restart: [], ready: [] }
    let first = null
    if (failReps) {
      const outageS = (Date.now() - outageStart) / 1000
      let t0 = Date.now()
      await mesh.restartHub({ timeoutMs: 30_000 })
      const readyMs = Date.now() - t0
      first = { outageS, readyMs, onlineMs: await stateReached(agent, 'online', t0, 120_000), journal: journalPending }
      await waitFor(async () => (await agent.health()).offline?.journalPending === 0, { timeoutMs: 30_000, what: 'journal replayed' }).catch(() => undefined)
      console.log(`\n3. hub loss / return. First return after a ${outageS.toFixed(0)} s outage (${journalPending} journal entries to replay): spawn -> node online ${first.onlineMs} ms (hub /readyz ${readyMs} ms)`)
      await sleep(2000)
      for (let i = 0; i < failReps; i++) {
        await sleep(1000 + Math.random() * 1000) // random phase against the hub heartbeat
        t0 = Date.now()
        mesh.hub.kill('SIGKILL')
        fail.kill.push(await stateReached(agent, 'offline', t0, 15_000))
        await mesh.hub.exited
        await sleep(1000)
        t0 = Date.now()
        await mesh.restartHub({ timeoutMs: 30_000 })
        fail.ready.push(Date.now() - t0)
        fail.restart.push(await stateReached(agent, 'online', t0, 60_000))
        if (verbose) console.log(`rep ${i + 1}: kill->offline ${fail.kill.at(-1)} ms, spawn->online ${fail.restart.at(-1)} ms (readyz ${fail.ready.at(-1)} ms)`)
      }
      const K = stats(fail.kill)
      const S = stats(fail.restart)
      const Y = stats(fail.ready)
      console.log(`   ${failReps} reps, 1 s outage each (hub restarted with BUNDLE_ENABLED=true: it rebuilds the bundle in the background after start); ms from the agent's "node state changed" log time`)
      table([['ms', 'n', 'p50', 'max', 'all'],
        ['hub SIGKILL -> node offline', K.n, fmt(K.p50, 0), fmt(K.max, 0), fail.kill.join(' ')],
        ['hub spawn -> node online', S.n, fmt(S.p50, 0), fmt(S.max, 0), fail.restart.join(' ')],
        ['  of which spawn -> hub /readyz', Y.n, fmt(Y.p50, 0), fmt(Y.max, 0), fail.ready.join(' ')]])
      summary.failover = { firstKillToOfflineMs: firstOffline, firstReturn: first, reps: failReps, killToOffline: rs(K), spawnToOnline: rs(S), spawnToReadyz: rs(Y), all: fail }
    }

    // ---------------------------------------------------------------- 4. RSS
    console.log(`\n4. node-agent VmRSS (MB), read ${rssSeconds} s after start (bundle ready for the stdin one), median of that and the next 5 s`)
    const rss = {}
    const hubUp = mesh.hub.proc.exitCode === null && mesh.hub.proc.signalCode === null
    {
      const d = trackDir(await tempDir('mm-rss-none-'))
      const t0 = Date.now()
      const a = await startAgent({ nodeId: 'hall', mqttUrl: mesh.url, password: mesh.passwords.hall, env: { AUDIO_SOURCE: 'none', MIRRORMESH_STATE_DIR: d } })
      if (hubUp) await a.waitState('online', 20_000).catch(() => undefined)
      rss.none = await rssSettled(a.proc.pid, t0, rssSeconds * 1000)
      rss.noneStop = await stopAgent(a)
    }
    {
      const d = trackDir(await tempDir('mm-rss-stdin-'))
      const t0 = Date.now()
      const a = await startAgent({ nodeId: 'a', mqttUrl: mesh.url, password: mesh.passwords.a, stdin: true,
        env: { AUDIO_SOURCE: 'stdin', AUDIO_SINK: 'file', AUDIO_SINK_FILE: join(d, 'played.jsonl'), MIRRORMESH_STATE_DIR: d,
          HUB_HTTP_URL: `http://127.0.0.1:${mesh.hub.httpPort}`, VAD_END_SILENCE_MS: String(vadMs) } })
      const m2 = new Mic(a.proc.stdin)
      m2.start()
      const ready = hubUp ? await waitFor(async () => (await a.health()).offline?.bundleVersion && Date.now(), { timeoutMs: 60_000, intervalMs: 100, what: 'bundle on the RSS agent' }).catch(() => null) : null
      rss.stdin = { ...(await rssSettled(a.proc.pid, ready ?? t0, rssSeconds * 1000)), bundleReadyS: ready ? (ready - t0) / 1000 : null }
      await m2.stop()
      rss.stdinStop = await stopAgent(a)
    }
    rss.kitchenAfterRun = rssOf(agent.proc.pid)
    // The recognizer is a separate pocketsphinx_continuous per utterance: its peak RSS for one decode.
    try {
      const raw = join(dir, 'ps-probe.raw')
      const p = await speechPcm('turn on the kitchen light', 'en-us', 160)
      const padded = new Int16Array(p.pcm.length + 8000)
      padded.set(p.pcm)
      writeFileSync(raw, Buffer.from(padded.buffer))
      const md = '/usr/share/pocketsphinx/model/en-us'
      // The agent runs it with the grammar-only dictionary it writes (offline-grammar.dict), older agents with the full one.
      const gd = join(dir, 'offline', 'offline-grammar.dict')
      const dict = existsSync(gd) ? gd : join(md, 'cmudict-en-us.dict')
      const r = spawnSync('/usr/bin/time', ['-f', 'MAXRSS %M', 'pocketsphinx_continuous', '-infile', raw, '-jsgf', join(dir, 'offline', 'offline-grammar.gram'),
        '-hmm', join(md, 'en-us'), '-dict', dict, '-backtrace', 'yes'], { encoding: 'utf8', timeout: 30_000 })
      const m = /MAXRSS (\d+)/.exec(r.stderr ?? '')
      if (m) rss.pocketsphinxMaxMb = Number(m[1]) / 1024
      rss.pocketsphinxDict = dict === gd ? 'grammar words' : 'full cmudict'
      rss.pocketsphinxText = (r.stdout ?? '').trim()
    } catch {}
    table([['agent', `at ${rssSeconds} s`, 'median', 'max', 'VmHWM', 'anon', 'file', 'goal'],
      ['AUDIO_SOURCE=none (no models)', fmt(rss.none.atMb), fmt(rss.none.medianMb), fmt(rss.none.maxMb), fmt(rss.none.hwmMb), fmt(rss.none.anonMb), fmt(rss.none.fileMb), `<= 60 ${rss.none.medianMb <= 60 ? 'met' : 'NOT met'}`],
      ['AUDIO_SOURCE=stdin (VAD+recognizer+bundle)', fmt(rss.stdin.atMb), fmt(rss.stdin.medianMb), fmt(rss.stdin.maxMb), fmt(rss.stdin.hwmMb), fmt(rss.stdin.anonMb), fmt(rss.stdin.fileMb), ''],
      ['kitchen agent after the run (pinned, stdin)', fmt(rss.kitchenAfterRun?.rssMb), '', '', fmt(rss.kitchenAfterRun?.hwmMb), fmt(rss.kitchenAfterRun?.anonMb), fmt(rss.kitchenAfterRun?.fileMb), ''],
      [`pocketsphinx_continuous, one decode (own process, ${rss.pocketsphinxDict ?? '?'} dictionary; up to 2 per offline turn)`, '', '', fmt(rss.pocketsphinxMaxMb), '', '', '', '']])
    console.log(`   shutdown: AUDIO_SOURCE=none agent ${rss.noneStop}; AUDIO_SOURCE=stdin agent (stdin left open) ${rss.stdinStop}`)
    if (rss.stdin.bundleReadyS !== null) console.log(`   stdin agent: bundle synced ${fmt(rss.stdin.bundleReadyS)} s after spawn; mic fed silence in real time while sampling`)
    summary.rss = Object.fromEntries(Object.entries(rss).map(([k, v]) => [k, typeof v === 'number' ? Math.round(v * 10) / 10 : typeof v !== 'object' || v === null ? v : Object.fromEntries(Object.entries(v).map(([kk, vv]) => [kk, typeof vv === 'number' ? Math.round(vv * 10) / 10 : vv]))]))
    summary.busyPctWholeRun = r0(systemCpu(sys0))
    console.log(`machine busy over the whole bench (all cores, includes anything else running): ${fmt(systemCpu(sys0))} %`)
    const { latency, ...rest } = summary
    console.log(JSON.stringify({ ...rest, latency: latency && { ...latency, all: undefined } }))
  } finally {
    await mic?.stop().catch(() => undefined)
    await killAll()
  }
}
