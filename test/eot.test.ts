// Online early end of turn, end to end (issue #12, README "End of turn"): a real hub (embedded
// broker, pocketsphinx, Silero VAD, espeak-ng) and a real node agent (microphone on stdin,
// speaker recorded to a file). A short command is answered before the node's own VAD would
// have ended it, and the node stops streaming when told; a sentence with a pause inside is
// answered once, whole — never cut off at the pause.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AudioFlags, decodeAudioFrame } from '@mirrormesh/broker'
import { which } from '@mirrormesh/speech'
import { killAll, sleep, startAgent, tempDir, waitFor, type AgentProc } from './support/harness.js'
import { BASE, createMesh, type Mesh } from './support/mesh.js'
import { liveMic, synth } from './support/voice.js'

const haveTools = !!which('pocketsphinx_continuous') && !!which('espeak-ng')
// CI installs pocketsphinx and espeak-ng: there a missing one fails instead of skipping.
const run = haveTools || process.env.CI ? describe : describe.skip

interface Seen { at: number; topic: string; payload: Buffer }

/** espeak-ng pads its speech with quiet: the speech itself (first to last sample above ~-40 dBFS). */
function trim(pcm: Int16Array): Int16Array {
  const loud = (i: number) => Math.abs(pcm[i]!) > 328
  let a = 0
  let b = pcm.length - 1
  while (a < b && !loud(a)) a++
  while (b > a && !loud(b)) b--
  return pcm.slice(a, b + 1)
}

