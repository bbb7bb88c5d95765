// `bench eot`: online early end of turn (README "End of turn") on the accuracy set (accuracy-set.mjs).
//  1. Firing and cut-offs, in-process, every utterance of the set (--quick: the quick set): the hub's
//     early-end detector (the offline recogniser's endpoint on the skills' grammar, with the skills'
//     veto, exactly as listen.ts builds it) hears the utterance at BENCH_PACE x real time, then 1 s of
//     quiet. Counted: how often the early end fires, and how often it cut a speaker off — fired while
//     speech still followed in the utterance (the set has no deliberate pauses, so this is the rate
//     on pauses between words). Also whether the transcript the early end answers differs from the
//     whole utterance's (the same decoder fed to the end).
//  2. Latency with a real hub process (embedded broker, pocketsphinx, Silero VAD, espeak-ng): a
//     simulated node streams BENCH_TURNS skill requests (clean audio) in real time; like the agent it
//     sends its end flag 600 ms after the last loud frame (VAD_END_SILENCE_MS; the agent's Silero adds
//     its own lag on top, not simulated) and stops streaming on nodes/{id}/turn/end. First reply sample
//     = the first audio/out frame reaching the node, measured from the last spoken (loud) sample sent.
//     Once with EARLY_END_SILENCE_MS=100 (the default), once with 0 (off). Also shown for the turns
//     a skill answered, and those it answered right (the goal is about skill turns: a request the
//     hub did not understand gets "say that again" or the LLM, after its open decode).
//  Part 1 builds the detector as the hub does by default: the second opinion at the hub's margin,
//  a second probe at 200 ms of quiet (EARLY_END_RETRY_MS=0 shows a single probe per pause).
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir, loadavg } from 'node:os'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { AudioFlags, decodeAudioFrame, encodeAudioFrame } from '@mirrormesh/broker'
import { DEFAULT_ACTION_MIN_MARGIN, DEFAULT_HUB_MIN_MARGIN, OfflineRecognizer, SPEECH_FLOOR_DBFS, PocketsphinxAsr, grammarWords, jsgfFromPhrases, readDictionaryWords, writeGrammarDictionary } from '@mirrormesh/speech'
import { actsOn, earlyVeto } from '../../hub/dist/pipeline/early-end.js'
import { builtinSkills, SkillMatcher } from '../../hub/dist/pipeline/skills.js'
import { addNode, killAll, removeDir, sleep, startHub, tempDir, waitFor } from '../support/dist/harness.js'
import { audioOf, evaluationSet } from './accuracy-set.mjs'
import { effectOf } from './accuracy.mjs'
import { fmt, printMachine, quantile, table } from './lib.mjs'

const quiet = { debug() {}, info() {}, warn() {}, error() {}, trace() {}, fatal() {}, child() { return quiet } }
const FRAME = 320
const pace = Math.max(1, Number(process.env.BENCH_PACE) || 2)
const concurrency = Math.max(1, Number(process.env.BENCH_CONCURRENCY) || 2)
// The second probe at a pause (EARLY_END_RETRY_MS, default 200; 0 shows the single probe).
const retryMs = Number(process.env.EARLY_END_RETRY_MS ?? 200)

/** Levels of 20 ms frames, dBFS, and the speech threshold (30 dB under the peak, at least the recogniser's floor), as the recogniser's meter. */
function levels(pcm) {
  const db = []
  for (let i = 0; i + FRAME <= pcm.length; i += FRAME) {
    let s = 0
    for (let j = i; j < i + FRAME; j++) s += pcm[j] * pcm[j]
    db.push(10 * Math.log10(s / FRAME / 32768 / 32768 + 1e-12))
  }
  return { db, thr: Math.max(Math.max(...db) - 30, SPEECH_FLOOR_DBFS) }
}

/** Index just past the last 20 ms frame of speech: the last spoken sample. */
export function lastSpoken(pcm) {
  const { db, thr } = levels(pcm)
  for (let k = db.length - 1; k >= 0; k--) if (db[k] >= thr) return (k + 1) * FRAME
  return 0
}

/** ms of speech (frames above the threshold) after sample `at`. */
function speechAfter(pcm, at) {
  const { db, thr } = levels(pcm)
  return db.slice(Math.ceil(at / FRAME)).filter((d) => d >= thr).length * 20
}

