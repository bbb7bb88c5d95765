// `mirrormesh ask "<text>" --node <id>` (spoken with espeak-ng) or `--wav <file>`: one voice
// turn end to end, as that node, over MQTT — what the mirror would hear back, and how fast.
// `--typed`: the words go as a text turn (POST /api/turns, admin token), no speech and no ASR.
// Exit 0: a reply came; 1: input, credentials or connection; 2: turn_error; 3: busy; 4: timeout.
import { spawn } from 'node:child_process'
import { randomInt, randomUUID } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import mqtt, { type MqttClient } from 'mqtt'
import { HubClient, errorText } from './api.js'
import { AUDIO_SAMPLE_RATE, AudioFlags, decodeAudioFrame, encodeAudioFrame, noDelay, redactUrl, topicFor } from '@mirrormesh/broker'

export const askExit = { ok: 0, failed: 1, turnError: 2, busy: 3, timeout: 4 } as const

interface AskOptions {
  node?: string; wav?: string; url: string; username?: string; password?: string; base: string
  voice: string; timeoutMs: string; json?: boolean
  typed?: boolean; hub?: string; token?: string; user?: string
}

interface TypedResult { turnId: number; outcome: string; kind: string; transcript: string; reply: string; ttfaMs: number | null }

/** A text turn over the hub's HTTP API: the pipeline after ASR, replying to the node as usual. */
async function typedCommand(text: string, nodeId: string, opts: AskOptions, fail: (code: number, why: string) => number): Promise<number> {
  const hub = new HubClient({ hub: opts.hub, token: opts.token })
  const timeoutMs = Math.max(1000, Number(opts.timeoutMs) || 30_000)
  const started = Date.now()
  let r: TypedResult
  try {
    r = await hub.json<TypedResult>('/api/turns', { method: 'POST', body: { node: nodeId, text, ...(opts.user ? { user: opts.user } : {}) }, timeoutMs })
  } catch (err) {
    return fail((err as { kind?: string }).kind === 'timeout' ? askExit.timeout : askExit.failed, errorText(err))
  }
  const code = r.outcome === 'ok' ? askExit.ok : r.outcome === 'busy' || r.outcome === 'draining' ? askExit.busy : r.outcome === 'turn_timeout' ? askExit.timeout : askExit.turnError
  if (opts.json) {
    process.stdout.write(JSON.stringify({ ok: code === 0, exitCode: code, node: nodeId, typed: true, ...r, totalMs: Date.now() - started }) + '\n')
    return code
  }
  process.stdout.write([
    `node:       ${nodeId} (turn ${r.turnId}, typed)`,
    `typed:      ${JSON.stringify(r.transcript)}`,
    `reply:      ${r.reply ? `${JSON.stringify(r.reply)} (${r.kind})` : '(none)'}`,
    `timings:    first audio ${r.ttfaMs === null ? '-' : `${r.ttfaMs} ms`} after the text reached the hub; total ${Date.now() - started} ms`,
  ].join('\n') + '\n')
  if (code !== 0) process.stderr.write(`mirrormesh ask: the turn ended ${r.outcome}\n`)
  return code
}

