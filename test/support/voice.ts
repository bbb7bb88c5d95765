// A test "mirror": speech synthesized at test time (espeak-ng → sox, 16 kHz PCM16),
// streamed as audio/in frames over real MQTT, with what comes back collected.
import { spawn } from 'node:child_process'
import type { Writable } from 'node:stream'
import type { MqttClient } from 'mqtt'
import { AudioFlags, decodeAudioFrame, encodeAudioFrame } from '@mirrormesh/broker'
import { sleep, startAgent, waitFor } from './harness.js'

/** A decoded audio/out frame (decodeAudioFrame gives a string for a malformed one). */
export type DecodedFrame = ReturnType<typeof decodeAudioFrame>
export type AudioFrame = Exclude<DecodedFrame, string>
/** An event from nodes/{id}/events, as JSON. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- every event type
export type NodeEventJson = { type: string; turnId?: number; [k: string]: any }

/** espeak-ng speech as 16 kHz mono PCM16, with `padMs` of silence after it. */
export function synth(text: string, { padMs = 0, voice = 'en-us', wpm = 160 }: { padMs?: number; voice?: string; wpm?: number } = {}): Promise<Int16Array> {
  return new Promise((resolve, reject) => {
    const espeak = spawn('espeak-ng', ['-v', voice, '-s', String(wpm), '--stdout', text])
    const sox = spawn('sox', ['-t', 'wav', '-', '-t', 'raw', '-r', '16000', '-e', 'signed', '-b', '16', '-c', '1', '-'])
    espeak.stdout.pipe(sox.stdin)
    const chunks: Buffer[] = []
    sox.stdout.on('data', (c: Buffer) => chunks.push(c))
    sox.on('error', reject)
    espeak.on('error', reject)
    sox.on('close', (code) => {
      if (code !== 0) return reject(new Error(`sox exited ${code}`))
      const buf = Buffer.concat(chunks)
      const speech = new Int16Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length - (buf.length % 2)))
      const out = new Int16Array(speech.length + Math.round(padMs * 16))
      out.set(speech)
      resolve(out)
    })
  })
}

export function rms(pcm: Int16Array): number {
  if (pcm.length === 0) return 0
  let sum = 0
  for (const s of pcm) sum += s * s
  return Math.sqrt(sum / pcm.length)
}

let nextTurn = 1000
/**
 * One node's voice session: `say()` streams an utterance; `turn(id)` gathers the
 * audio/out frames and events the hub sends back for that turn.
 */
export class VoiceNode {
  readonly frames: Array<{ at: number; frame: DecodedFrame }> = []
  readonly events: Array<{ at: number; event: NodeEventJson }> = []

  constructor(readonly client: MqttClient, readonly nodeId: string, readonly base = 'mirrormesh') {
    client.on('message', (topic, payload) => {
      const at = Date.now()
      if (topic.endsWith('/audio/out')) this.frames.push({ at, frame: decodeAudioFrame(payload) })
      else if (topic.endsWith('/events')) this.events.push({ at, event: JSON.parse(payload.toString()) })
    })
  }

  async ready(): Promise<void> {
    await this.client.subscribeAsync([`${this.base}/nodes/${this.nodeId}/audio/out`, `${this.base}/nodes/${this.nodeId}/events`], { qos: 1 })
  }

  /**
   * Stream `pcm` as 20 ms frames. realtime: pace like a microphone. endFlag: mark the last
   * frame `end` (a node's local VAD does); without it the hub's VAD must find the end.
   */
  async say(pcm: Int16Array, { turnId = nextTurn++, realtime = true, endFlag = false, frameSamples = 320 }: { turnId?: number; realtime?: boolean; endFlag?: boolean; frameSamples?: number } = {}): Promise<{ turnId: number; endOfSpeechAt: number }> {
    const topic = `${this.base}/nodes/${this.nodeId}/audio/in`
    const started = Date.now()
    let seq = 0
    for (let off = 0; off < pcm.length; off += frameSamples) {
      const samples = pcm.subarray(off, Math.min(pcm.length, off + frameSamples))
      let flags: number = off === 0 ? AudioFlags.start : 0
      if (endFlag && off + frameSamples >= pcm.length) flags |= AudioFlags.end
      this.client.publish(topic, encodeAudioFrame({ flags, turnId, seq: seq++, samples }), { qos: 0 })
      if (realtime) {
        const due = started + ((off + frameSamples) / 16)
        const wait = due - Date.now()
        if (wait > 0) await sleep(wait)
      }
    }
    return { turnId, endOfSpeechAt: Date.now() }
  }

