// The orchestrator with fake engines: admission, busy, drain, timeout, barge-in and
// errors, as the node sees them (events and audio/out) and as the metrics count them.
import { describe, expect, it } from 'vitest'
import { AudioFlags, decodeAudioFrame, encodeAudioFrame, type EventBody, type HubEvent } from '@mirrormesh/broker'
import { FallbackChain, type AsrEngine, type AsrSession, type EngineHealth, type TtsEngine } from '@mirrormesh/speech'
import { FakeAsr, FakeLlm, FakeTts, FakeVad, fakeCtx, silentLog, testMetrics } from './fakes.js'
import { sleep } from './queue.js'
import { SkillMatcher, builtinSkills, type Skill } from './skills.js'
import { TurnManager, phrasesSpoken, type TurnOptions } from './turns.js'

/** An ASR whose result never comes (until the turn aborts). */
class HangingAsr implements AsrEngine {
  readonly name = 'hang'
  health(): EngineHealth { return 'ok' }
  start(signal: AbortSignal): AsrSession {
    return { write: () => undefined, finish: () => new Promise((_r, reject) => signal.addEventListener('abort', () => reject(signal.reason))) }
  }
}

function setup(opts: Partial<TurnOptions> & { asr?: AsrEngine; tts?: TtsEngine; skills?: Skill[] } = {}) {
  const m = testMetrics()
  const events: Array<{ nodeId: string; event: EventBody<HubEvent> }> = []
  const audio: Array<{ nodeId: string; flags: number; seq: number; turnId: number }> = []
  const io = {
    sendAudio(nodeId: string, frame: Buffer) {
      const f = decodeAudioFrame(frame)
      if (typeof f === 'string') throw new Error(f)
      audio.push({ nodeId, flags: f.flags, seq: f.seq, turnId: f.turnId })
    },
    sendEvent(nodeId: string, event: EventBody<HubEvent>) { events.push({ nodeId, event }) },
    skillEnv: () => fakeCtx().env,
    room: () => 'kitchen',
  }
  const chain = <E extends AsrEngine | TtsEngine>(stage: string, e: E) => new FallbackChain(stage, [e], m.metrics, silentLog)
  const turns = new TurnManager({
    vad: new FakeVad(1000),
    asr: chain('asr', opts.asr ?? new FakeAsr('sherpa', { text: 'are you there' })),
    tts: chain('tts', opts.tts ?? new FakeTts('espeak', { chunks: 2, samplesPerChunk: 640 })),
    llm: new FallbackChain('llm', [new FakeLlm('llama', ['Hi. '])], m.metrics, silentLog),
  }, new SkillMatcher(opts.skills ?? builtinSkills()), io, {
    maxConcurrent: 4, queueMax: 4, maxUtteranceMs: 5000, turnTimeoutMs: 5000, persona: '', llmMaxTokens: 20, frameSamples: 320, leadMs: 0, ...opts,
  }, m.metrics, silentLog)
  /** A whole utterance: start, audio, end. */
  const say = (nodeId: string, turnId: number, frames = 3) => {
    for (let seq = 0; seq < frames; seq++) {
      const flags = (seq === 0 ? AudioFlags.start : 0) | (seq === frames - 1 ? AudioFlags.end : 0)
      turns.onAudio(nodeId, encodeAudioFrame({ flags, turnId, seq, samples: new Int16Array(320).fill(100) }))
    }
  }
  const control = (nodeId: string, turnId: number, flags: number) =>
    turns.onAudio(nodeId, encodeAudioFrame({ flags, turnId, seq: 0, samples: new Int16Array(0) }))
  const eventsOf = (nodeId: string, type: string) => events.filter((e) => e.nodeId === nodeId && e.event.type === type).map((e) => e.event)
  return { ...m, turns, events, audio, say, control, eventsOf }
}

async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