run('online early end of turn with a real hub and node agent', () => {
  let mesh: Mesh
  let agent: AgentProc
  let mic: ReturnType<typeof liveMic>
  let watch: MqttClient
  let played: string
  const seen: Seen[] = []
  const json = (s: Seen) => JSON.parse(s.payload.toString()) as Record<string, unknown>
  const since = (t0: number, suffix: string) => seen.filter((s) => s.at >= t0 && s.topic.endsWith(suffix))
  const events = (t0: number, type: string) => since(t0, '/events').map(json).filter((e) => e.type === type)

  beforeAll(async () => {
    mesh = await createMesh('embedded', { hubEnv: { LOG_PII: 'true', LOG_LEVEL: 'debug', ROOMS: 'kitchen|hall' } })
    const dir = await tempDir('mm-eot-node-')
    played = join(dir, 'played.jsonl')
    agent = await startAgent({
      nodeId: 'kitchen', mqttUrl: mesh.url, password: mesh.passwords.kitchen, stdin: true,
      env: { AUDIO_SOURCE: 'stdin', AUDIO_SINK: 'file', AUDIO_SINK_FILE: played, MIRRORMESH_STATE_DIR: dir, VAD_END_SILENCE_MS: '1200', LOG_LEVEL: 'debug' },
      // 1200 ms rather than the default 600: on a loaded CI box the hub's probe may lag, and the
      // node's own VAD must not end the turn first (the early end is what is under test).
    })
    mic = liveMic(agent.proc.stdin!)
    await agent.waitState('online', 15_000)
    // A hub-role watcher: what the node streams, what the hub tells it, the house actions.
    watch = await mesh.client('ops')
    watch.on('message', (topic, payload) => seen.push({ at: Date.now(), topic, payload }))
    await watch.subscribeAsync([`${BASE}/nodes/kitchen/#`, `${BASE}/actions/#`], { qos: 0 })
  }, 45_000)

  afterAll(async () => {
    await mic?.stop()
    await watch?.endAsync().catch(() => undefined)
    await killAll()
  })

  it('a short command ends early and is answered; the node stops streaming and sends no end flag', async () => {
    const t0 = Date.now()
    const lastSample = await mic.say(trim(await synth('what time is it')))
    const end = await waitFor(() => since(t0, '/turn/end')[0], { timeoutMs: 10_000, what: 'nodes/kitchen/turn/end from the hub' })
    const { turnId } = json(end) as { turnId: number }
    const reply = await waitFor(() => events(t0, 'reply').find((e) => e.turnId === turnId), { timeoutMs: 15_000, what: 'reply' })
    expect(reply.text).toMatch(/^It's \d{1,2}:\d{2} (AM|PM)/)
    expect(events(t0, 'transcript').find((e) => e.turnId === turnId)?.text).toBe('what time is it')
    await sleep(1400) // past the node's own VAD end: an end flag would be here by now
    const frames = since(t0, '/audio/in').map((s) => ({ at: s.at, f: decodeAudioFrame(s.payload) }))
      .flatMap(({ at, f }) => (typeof f === 'string' || f.turnId !== turnId ? [] : [{ at, f }]))
    expect(frames.length).toBeGreaterThan(10)
    expect(frames.some(({ f }) => f.flags & AudioFlags.end), 'the node sent its own end flag after the hub ended the turn').toBe(false)
    // Frames in flight when the message arrived may still land; nothing is streamed after that.
    expect(frames.filter(({ at }) => at > end.at + 150)).toHaveLength(0)
    expect(agent.out.text).toContain('the hub ended the turn early: streaming stopped')
    const firstOut = since(t0, '/audio/out').find((s) => { const f = decodeAudioFrame(s.payload); return typeof f !== 'string' && f.turnId === turnId })
    // A figure, not a goal asserted here (README "End of turn" has the bench's p50/p95).
    console.log(`early end: last spoken sample → turn/end ${end.at - lastSample} ms, → first reply frame at the node ${firstOut ? firstOut.at - lastSample : 'none'} ms`)
  }, 30_000)

  it('a sentence with a pause inside is not cut off: one answer, for the whole sentence, one light switched', async () => {
    await sleep(1500) // the last reply has played
    const t0 = Date.now()
    // A 350 ms pause: well inside the node's VAD end silence, so one utterance as far as the node knows.
    const first = trim(await synth('turn on the kitchen light'))
    const rest = trim(await synth('please'))
    const sentence = new Int16Array(first.length + 350 * 16 + rest.length)
    sentence.set(first)
    sentence.set(rest, first.length + 350 * 16)
    await mic.say(sentence)
    const replies = () => events(t0, 'reply')
    await waitFor(() => replies().length > 0, { timeoutMs: 15_000, what: 'a reply' })
    await sleep(2500) // the resume window and any second answer
    expect(replies(), JSON.stringify(replies())).toHaveLength(1)
    const actions = since(t0, '/actions/light').map(json)
    expect(actions, JSON.stringify(actions)).toHaveLength(1)
    expect(actions[0]).toMatchObject({ room: 'kitchen', state: 'on' })
    const turnId = replies()[0]!.turnId
    const transcript = events(t0, 'transcript').filter((e) => e.turnId === turnId).at(-1)?.text // a continuation keeps the early turn's id
    const resumed = mesh.hub.out.text.includes('speech resumed after an early end of turn')
    // Cut at the pause, the answer must be for the whole sentence, heard as one.
    if (resumed) expect(transcript).toBe('turn on the kitchen light please')
    expect(await mesh.metric('mirrormesh_early_end_total', { outcome: 'resumed' })).toBe(resumed ? 1 : 0)
    // One answer played through: any other turn's audio after t0 (a withdrawn early answer) was stopped.
    const records = existsSync(played) ? readFileSync(played, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { turnId: number; startAt: number; stopped?: boolean }).filter((r) => r.startAt >= t0) : []
    expect(records.filter((r) => r.turnId !== turnId && !r.stopped), JSON.stringify(records)).toEqual([])
    expect(records.some((r) => r.turnId === turnId)).toBe(true)
    console.log(`pause inside a sentence: ${resumed ? 'cut at the pause, withdrawn and answered whole' : 'not cut'} → "${transcript}"`)
  }, 30_000)
})