/** PCM16 mono from a WAV file (PCM16, any rate, mono or stereo), resampled to 16 kHz. */
export function wavToPcm16k(buf: Buffer): Int16Array {
  if (buf.length < 12 || buf.toString('ascii', 0, 4) !== 'RIFF' || buf.toString('ascii', 8, 12) !== 'WAVE') throw new Error('not a WAV file (no RIFF/WAVE header)')
  let off = 12
  let fmt: { format: number; channels: number; rate: number; bits: number } | undefined
  while (off + 8 <= buf.length) {
    const id = buf.toString('ascii', off, off + 4)
    let size = buf.readUInt32LE(off + 4)
    const body = off + 8
    if (id === 'fmt ') {
      fmt = { format: buf.readUInt16LE(body), channels: buf.readUInt16LE(body + 2), rate: buf.readUInt32LE(body + 4), bits: buf.readUInt16LE(body + 14) }
    } else if (id === 'data') {
      if (!fmt) throw new Error('WAV data before its fmt chunk')
      if (fmt.format !== 1 || fmt.bits !== 16) throw new Error(`WAV must be 16-bit PCM (this one: format ${fmt.format}, ${fmt.bits} bits). Fix: sox in.wav -b 16 -e signed out.wav`)
      // Streamed WAVs (espeak-ng --stdout) carry a placeholder size: take what is there.
      size = Math.min(size, buf.length - body)
      const frames = Math.floor(size / 2 / fmt.channels)
      const mono = new Float32Array(frames)
      for (let i = 0; i < frames; i++) {
        let sum = 0
        for (let c = 0; c < fmt.channels; c++) sum += buf.readInt16LE(body + (i * fmt.channels + c) * 2)
        mono[i] = sum / fmt.channels
      }
      return resample(mono, fmt.rate, AUDIO_SAMPLE_RATE)
    }
    off = body + size + (size % 2)
  }
  throw new Error('WAV file has no data chunk')
}

/** Windowed-sinc resampling (low-passed below the lower Nyquist, so 22 kHz speech does not alias). */
export function resample(input: Float32Array, from: number, to: number): Int16Array {
  const out = new Int16Array(Math.floor((input.length * to) / from))
  const ratio = from / to
  const cutoff = Math.min(1, to / from) * 0.95
  const half = 16
  for (let i = 0; i < out.length; i++) {
    const center = i * ratio
    const lo = Math.max(0, Math.ceil(center - half / cutoff))
    const hi = Math.min(input.length - 1, Math.floor(center + half / cutoff))
    let acc = 0
    for (let j = lo; j <= hi; j++) {
      const x = (j - center) * cutoff
      const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x)
      const window = 0.5 + 0.5 * Math.cos((Math.PI * x) / half)
      acc += input[j]! * sinc * window * cutoff
    }
    out[i] = Math.max(-32768, Math.min(32767, Math.round(acc)))
  }
  return out
}

function espeak(text: string, voice: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const p = spawn('espeak-ng', ['-v', voice, '--stdout', text], { stdio: ['ignore', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    let err = ''
    p.stdout.on('data', (c: Buffer) => out.push(c))
    p.stderr.on('data', (c: Buffer) => { err += c.toString() })
    p.on('error', (e) => reject(new Error(`cannot run espeak-ng (${e.message}). Fix: apt install espeak-ng, or pass --wav <file>`)))
    p.on('close', (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`espeak-ng exited ${code}: ${err.trim().slice(0, 200)}`))))
  })
}

interface TurnResult {
  /** The turn id this command numbered its frames with: `mirrormesh bundle --turn <id> --node <node>`. */
  turnId: number
  outcome: 'reply' | 'turn_error' | 'busy' | 'timeout'
  transcript: string | null
  reply: string | null
  kind: string | null
  reason: string | null
  audioFrames: number
  audioS: number
  ttfaMs: number | null
  totalMs: number
  speechMs: number
}