describe('TurnManager', () => {
  it('a skill turn: transcript, reply_partial, audio start…end, reply; counted ok with hub TTFA', async () => {
    const t = setup()
    t.say('kitchen', 1)
    await until(() => t.eventsOf('kitchen', 'reply').length === 1, 'reply')
    expect(t.events.map((e) => e.event.type)).toEqual(['transcript', 'reply_partial', 'reply'])
    expect(t.eventsOf('kitchen', 'transcript')[0]).toEqual({ type: 'transcript', turnId: 1, text: 'are you there' })
    expect(t.eventsOf('kitchen', 'reply_partial')[0]).toEqual({ type: 'reply_partial', turnId: 1, text: "Yes, I'm here." })
    expect(t.eventsOf('kitchen', 'reply')[0]).toEqual({ type: 'reply', turnId: 1, text: "Yes, I'm here.", kind: 'skill', audio: true })
    expect(t.audio.map((a) => a.seq)).toEqual(t.audio.map((_, i) => i))
    expect(t.audio[0]!.flags & AudioFlags.start).toBeTruthy()
    expect(t.audio.at(-1)!.flags).toBe(AudioFlags.end)
    await until(() => t.turns.active === 0, 'turn finished')
    expect(await t.value('mirrormesh_turns_total', { outcome: 'ok', kind: 'skill' })).toBe(1)
    expect(await t.count('mirrormesh_ttfa_seconds', { side: 'hub', kind: 'skill' })).toBe(1)
    expect(await t.count('mirrormesh_stage_seconds', { stage: 'asr', engine: 'sherpa' })).toBe(1)
    expect(await t.count('mirrormesh_stage_seconds', { stage: 'tts_first_chunk', engine: 'espeak' })).toBe(1)
  })

  it('an LLM turn: kind llm, first-token stage timing', async () => {
    const t = setup({ asr: new FakeAsr('sherpa', { text: 'tell me a joke' }) })
    t.say('kitchen', 1)
    await until(() => t.eventsOf('kitchen', 'reply').length === 1, 'reply')
    expect(t.eventsOf('kitchen', 'reply')[0]).toMatchObject({ text: 'Hi.', kind: 'llm', audio: true })
    await until(() => t.turns.active === 0, 'turn finished')
    expect(await t.count('mirrormesh_stage_seconds', { stage: 'llm_first_token', engine: 'llama' })).toBe(1)
  })

  it('beyond the slots and the queue a turn hears "busy" without taking a slot', async () => {
    const t = setup({ maxConcurrent: 1, queueMax: 0, asr: new HangingAsr(), turnTimeoutMs: 300 })
    t.say('a', 1)
    t.say('b', 1)
    expect(t.eventsOf('b', 'busy')).toEqual([{ type: 'busy', turnId: 1 }])
    await until(() => t.audio.some((a) => a.nodeId === 'b' && a.flags & AudioFlags.end), 'busy audio')
    expect(t.turns.active).toBe(1)
    expect(await t.value('mirrormesh_turns_total', { outcome: 'busy', kind: 'busy' })).toBe(1)
    expect(await t.value('mirrormesh_audio_frames_dropped_total', { reason: 'busy' })).toBe(3)
    expect(t.eventsOf('b', 'reply')).toEqual([])
  })

  it('a queued turn runs when the slot frees; cancelled while queued it never runs', async () => {
    const t = setup({ maxConcurrent: 1, queueMax: 2 })
    t.say('a', 1)
    t.say('b', 1)
    t.say('c', 1)
    expect(t.turns.queued).toBe(2)
    t.control('c', 1, AudioFlags.cancel)
    expect(t.turns.queued).toBe(1)
    await until(() => t.eventsOf('b', 'reply').length === 1, 'b answered')
    await until(() => t.turns.active === 0, 'idle')
    expect(t.eventsOf('c', 'transcript')).toEqual([])
    expect(await t.value('mirrormesh_turns_total', { outcome: 'ok' })).toBe(2)
  })

  it('barge-in while speaking: audio stops with a cancel frame, no reply, counted barge_in with its latency', async () => {
    const t = setup({ tts: new FakeTts('espeak', { chunks: 1, samplesPerChunk: 320 * 100 }) }) // 2 s of speech
    t.say('kitchen', 1)
    await until(() => t.audio.length >= 3, 'speaking')
    t.control('kitchen', 1, AudioFlags.bargeIn)
    await until(() => t.turns.active === 0, 'turn ended')
    const last = t.audio.at(-1)!
    expect(last.flags).toBe(AudioFlags.cancel)
    // Stopped part-way: not the 100 frames of the whole sentence, and no end frame.
    expect(t.audio.length).toBeLessThan(100)
    expect(t.audio.some((a) => a.flags & AudioFlags.end)).toBe(false)
    await sleep(50)
    expect(t.audio.at(-1)).toBe(last) // nothing after the cancel
    expect(t.eventsOf('kitchen', 'reply')).toEqual([])
    expect(t.eventsOf('kitchen', 'turn_error')).toEqual([])
    expect(await t.value('mirrormesh_turns_total', { outcome: 'barge_in', kind: 'skill' })).toBe(1)
    expect(await t.count('mirrormesh_barge_in_seconds')).toBe(1)
    expect(await t.value('mirrormesh_audio_frames_lost_total')).toBe(0)
  })

  it('a turn past its timeout ends with turn_error turn_timeout', async () => {
    const t = setup({ asr: new HangingAsr(), turnTimeoutMs: 80 })
    t.say('kitchen', 1)
    await until(() => t.eventsOf('kitchen', 'turn_error').length === 1, 'turn_error')
    expect(t.eventsOf('kitchen', 'turn_error')[0]).toEqual({ type: 'turn_error', turnId: 1, reason: 'turn_timeout' })
    await until(() => t.turns.active === 0, 'released')
    expect(await t.value('mirrormesh_turns_total', { outcome: 'turn_timeout' })).toBe(1)
  })

  it('a stage error ends the turn with turn_error; the manager keeps answering', async () => {
    const boom: Skill = { id: 'boom', offline: false, phrases: ['are you there'], handle: () => { throw new Error('bad skill') } }
    const t = setup({ skills: [boom] })
    t.say('kitchen', 1)
    await until(() => t.eventsOf('kitchen', 'turn_error').length === 1, 'turn_error')
    expect(t.eventsOf('kitchen', 'turn_error')[0]).toEqual({ type: 'turn_error', turnId: 1, reason: 'error' })
    await until(() => t.turns.active === 0, 'released')
    expect(await t.value('mirrormesh_turns_total', { outcome: 'error' })).toBe(1)
  })

  it('nothing heard → "didn\'t catch that", kind none', async () => {
    const t = setup({ asr: new FakeAsr('sherpa', { text: '' }) })
    t.say('kitchen', 1)
    await until(() => t.eventsOf('kitchen', 'reply').length === 1, 'reply')
    expect(t.eventsOf('kitchen', 'reply')[0]).toMatchObject({ text: phrasesSpoken.didntCatch, kind: 'none' })
  })

  it('drain waits for running turns, then new turns hear busy (draining)', async () => {
    const t = setup()
    t.say('kitchen', 1)
    const drained = t.turns.drain(10_000)
    expect(t.turns.draining).toBe(true)
    await drained
    expect(t.turns.active).toBe(0)
    expect(t.eventsOf('kitchen', 'reply')).toHaveLength(1)
    t.say('kitchen', 2)
    expect(t.eventsOf('kitchen', 'busy')).toEqual([{ type: 'busy', turnId: 2 }])
    expect(await t.value('mirrormesh_turns_total', { outcome: 'draining', kind: 'busy' })).toBe(1)
  })

  it('close() (the hub stopping) aborts a turn still listening and drops the queued ones at once', async () => {
    const t = setup({ maxConcurrent: 1, queueMax: 2 })
    // Only a start frame: the turn listens until more audio or the 5 s utterance limit.
    t.turns.onAudio('a', encodeAudioFrame({ flags: AudioFlags.start, turnId: 1, seq: 0, samples: new Int16Array(320) }))
    t.say('b', 1)
    expect([t.turns.active, t.turns.queued]).toEqual([1, 1])
    const closedAt = Date.now()
    t.turns.close()
    await until(() => t.turns.active === 0 && t.turns.queued === 0, 'no turn left')
    expect(Date.now() - closedAt).toBeLessThan(1000)
    expect(t.eventsOf('b', 'transcript')).toEqual([])
    expect(await t.value('mirrormesh_turns_total', { outcome: 'hub_stopping' })).toBe(1)
  })

  it('a drain ends as soon as the turns it waits for are cancelled, not at its timeout', async () => {
    const t = setup({ maxConcurrent: 1, queueMax: 2 })
    t.turns.onAudio('a', encodeAudioFrame({ flags: AudioFlags.start, turnId: 1, seq: 0, samples: new Int16Array(320) }))
    t.say('b', 1)
    t.control('a', 1, AudioFlags.cancel) // the running one ends…
    await until(() => t.turns.active === 1 && t.turns.queued === 0, 'b admitted')
    t.control('b', 1, AudioFlags.cancel)
    const started = Date.now()
    await t.turns.drain(10_000)
    expect(Date.now() - started).toBeLessThan(2000)
  })

  it('onNodeTtfa records the node side; absurd values are ignored', async () => {
    const t = setup()
    t.turns.onNodeTtfa('kitchen', { v: 1, ts: 0, type: 'ttfa', turnId: 1, ms: 420, kind: 'skill' })
    t.turns.onNodeTtfa('kitchen', { v: 1, ts: 0, type: 'ttfa', turnId: 2, ms: 90_000, kind: 'skill' })
    expect(await t.count('mirrormesh_ttfa_seconds', { side: 'node', kind: 'skill' })).toBe(1)
  })
})