async function pool(items, n, fn) {
  let next = 0
  await Promise.all(Array.from({ length: n }, async () => { while (next < items.length) { const i = next++; await fn(items[i], i) } }))
}

/** One utterance through the detector: where it fired (samples heard then), what it heard, and the full decode. */
async function detect(early, asr, pcm) {
  const ac = new AbortController()
  const all = new Int16Array(pcm.length + 16000)
  all.set(pcm)
  let pos = 0
  let fired
  const session = early.recognizer.start(ac.signal, { onEndpoint: (r) => {
    if (fired || !early.answersEarly(r.text)) return false
    fired = { at: pos, text: r.text }
    return true
  } })
  const full = asr.start(ac.signal)
  for (; pos < all.length; pos += FRAME) {
    const f = all.subarray(pos, pos + FRAME)
    full.write(f)
    if (!fired) session.write(f)
    await sleep(20 / pace)
  }
  session.kill()
  const whole = await full.finish()
  ac.abort()
  return { fired, whole: whole.text }
}

async function firing(quick) {
  // BENCH_VARIANT: one acoustic variant only (clean, quiet, noise, reverb).
  const all = evaluationSet({ quick }).filter((i) => !process.env.BENCH_VARIANT || i.variant === process.env.BENCH_VARIANT)
  // BENCH_LIMIT: a fixed pseudo-random subset (the same on every run), mixing voices, variants and kinds.
  const limit = Number(process.env.BENCH_LIMIT) || all.length
  let seed = 12
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648)
  const set = all.length <= limit ? all : all.map((item) => ({ item, k: rnd() })).sort((a, b) => a.k - b.k).slice(0, limit).map((x) => x.item)
  const matcher = new SkillMatcher(builtinSkills())
  const dir = mkdtempSync(join(tmpdir(), 'mm-eot-bench-'))
  try {
    const grammarPath = join(dir, 'grammar.gram')
    const phrases = matcher.phrases()
    const jsgf = jsgfFromPhrases(phrases, { dictionary: readDictionaryWords() })
    writeFileSync(grammarPath, jsgf)
    const dictPath = join(dir, 'grammar.dict')
    await writeGrammarDictionary([...grammarWords(jsgf)], dictPath)
    const early = { recognizer: new OfflineRecognizer({ grammarPath, dictPath, endpointSilenceMs: 100, endpointRetrySilenceMs: retryMs, log: quiet, secondOpinion: { minMargin: DEFAULT_HUB_MIN_MARGIN, actionMinMargin: DEFAULT_ACTION_MIN_MARGIN, acts: actsOn(matcher) } }), answersEarly: earlyVeto(matcher, phrases) }
    const asr = new PocketsphinxAsr({ grammarPath, log: quiet })
    const rows = []
    const t0 = Date.now()
    await pool(set, concurrency, async (item) => {
      const pcm = await audioOf(item)
      const r = await detect(early, asr, pcm)
      const end = lastSpoken(pcm)
      const after = r.fired ? speechAfter(pcm, r.fired.at) : 0
      // Cut: the speaker went on (≥ 100 ms of speech after it fired: words, not a plosive's release or a reverb tail).
      const cut = after >= 100
      rows.push({ ...item, voice: item.voice.id, fired: !!r.fired, cut, tail: !!r.fired && after > 0 && !cut, firedText: r.fired?.text, whole: r.whole,
        differs: r.fired !== undefined && effectOf(matcher.match(r.fired.text)) !== effectOf(matcher.match(r.whole)) })
      if (process.env.BENCH_VERBOSE === '1' && r.fired && (after > 0 || rows.at(-1).differs)) console.log(`${item.voice.id}\t${item.variant}\t"${item.text}" fired on "${r.fired.text}" at ${Math.round(r.fired.at / 16)} ms, ${after} ms of speech after it (last at ${Math.round(end / 16)} ms); whole "${r.whole}"`)
    })
    console.log(`part 1: ${set.length} of ${all.length} utterances${quick ? ' (--quick set)' : ''} in ${((Date.now() - t0) / 1000).toFixed(0)} s at ${pace}x real time, concurrency ${concurrency}`)
    const pct = (a, b) => (b ? `${((100 * a) / b).toFixed(1)}%` : '-')
    const group = (name, list) => {
      const fired = list.filter((r) => r.fired)
      const cut = list.filter((r) => r.cut).length
      return [name, list.length, `${fired.length} (${pct(fired.length, list.length)})`, `${cut} (${pct(cut, list.length)} / ${pct(cut, fired.length)})`, list.filter((r) => r.tail).length, list.filter((r) => r.differs).length]
    }
    const skill = rows.filter((r) => r.expect)
    console.log('cut: fired with ≥ 100 ms of speech still to come (of all / of fired); tail: < 100 ms (a final plosive\'s release, reverb) — no word lost')
    table([['utterances', 'n', 'early end fired', 'cut a speaker off', 'tail', 'answer differs from whole'],
      group('all', rows), group('skill requests', skill), group('out-of-skill', rows.filter((r) => !r.expect)),
      ...[...new Set(rows.map((r) => r.voice))].map((v) => group(`  voice ${v}`, rows.filter((r) => r.voice === v))),
      ...[...new Set(rows.map((r) => r.variant))].map((v) => group(`  variant ${v}`, rows.filter((r) => r.variant === v)))])
    return rows
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Part 2: one hub, `turns` utterances streamed by a simulated node; ms from the last spoken sample to the first reply frame. */
async function latency(items, earlyMs) {
  const matcher = new SkillMatcher(builtinSkills())
  const stateDir = await tempDir('mm-eot-hub-')
  try {
    const password = await addNode(stateDir, 'kitchen')
    // BENCH_HUB_LOG=file: the hub's debug log (with transcripts) of each run, appended there.
    const hubLog = process.env.BENCH_HUB_LOG
    const hub = await startHub({ stateDir, env: { EARLY_END_SILENCE_MS: String(earlyMs), LOG_LEVEL: hubLog ? 'debug' : 'warn', ...(hubLog ? { LOG_PII: 'true' } : {}) }, timeoutMs: 60_000 })
    const base = 'mirrormesh'
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${hub.mqttPort}`, { clientId: 'node-kitchen', username: 'kitchen', password, protocolVersion: 4, reconnectPeriod: 0 })
    const firstOut = new Map()
    const ended = new Set()
    const heard = new Map() // turnId → { text, kind }: what the hub understood and how it answered
    client.on('message', (topic, payload) => {
      if (topic.endsWith('/events')) {
        const e = JSON.parse(payload.toString())
        if (e.type === 'transcript') heard.set(e.turnId, { ...heard.get(e.turnId), text: e.text })
        else if (e.type === 'reply') heard.set(e.turnId, { ...heard.get(e.turnId), kind: e.kind })
      } else if (topic.endsWith('/audio/out')) {
        const f = decodeAudioFrame(payload)
        if (typeof f !== 'string' && f.samples.length && !firstOut.has(f.turnId)) firstOut.set(f.turnId, Date.now())
      } else if (topic.endsWith('/turn/end')) ended.add(JSON.parse(payload.toString()).turnId)
    })
    await client.subscribeAsync([`${base}/nodes/kitchen/audio/out`, `${base}/nodes/kitchen/turn/end`, `${base}/nodes/kitchen/events`], { qos: 0 })
    const out = []
    let turnId = 1
    for (const item of items) {
      const pcm = await audioOf(item)
      const last = lastSpoken(pcm)
      const id = turnId++
      const topic = `${base}/nodes/kitchen/audio/in`
      const start = Date.now()
      let lastSpokenAt
      let sent = 0 // samples streamed before the hub ended the turn (or all)
      let seq = 0
      // The utterance, then quiet until the node's VAD (600 ms after the last loud frame) would end it.
      const total = last + 600 * 16
      for (let off = 0; off < total && !ended.has(id); off += FRAME) {
        const chunk = off < pcm.length ? pcm.subarray(off, off + FRAME) : new Int16Array(FRAME)
        client.publish(topic, encodeAudioFrame({ flags: off === 0 ? AudioFlags.start : 0, turnId: id, seq: seq++, samples: chunk }), { qos: 0 })
        sent = off + FRAME
        if (off + FRAME >= last && lastSpokenAt === undefined) lastSpokenAt = Date.now()
        const wait = start + (off + FRAME) / 16 - Date.now()
        if (wait > 0) await sleep(wait)
      }
      if (!ended.has(id)) client.publish(topic, encodeAudioFrame({ flags: AudioFlags.end, turnId: id, seq: seq++, samples: new Int16Array(0) }), { qos: 0 })
      await waitFor(() => firstOut.has(id), { timeoutMs: 15_000, what: `reply to turn ${id}` }).catch(() => undefined)
      // The reply event comes when the reply has been sent whole.
      await waitFor(() => heard.get(id)?.kind !== undefined, { timeoutMs: 15_000, what: `reply event of turn ${id}` }).catch(() => undefined)
      const h = heard.get(id) ?? {}
      // right: a skill answered and the transcript means what was asked (the matcher's effect, as bench accuracy).
      const right = h.kind === 'skill' && !!h.text && effectOf(matcher.match(h.text)) === item.expect
      // Ended before the last spoken sample was sent: a cut when ≥ 100 ms of speech was still to come
      // (as part 1); otherwise a tail (a plosive's release, no word lost), timed from when the last
      // spoken sample would have been said.
      const cut = lastSpokenAt === undefined && speechAfter(pcm, sent) >= 100
      lastSpokenAt ??= start + last / 16
      if (cut) out.push({ cut: true, early: true })
      else if (firstOut.has(id)) out.push({ ms: firstOut.get(id) - lastSpokenAt, early: ended.has(id), kind: h.kind, right })
      if (process.env.BENCH_VERBOSE === '1') console.log(`  ${item.voice.id} "${item.text}" → "${h.text ?? ''}" (${h.kind ?? '-'}${right ? ', right' : ''}) ${ended.has(id) ? 'early' : 'end flag'} ${firstOut.has(id) ? `${firstOut.get(id) - lastSpokenAt} ms` : '-'}`)
      await sleep(2500) // the reply plays out; the next request comes after it
    }
    await client.endAsync()
    hub.kill('SIGTERM')
    await hub.exited
    if (hubLog) appendFileSync(hubLog, hub.out.text)
    return out
  } finally {
    await killAll()
    await removeDir(stateDir)
  }
}

export async function main() {
  printMachine()
  const quick = process.argv.includes('--quick') || process.env.BENCH_QUICK === '1'
  console.log(`load average at start: ${loadavg().map((l) => l.toFixed(1)).join(' ')}`)
  if (process.env.BENCH_EOT_SKIP_FIRING !== '1') await firing(quick)
  if (process.env.BENCH_EOT_SKIP_LATENCY === '1') return
  const turns = Math.max(1, Number(process.env.BENCH_TURNS) || 20)
  const set = evaluationSet({ quick: true }).filter((i) => i.expect && i.variant === 'clean')
  const items = Array.from({ length: turns }, (_, i) => set[(i * 7) % set.length])
  console.log(`\npart 2: ${items.length} skill requests (clean), real hub, simulated node (end flag 600 ms after the last loud frame); load ${loadavg()[0].toFixed(1)}`)
  const rows = []
  for (const [name, ms] of [['early end on (100 ms)', 100], ['early end off', 0]]) {
    const r = await latency(items, ms)
    const v = r.filter((x) => !x.cut).map((x) => x.ms)
    rows.push([name, r.length, r.filter((x) => x.early).length, r.filter((x) => x.cut).length, fmt(quantile(v, 0.5), 0), fmt(quantile(v, 0.95), 0), fmt(Math.max(...v), 0)])
    const sub = (label, list) => {
      const ms = list.map((x) => x.ms)
      if (ms.length) rows.push([label, ms.length, list.filter((x) => x.early).length, 0, fmt(quantile(ms, 0.5), 0), fmt(quantile(ms, 0.95), 0), fmt(Math.max(...ms), 0)])
    }
    sub('  answered by a skill', r.filter((x) => !x.cut && x.kind === 'skill'))
    sub('  answered right', r.filter((x) => !x.cut && x.right))
    sub('  ended early', r.filter((x) => x.early && !x.cut))
  }
  console.log('last spoken sample → first reply frame at the node, ms')
  console.log('cut: ended with ≥ 100 ms of speech still to come (not in the latency figures); answered by a skill: the reply event\'s kind; right: and its transcript has the requested effect')
  table([['hub', 'turns', 'ended early', 'cut', 'p50', 'p95', 'max'], ...rows])
  console.log(`load average at end: ${loadavg().map((l) => l.toFixed(1)).join(' ')}`)
}