/** Streams `pcm` as one turn and gathers what comes back. */
async function runTurn(client: MqttClient, base: string, nodeId: string, pcm: Int16Array, timeoutMs: number): Promise<TurnResult> {
  const turnId = randomInt(1, 2 ** 31)
  const inTopic = topicFor(base, 'nodeAudioIn', { node: nodeId })
  const outTopic = topicFor(base, 'nodeAudioOut', { node: nodeId })
  const evTopic = topicFor(base, 'nodeEvents', { node: nodeId })
  // The hub may end the turn itself (online early end of turn): then stop sending, as a node does.
  const endTopic = topicFor(base, 'nodeTurnEnd', { node: nodeId })
  let endedByHub = false
  const r: TurnResult = { turnId, outcome: 'timeout', transcript: null, reply: null, kind: null, reason: null, audioFrames: 0, audioS: 0, ttfaMs: null, totalMs: 0, speechMs: 0 }
  let firstAudioAt: number | undefined
  let audioDone = false
  let replied = false
  let wake: () => void = () => undefined
  client.on('message', (topic, payload) => {
    if (topic === endTopic) {
      try { if (JSON.parse(payload.toString()).turnId === turnId) endedByHub = true } catch { /* not ours */ }
      return
    }
    if (topic === outTopic) {
      const f = decodeAudioFrame(payload)
      if (typeof f === 'string' || f.turnId !== turnId) return
      firstAudioAt ??= Date.now()
      r.audioFrames++
      r.audioS += f.samples.length / AUDIO_SAMPLE_RATE
      if (f.flags & (AudioFlags.end | AudioFlags.cancel)) audioDone = true
    } else if (topic === evTopic) {
      let ev: { type?: string; turnId?: number; text?: string; kind?: string; reason?: string; audio?: boolean }
      try { ev = JSON.parse(payload.toString()) } catch { return }
      if (ev.turnId !== turnId) return
      if (ev.type === 'transcript') r.transcript = ev.text ?? ''
      else if (ev.type === 'reply') { replied = true; r.reply = ev.text ?? ''; r.kind = ev.kind ?? null; if (!ev.audio) audioDone = true }
      else if (ev.type === 'busy') r.outcome = 'busy'
      else if (ev.type === 'turn_error') { r.outcome = 'turn_error'; r.reason = ev.reason ?? null }
    } else return
    wake()
  })
  const granted = await client.subscribeAsync([outTopic, evTopic, endTopic], { qos: 1 })
  // turn/end is optional: a Mosquitto ACL written before it existed refuses it, and the hub's end flag path still works.
  if (granted.slice(0, 2).some((g) => g.qos === 128)) throw new Error(`subscription to ${outTopic} / ${evTopic} refused by the broker ACL (is this user node ${nodeId}?)`)

  // 20 ms frames at microphone pace, the last one marked `end` as a node's own VAD does.
  const frameSamples = 320
  const started = Date.now()
  for (let off = 0, seq = 0; off < pcm.length && !endedByHub; off += frameSamples, seq++) {
    const samples = pcm.subarray(off, Math.min(pcm.length, off + frameSamples))
    let flags = off === 0 ? AudioFlags.start : 0
    if (off + frameSamples >= pcm.length) flags |= AudioFlags.end
    client.publish(inTopic, encodeAudioFrame({ flags, turnId, seq, samples }), { qos: 0 })
    const wait = started + (off + frameSamples) / 16 - Date.now()
    if (wait > 0) await new Promise((res) => setTimeout(res, wait))
  }
  const endOfSpeech = Date.now()
  r.speechMs = endOfSpeech - started
  const done = () => r.outcome === 'busy' || r.outcome === 'turn_error' || (replied && audioDone)
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, timeoutMs)
    wake = () => { if (done()) { clearTimeout(timer); resolve() } }
    wake()
  })
  if (replied && audioDone && r.outcome === 'timeout') r.outcome = 'reply'
  r.ttfaMs = firstAudioAt === undefined ? null : firstAudioAt - endOfSpeech
  r.totalMs = Date.now() - started
  r.audioS = Math.round(r.audioS * 100) / 100
  return r
}