  control(turnId: number, flags: number, seq = 100000): void {
    this.client.publish(`${this.base}/nodes/${this.nodeId}/audio/in`, encodeAudioFrame({ flags, turnId, seq, samples: new Int16Array(0) }), { qos: 0 })
  }

  turn(turnId: number) {
    const frames = this.frames.filter((f): f is { at: number; frame: AudioFrame } => typeof f.frame !== 'string' && f.frame.turnId === turnId)
    const events = this.events.filter((e) => e.event.turnId === turnId).map((e) => e.event)
    const total = frames.reduce((n, f) => n + f.frame.samples.length, 0)
    const pcm = new Int16Array(total)
    let off = 0
    for (const f of frames) { pcm.set(f.frame.samples, off); off += f.frame.samples.length }
    return { frames, events, pcm, firstFrameAt: frames[0]?.at, ended: frames.some((f) => f.frame.flags & AudioFlags.end), cancelled: frames.some((f) => f.frame.flags & AudioFlags.cancel) }
  }

  event(turnId: number, type: string, timeoutMs = 15000): Promise<NodeEventJson> {
    return waitFor(() => this.events.find((e) => e.event.turnId === turnId && e.event.type === type)?.event, { timeoutMs, what: `${type} event for turn ${turnId}` })
  }

  /** Waits for the reply event and the end (or cancel) frame. */
  async reply(turnId: number, timeoutMs = 20000) {
    const reply = await this.event(turnId, 'reply', timeoutMs)
    if (reply.audio) await waitFor(() => this.turn(turnId).ended || this.turn(turnId).cancelled, { timeoutMs, what: `end frame of turn ${turnId}` })
    return { reply, ...this.turn(turnId) }
  }
}

/**
 * A live microphone on a writable stream (an agent's stdin with AUDIO_SOURCE=stdin): PCM16
 * frames at real-time pace, silence whenever nobody speaks, as a real microphone never
 * stops. `say(pcm)` queues speech and resolves with Date.now() once its last sample was
 * written; `stop()` ends the feed (the stream stays open).
 */
export function liveMic(stream: Writable, { frameSamples = 320 }: { frameSamples?: number } = {}): { say(pcm: Int16Array): Promise<number>; stop(): Promise<void> } {
  const silence = new Int16Array(frameSamples)
  const queue: Array<{ pcm: Int16Array; off: number; done: (at: number) => void }> = []
  let running = true
  let written = 0
  const started = Date.now()
  // The agent may die mid-test: a broken pipe ends the feed instead of crashing the runner.
  stream.on('error', () => { running = false })
  const loop = (async () => {
    while (running && !stream.destroyed) {
      const q = queue[0]
      let chunk: Int16Array = silence
      if (q) {
        chunk = q.pcm.subarray(q.off, Math.min(q.pcm.length, q.off + frameSamples))
        q.off += chunk.length
      }
      stream.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))
      written += chunk.length
      if (q && q.off >= q.pcm.length) { queue.shift(); q.done(Date.now()) }
      const wait = started + written / 16 - Date.now()
      if (wait > 0) await sleep(wait)
    }
  })()
  return {
    say: (pcm) => new Promise<number>((done) => { queue.push({ pcm, off: 0, done }) }),
    async stop() {
      running = false
      await loop
      for (const q of queue.splice(0)) q.done(Date.now())
    },
  }
}

/** Write PCM to a stream (an agent's stdin microphone) at real-time pace; resolves with Date.now() after the last sample. */
export async function speak(stream: Writable, pcm: Int16Array, { frameSamples = 320 }: { frameSamples?: number } = {}): Promise<number> {
  const started = Date.now()
  for (let off = 0; off < pcm.length; off += frameSamples) {
    const chunk = pcm.subarray(off, Math.min(pcm.length, off + frameSamples))
    stream.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))
    const wait = started + (off + frameSamples) / 16 - Date.now()
    if (wait > 0) await sleep(wait)
  }
  return Date.now()
}

/** A node agent on `mesh` whose microphone is its stdin, fed silence by liveMic until mic.stop(); no speaker. */
export async function startMicAgent(mesh: { url: string; passwords: Partial<Record<string, string>> }, nodeId: string, stateDir: string) {
  const agent = await startAgent({
    nodeId, mqttUrl: mesh.url, password: mesh.passwords[nodeId], stdin: true,
    env: { AUDIO_SOURCE: 'stdin', AUDIO_SINK: 'none', MIRRORMESH_STATE_DIR: stateDir },
  })
  return { agent, mic: liveMic(agent.proc.stdin!) }
}
