// The voice pipeline end to end through the real broker: a test mirror streams speech
// (espeak-ng, synthesized now) as audio/in frames; the hub answers with events and
// audio/out frames. Engines here: Silero VAD, pocketsphinx (grammar), espeak-ng, and a
// tiny random-weight GGUF through node-llama-cpp (its words are nonsense: we assert mechanics).
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { AudioFlags, encodeAudioFrame } from '@mirrormesh/broker'
import { killAll, sleep, tempDir, waitFor } from './support/harness.js'
import { BASE, createMesh } from './support/mesh.js'
import { makeTinyGguf } from './support/tiny-gguf.js'
import { VoiceNode, rms, synth } from './support/voice.js'

const EXTRA = 'tell me a joke|what should i cook tonight'
let lightCmd: Int16Array
let joke: Int16Array

beforeAll(async () => {
  lightCmd = await synth('turn on the kitchen light', { padMs: 900 })
  joke = await synth('tell me a joke', { padMs: 900 })
})

afterEach(async () => {
  await killAll()
})

async function voiceMesh(hubEnv: Record<string, string> = {}, nodeId = 'kitchen', readyPath?: string) {
  const mesh = await createMesh('embedded', { readyPath, hubEnv: { ASR_GRAMMAR_EXTRA: EXTRA, VAD_END_SILENCE_MS: '500', ...hubEnv } })
  const node = new VoiceNode(await mesh.client(nodeId), nodeId)
  await node.ready()
  return { mesh, node }
}