export async function askCommand(text: string | undefined, opts: AskOptions): Promise<number> {
  const username = opts.username ?? process.env.MQTT_USERNAME ?? process.env.NODE_ID ?? opts.node
  const password = opts.password ?? process.env.MQTT_PASSWORD
  const nodeId = opts.node ?? username
  const timeoutMs = Math.max(1000, Number(opts.timeoutMs) || 30_000)
  const fail = (code: number, why: string, extra: Record<string, unknown> = {}) => {
    if (opts.json) process.stdout.write(JSON.stringify({ ok: false, exitCode: code, error: why, ...extra }) + '\n')
    else process.stderr.write(`mirrormesh ask: ${why}\n`)
    return code
  }
  if (!text === !opts.wav) return fail(askExit.failed, 'give either the words to say ("what time is it") or --wav <file>, not both')
  if (!nodeId) return fail(askExit.failed, 'which node? --node <id> (the turn goes as that node)')
  if (opts.typed) {
    if (!text) return fail(askExit.failed, '--typed takes the words as text, not --wav')
    return typedCommand(text, nodeId, opts, fail)
  }
  if (!username || !password) return fail(askExit.failed, `credentials needed: --username/--password (or MQTT_USERNAME/MQTT_PASSWORD) of node ${nodeId}`)
  let pcm: Int16Array
  try {
    pcm = wavToPcm16k(opts.wav ? await readFile(opts.wav) : await espeak(text!, opts.voice))
  } catch (err) {
    return fail(askExit.failed, `${opts.wav ? `--wav ${opts.wav}` : 'speech'}: ${(err as Error).message}`)
  }
  if (pcm.length < AUDIO_SAMPLE_RATE / 10) return fail(askExit.failed, 'the audio is shorter than 100 ms')
  // Silence around the words, as a microphone's pre-roll and tail give: the recogniser's
  // second opinion (a phone loop) scores the words against it, and refuses clipped speech.
  const lead = Math.round(AUDIO_SAMPLE_RATE * 0.3)
  const padded = new Int16Array(lead + pcm.length + AUDIO_SAMPLE_RATE / 5)
  padded.set(pcm, lead)

  // A client id of its own under the node's prefix: the node's live session is not taken over.
  const client = mqtt.connect(opts.url, {
    clientId: `node-${nodeId}/ask-${randomUUID().slice(0, 8)}`, username, password,
    protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 10_000,
  })
  try {
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => { noDelay(client); resolve() })
      client.once('error', reject)
      client.once('close', () => reject(new Error('connection closed')))
    })
  } catch (err) {
    client.end(true)
    const msg = (err as Error).message
    return fail(askExit.failed, `cannot connect to ${redactUrl(opts.url)}: ${/authori|password|identifier/i.test(msg) ? `refused (${msg}): wrong username or password?` : msg}`)
  }
  let r: TurnResult
  try {
    r = await runTurn(client, opts.base, nodeId, padded, timeoutMs)
  } catch (err) {
    client.end(true)
    return fail(askExit.failed, (err as Error).message)
  } finally {
    client.removeAllListeners('message')
  }
  await client.endAsync().catch(() => undefined)
  const code = { reply: askExit.ok, turn_error: askExit.turnError, busy: askExit.busy, timeout: askExit.timeout }[r.outcome]
  if (opts.json) {
    process.stdout.write(JSON.stringify({ ok: code === 0, exitCode: code, node: nodeId, ...r }) + '\n')
    return code
  }
  const ms = (v: number | null) => (v === null ? '-' : `${v} ms`)
  const lines = [
    `node:       ${nodeId} (turn ${r.turnId})`,
    `heard:      ${r.transcript === null ? '(no transcript)' : JSON.stringify(r.transcript)}`,
    `reply:      ${r.reply === null ? '(none)' : `${JSON.stringify(r.reply)} (${r.kind}, ${r.audioS} s of audio)`}`,
    `timings:    first audio ${ms(r.ttfaMs)} after the last frame sent; total ${ms(r.totalMs)} (speech ${ms(r.speechMs)})`,
  ]
  const why = {
    reply: '',
    turn_error: `the hub reported turn_error: ${r.reason ?? '?'} (see its log: \`mirrormesh bundle\` with this turn)`,
    busy: 'the hub answered "busy": every session slot and the queue were full, or it is draining',
    timeout: `no complete reply within ${timeoutMs} ms of the end of speech. Check: \`mirrormesh status\` (is the voice pipeline up?)`,
  }[r.outcome]
  process.stdout.write(lines.join('\n') + '\n')
  if (why) process.stderr.write(`mirrormesh ask: ${why}\n`)
  return code
}
