// The turn manager's side of the online early end of turn, with fake engines: the node is told
// to stop, effects wait for the resume window, and speech resuming withdraws the early turn
// and is heard together with it.
import { describe, expect, it } from 'vitest'
import { AudioFlags, encodeAudioFrame, type EventBody, type HubEvent } from '@mirrormesh/broker'
import { FallbackChain, type AsrEngine, type AsrSession, type EngineHealth, type OfflineRecognizer, type SessionHooks } from '@mirrormesh/speech'
import { FakeLlm, FakeTts, fakeCtx, silentLog, testMetrics } from './fakes.js'
import type { EarlyEnd } from './listen.js'
import { sleep } from './queue.js'
import { SkillMatcher, builtinSkills } from './skills.js'
import { TurnManager } from './turns.js'

/** pocketsphinx stand-in: each session's samples are kept, the transcript is fixed. */
class RecordingAsr implements AsrEngine {
  readonly name = 'pocketsphinx'
  readonly sessions: number[] = []
  constructor(private readonly text: string) {}
  health(): EngineHealth { return 'ok' }
  start(): AsrSession {
    const i = this.sessions.push(0) - 1
    return { write: (p) => { this.sessions[i]! += p.length }, finish: async () => ({ text: this.text }) }
  }
}

/** A detector that finds a whole phrase once `after` frames of new audio have streamed in. */
function fakeEarly(text: string, after: number): EarlyEnd {
  const recognizer = {
    start: (_signal: AbortSignal, hooks: SessionHooks = {}) => {
      let n = 0
      return {
        write: () => { if (++n === after) setTimeout(() => hooks.onEndpoint?.({ text, confident: true, speechMs: 500, peakDbfs: -10, wordMs: 400, coverage: 0.8, latencyMs: 20, early: true }), 0) },
        finish: () => Promise.reject(new Error('unused')),
        kill: () => undefined,
      }
    },
  } as unknown as OfflineRecognizer
  return { recognizer, answersEarly: () => true }
}

function setup() {
  const m = testMetrics()
  const events: Array<EventBody<HubEvent>> = []
  const ended: number[] = []
  const env = fakeCtx().env
  const asr = new RecordingAsr('turn on the kitchen light')
  const turns = new TurnManager({
    asr: new FallbackChain('asr', [asr], m.metrics, silentLog),
    tts: new FallbackChain('tts', [new FakeTts('espeak', { chunks: 1, samplesPerChunk: 320 })], m.metrics, silentLog),
    llm: new FallbackChain('llm', [new FakeLlm('llama', ['Hi. '])], m.metrics, silentLog),
    early: fakeEarly('turn on the kitchen light', 3),
  }, new SkillMatcher(builtinSkills()), {
    sendAudio: () => undefined,
    sendEvent: (_n, e) => void events.push(e),
    skillEnv: () => env,
    room: () => 'kitchen',
    endTurn: (_n, turnId) => void ended.push(turnId),
  }, { maxConcurrent: 4, queueMax: 4, maxUtteranceMs: 5000, turnTimeoutMs: 5000, persona: '', llmMaxTokens: 20, frameSamples: 320, leadMs: 0, earlyEndResumeMs: 150 }, m.metrics, silentLog)
  const frame = (turnId: number, seq: number, flags = 0) => turns.onAudio('kitchen', encodeAudioFrame({ flags: (seq === 0 ? AudioFlags.start : 0) | flags, turnId, seq, samples: new Int16Array(320).fill(500) }))
  const replies = () => events.filter((e) => e.type === 'reply')
  return { ...m, turns, env, asr, ended, frame, replies }
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 5000
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

describe('TurnManager: online early end of turn', () => {
  it('ends the turn, tells the node, answers, and acts only once the resume window has passed', async () => {
    const t = setup()
    for (let seq = 0; seq < 3; seq++) t.frame(1, seq)
    await until(() => t.replies().length === 1, 'reply')
    expect(t.ended).toEqual([1])
    expect(t.env.acts).toEqual([]) // held: the speaker may still go on
    await until(() => t.env.acts.length === 1, 'the light switched')
    expect(t.env.acts[0]).toMatchObject({ component: 'light', room: 'kitchen', state: 'on' })
    expect(await t.value('mirrormesh_early_end_total', { outcome: 'answered' })).toBe(1)
  })

  it('speech resuming within the window withdraws the early turn: its effects never happen, the new turn hears both parts', async () => {
    const t = setup()
    for (let seq = 0; seq < 3; seq++) t.frame(1, seq)
    await until(() => t.ended.length === 1, 'early end')
    // The speaker goes on: the node reopens the same turn (cancel + start), 2 frames, then its end flag.
    t.frame(1, 0, AudioFlags.cancel)
    t.frame(1, 1, AudioFlags.end)
    await until(() => t.replies().filter((r) => 'turnId' in r && r.turnId === 1).length === 1, 'the whole sentence answered')
    await sleep(300) // past the window: the withdrawn turn's action would have fired by now
    expect(t.env.acts).toHaveLength(1) // the new turn's, once
    expect(t.asr.sessions[1]).toBe(t.asr.sessions[0]! + 2 * 320) // the early turn's audio first, then its own
    expect(await t.value('mirrormesh_early_end_total', { outcome: 'resumed' })).toBe(1)
  })

  it('a new turn under another id (a button press, a wake word) is a new request: the early answer stands', async () => {
    const t = setup()
    for (let seq = 0; seq < 3; seq++) t.frame(1, seq)
    await until(() => t.ended.length === 1, 'early end')
    t.frame(2, 0)
    t.frame(2, 1, AudioFlags.end)
    await until(() => t.env.acts.length === 2, 'both lights')
    expect(t.asr.sessions[1]).toBe(2 * 320) // its own audio only
    expect(await t.value('mirrormesh_early_end_total', { outcome: 'resumed' })).toBe(0)
  })
})