describe('voice pipeline', () => {
  it('"turn on the kitchen light": transcript, light command over MQTT, reply event and spoken audio back', async () => {
    const { mesh, node } = await voiceMesh()
    const watcher = await mesh.client('dash')
    const actions: Array<Record<string, unknown>> = []
    watcher.on('message', (_t, p) => actions.push(JSON.parse(p.toString())))
    await watcher.subscribeAsync(`${BASE}/actions/#`)

    const { turnId, endOfSpeechAt } = await node.say(lightCmd) // no end flag: the hub's VAD ends the turn
    const transcript = await node.event(turnId, 'transcript')
    expect(transcript.text).toContain('turn on the kitchen light')
    const { reply, pcm, frames, firstFrameAt } = await node.reply(turnId)
    expect(reply).toMatchObject({ kind: 'skill', text: 'Turning on the kitchen light.', audio: true })
    await waitFor(() => actions.length > 0, { what: 'light action published' })
    expect(actions[0]).toMatchObject({ action: 'set', room: 'kitchen', state: 'on', nodeId: 'kitchen' })
    // Non-silent speech of plausible length for a short sentence.
    const seconds = pcm.length / 16000
    expect(seconds).toBeGreaterThan(0.8)
    expect(seconds).toBeLessThan(5)
    expect(rms(pcm)).toBeGreaterThan(500)
    const seqs = frames.map((f: { frame: { seq: number } }) => f.frame.seq)
    expect(seqs).toEqual(seqs.map((_: number, i: number) => i))
    expect(frames[0]!.frame.flags & AudioFlags.start).toBeTruthy()
    // First audio well before the end of the reply: the hub streams.
    expect(firstFrameAt! - endOfSpeechAt).toBeLessThan(3000)
    expect(await mesh.metric('mirrormesh_ttfa_seconds_count', { side: 'hub', kind: 'skill' })).toBe(1)
    watcher.end(true)
  })

  it('ASR falls back to pocketsphinx and TTS to espeak-ng when the sherpa models are missing', async () => {
    const { mesh, node } = await voiceMesh()
    const { turnId } = await node.say(await synth('what time is it', { padMs: 900 }))
    const { reply } = await node.reply(turnId)
    expect(reply.text).toMatch(/^It's \d{1,2}:\d{2} (AM|PM)\.$/)
    const hour = new Date().getHours() % 12 || 12
    expect(reply.text).toContain(`${hour}:`)
    expect(await mesh.metric('mirrormesh_fallback_total', { stage: 'asr', from: 'sherpa', to: 'pocketsphinx', reason: 'model_missing' })).toBeGreaterThanOrEqual(1)
    expect(await mesh.metric('mirrormesh_fallback_total', { stage: 'tts', from: 'sherpa', to: 'espeak', reason: 'model_missing' })).toBeGreaterThanOrEqual(1)
    // Logged once with the reason, not once per turn.
    expect(mesh.hub.out.text).toMatch(/"engine":"sherpa","reason":"model_missing".*engine not available/)
  })

  it('an unhealthy LLM: the turn hears "unavailable", /readyz and engine health say so, the hub lives', async () => {
    const dir = await tempDir()
    const bad = join(dir, 'broken.gguf')
    await writeFile(bad, Buffer.from('GGUF but not really a model'))
    const { mesh, node } = await voiceMesh({ LLM_MODEL: bad }, 'kitchen', '/healthz')
    await waitFor(async () => (await mesh.hub.http('/readyz')).status === 503, { what: 'readyz 503 for the broken LLM', timeoutMs: 15000 })
    expect((await mesh.hub.http('/readyz')).body.checks.llm).toBe(false)
    expect(await mesh.metric('mirrormesh_engine_health', { engine: 'llm:llama' })).toBe(0)
    const { turnId } = await node.say(joke)
    expect((await node.event(turnId, 'transcript')).text).toBe('tell me a joke')
    const { reply, pcm } = await node.reply(turnId)
    expect(reply).toMatchObject({ kind: 'unavailable', audio: true })
    expect(reply.text).toMatch(/unavailable/)
    expect(await mesh.metric('mirrormesh_fallback_total', { stage: 'llm', from: 'llama', to: 'canned' })).toBeGreaterThanOrEqual(1)
    expect(rms(pcm)).toBeGreaterThan(500)
    expect((await mesh.hub.http('/healthz')).status).toBe(200)
  })

  it('an LLM turn streams generated text through TTS (tiny random GGUF)', async () => {
    const dir = await tempDir()
    const model = join(dir, 'tiny.gguf')
    await makeTinyGguf(model, 7)
    const { mesh, node } = await voiceMesh({ LLM_MODEL: model, LLM_MAX_TOKENS: '40' }, 'kitchen', '/healthz')
    await waitFor(async () => (await mesh.hub.http('/readyz')).status === 200, { what: 'LLM loaded', timeoutMs: 20000 })
    const { turnId } = await node.say(joke)
    const { reply } = await node.reply(turnId, 30000)
    expect(reply.kind).toBe('llm')
    expect(reply.text.length).toBeGreaterThan(0)
    expect(reply.text).not.toMatch(/unavailable/)
    expect(await mesh.metric('mirrormesh_stage_seconds_count', { stage: 'llm_first_token' })).toBe(1)
  })

  it('barge-in: new speech during the reply stops the frames and sends cancel', async () => {
    const { mesh, node } = await voiceMesh({ ESPEAK_SPEED_WPM: '110', EARLY_END_SILENCE_MS: '0' }) // the reply must start after say() returns (no early end during the pad)
    const { turnId } = await node.say(await synth('what is the weather like in the kitchen', { padMs: 900 }))
    await waitFor(() => node.turn(turnId).frames.length > 0, { what: 'first reply frame', timeoutMs: 10000 })
    await sleep(200)
    node.control(turnId, AudioFlags.bargeIn)
    await waitFor(() => node.turn(turnId).cancelled, { what: 'cancel frame', timeoutMs: 3000 })
    const before = node.turn(turnId).frames.length
    await sleep(700)
    expect(node.turn(turnId).frames.length).toBe(before) // nothing after the cancel
    expect(node.turn(turnId).ended).toBe(false)
    // Less audio was sent than the full reply would take (≈2 s at this speed).
    expect(node.turn(turnId).pcm.length / 16000).toBeLessThan(1.5)
    expect(await mesh.metric('mirrormesh_barge_in_seconds_count')).toBe(1)
    // The control frame has its own sequence number: it must not count as lost audio.
    expect(await mesh.metric('mirrormesh_audio_frames_lost_total')).toBe(0)
  })

  it('MAX_CONCURRENT_SESSIONS=1, QUEUE_MAX=1: of three simultaneous turns one is answered, one queued then answered, one told busy', async () => {
    const { mesh, node: a } = await voiceMesh({ MAX_CONCURRENT_SESSIONS: '1', QUEUE_MAX: '1' }, 'a')
    const b = new VoiceNode(await mesh.client('b'), 'b')
    const c = new VoiceNode(await mesh.client('hall'), 'hall')
    await b.ready()
    await c.ready()
    const speech = await synth('are you there', { padMs: 700 })
    const [ta, tb, tc] = await Promise.all([a.say(speech), sleep(30).then(() => b.say(speech)), sleep(60).then(() => c.say(speech))])
    const first = await a.reply(ta.turnId)
    expect(first.reply.text).toBe("Yes, I'm here.")
    const second = await b.reply(tb.turnId, 30000)
    expect(second.reply.text).toBe("Yes, I'm here.")
    expect(second.firstFrameAt).toBeGreaterThan(first.firstFrameAt!)
    const busy = await c.event(tc.turnId, 'busy')
    expect(busy.type).toBe('busy')
    await waitFor(() => c.turn(tc.turnId).ended, { what: 'busy reply audio' })
    expect(rms(c.turn(tc.turnId).pcm)).toBeGreaterThan(500)
    expect(c.events.some((e: { event: { type: string } }) => e.event.type === 'reply')).toBe(false)
    expect(await mesh.metric('mirrormesh_turns_total', { outcome: 'busy' })).toBe(1)
  })

  it('malformed audio frames are counted by reason and dropped; the hub keeps answering', async () => {
    const { mesh, node } = await voiceMesh()
    const topic = `${BASE}/nodes/kitchen/audio/in`
    const good = encodeAudioFrame({ flags: 0, turnId: 5, seq: 0, samples: new Int16Array(320) })
    const odd = Buffer.concat([good, Buffer.from([1])])
    const badMagic = Buffer.from(good); badMagic[0] = 0x00
    const long = encodeAudioFrame({ flags: 0, turnId: 5, seq: 0, samples: new Int16Array(2000) })
    for (const p of [Buffer.from('hello'), badMagic, odd, long, good]) node.client.publish(topic, p)
    for (const reason of ['short', 'magic', 'odd_length', 'too_long', 'unknown_turn']) {
      await waitFor(async () => (await mesh.metric('mirrormesh_audio_frames_dropped_total', { reason })) >= 1, { what: `dropped ${reason}` })
    }
    const { turnId } = await node.say(await synth('are you there', { padMs: 700 }))
    expect((await node.reply(turnId)).reply.text).toBe("Yes, I'm here.")
  })
})
