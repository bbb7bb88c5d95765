// The voice loop's wiring of the offline early endpoint: only offline turns may end early, an
// early endpoint ends the listener's utterance at once (reason 'endpoint') and answers it, and
// a turn opened by speech alone is marked resumable (it may continue an early-answered one).
import { EventEmitter } from 'node:events'
import { describe, expect, it } from 'vitest'
import { createLogger, type MeshClient } from '@mirrormesh/broker'
import type { AudioSink } from './audio/sink.js'
import type { Listener, UtteranceEnd, UtteranceStart } from './audio/listener.js'
import type { NodeStateMachine } from './state.js'
import { VoiceLoop, type OfflineAnswerer, type OfflineTurn } from './voice.js'

const log = createLogger({ name: 'test', level: 'silent' })

/** A listener that only does what the voice loop asks of it; endUtterance emits 'utterance-end' like the real one. */
class FakeListener extends EventEmitter {
  speaking = false
  ended: UtteranceEnd['reason'][] = []
  private turnId: number | undefined
  start(): Promise<void> {
    return Promise.resolve()
  }
  open(s: Omit<UtteranceStart, 'at'>): void {
    this.turnId = s.turnId
    this.emit('utterance-start', { ...s, at: Date.now() })
  }
  endUtterance(reason: UtteranceEnd['reason'] = 'manual'): void {
    if (this.turnId === undefined) return
    const turnId = this.turnId
    this.turnId = undefined
    this.ended.push(reason)
    this.emit('utterance-end', { turnId, endOfSpeechAt: Date.now(), reason, frames: 0 })
  }
}

/** The state machine as the voice loop sees it: a state and its 'state' event. */
const fakeState = (state: 'online' | 'offline') => Object.assign(new EventEmitter(), { state }) as unknown as NodeStateMachine
/** The hub goes away: what NodeStateMachine emits. */
function goOffline(state: NodeStateMachine): void {
  Object.assign(state, { state: 'offline' })
  state.emit('state', { from: 'online', to: 'offline', reason: 'broker_lost', at: Date.now() })
}

function setup(state: 'online' | 'offline') {
  const listener = new FakeListener()
  const played: number[] = []
  const sink = { play: (_pcm: Int16Array, o: { turnId: number }) => played.push(o.turnId), stop: () => {}, onFirstSample: () => {}, idle: Promise.resolve(), playing: false, close: async () => {} } as unknown as AudioSink
  const published: string[] = []
  const client = { publishRaw: async (topic: string) => void published.push(topic), publish: async () => {} } as unknown as MeshClient
  const sm = fakeState(state)
  const voice = new VoiceLoop({ nodeId: 'n', client, audioInTopic: 'audio/in', state: sm, listener: listener as unknown as Listener, sink, log })
  const begun: { turnId: number; resumable?: boolean; turn: OfflineTurn; finished: number[]; written: number[] }[] = []
  const answerer: OfflineAnswerer = {
    begin(turnId, opts) {
      const finished: number[] = []
      const written: number[] = []
      const turn: OfflineTurn = { write: (pcm) => void written.push(pcm[0]!), finish: async (at) => void finished.push(at) }
      begun.push({ turnId, resumable: opts?.resumable, turn, finished, written })
      return turn
    },
  }
  voice.offline = answerer
  voice.start()
  return { listener, voice, begun, published, played, sm }
}

describe('VoiceLoop and the offline early endpoint', () => {
  it('an offline turn that reports an early endpoint ends the utterance now and is answered', async () => {
    const { listener, begun } = setup('offline')
    listener.open({ turnId: 7, trigger: 'vad' })
    expect(begun).toHaveLength(1)
    const t = begun[0]!
    expect(t.resumable).toBe(true)
    expect(typeof t.turn.onEndpoint).toBe('function')
    expect(t.turn.onEndpoint!()).toBe(true)
    expect(listener.ended).toEqual(['endpoint'])
    expect(t.finished).toHaveLength(1)
    // Once the utterance is over, a late endpoint does nothing.
    expect(t.turn.onEndpoint!()).toBe(false)
    expect(listener.ended).toEqual(['endpoint'])
  })

  it('only speech-opened turns are resumable (not wake word, push-to-talk or wake-word barge-in)', () => {
    const { listener, begun } = setup('offline')
    listener.open({ turnId: 1, trigger: 'wake', score: 0.9 })
    listener.endUtterance('vad')
    listener.open({ turnId: 2, trigger: 'ptt' })
    listener.endUtterance('vad')
    listener.open({ turnId: 3, trigger: 'barge-in', score: 0.8 })
    listener.endUtterance('vad')
    listener.open({ turnId: 4, trigger: 'barge-in' })
    listener.endUtterance('vad')
    expect(begun.map((b) => [b.turnId, b.resumable])).toEqual([[1, false], [2, false], [3, false], [4, true]])
  })

  it('online turns never reach the offline answerer, so they cannot end early', () => {
    const { listener, begun, published } = setup('online')
    listener.open({ turnId: 9, trigger: 'vad' })
    listener.emit('frame', new Int16Array(320))
    listener.endUtterance('vad')
    expect(begun).toEqual([])
    expect(published.length).toBe(2) // first frame + end flag to the hub
  })
})

describe('VoiceLoop when the hub goes away mid-turn', () => {
  const frame = (n: number) => new Int16Array(320).fill(n)

  it('a turn being spoken goes on offline: its audio so far, then the rest, and it is answered there', () => {
    const { listener, begun, published, sm } = setup('online')
    listener.open({ turnId: 5, trigger: 'vad' })
    listener.emit('frame', frame(1))
    listener.emit('frame', frame(2))
    expect(published).toHaveLength(2)
    goOffline(sm)
    listener.emit('frame', frame(3))
    listener.endUtterance('vad')
    // Nothing more to the dead hub; the offline turn heard all three frames and answered.
    expect(published).toHaveLength(2)
    expect(begun.map((b) => b.turnId)).toEqual([5])
    expect(begun[0]!.written).toEqual([1, 2, 3])
    expect(begun[0]!.finished).toHaveLength(1)
  })

  it('a finished turn still waiting for the hub is answered offline; one the hub answered is not', () => {
    const { listener, voice, begun, sm } = setup('online')
    listener.open({ turnId: 6, trigger: 'vad' })
    listener.emit('frame', frame(7))
    listener.endUtterance('vad')
    listener.open({ turnId: 8, trigger: 'vad' })
    listener.emit('frame', frame(9))
    listener.endUtterance('vad')
    voice.onEvent({ v: 1, ts: Date.now(), type: 'reply', turnId: 8, text: 'Noon.', kind: 'skill', audio: false })
    goOffline(sm)
    // Turn 6 was superseded by turn 8 (one turn awaits a reply at a time); 8 was answered.
    expect(begun).toEqual([])

    const again = setup('online')
    again.listener.open({ turnId: 10, trigger: 'vad' })
    again.listener.emit('frame', frame(4))
    again.listener.endUtterance('vad')
    goOffline(again.sm)
    expect(again.begun.map((b) => [b.turnId, b.written, b.finished.length])).toEqual([[10, [4], 1]])
  })

  it('with no reply bundle the interrupted turn is recorded as failed, not streamed on', () => {
    const { listener, voice, published, sm } = setup('online')
    voice.offline = undefined
    listener.open({ turnId: 11, trigger: 'vad' })
    listener.emit('frame', frame(1))
    goOffline(sm)
    listener.emit('frame', frame(2))
    listener.endUtterance('vad')
    expect(published).toHaveLength(1)
  })
})

describe('VoiceLoop and the screen', () => {
  it('goes back to idle when a turn ends without audio (turn_error, text-only reply), not only after playback', () => {
    const listener = new FakeListener()
    const sink = { play: () => {}, stop: () => {}, onFirstSample: () => {}, idle: Promise.resolve(), playing: false, close: async () => {} } as unknown as AudioSink
    const client = { publishRaw: async () => {}, publish: async () => {} } as unknown as MeshClient
    const updates: Record<string, unknown>[] = []
    const screen = { state: {}, update: (u: Record<string, unknown>) => void updates.push(u) }
    const voice = new VoiceLoop({ nodeId: 'n', client, audioInTopic: 'audio/in', state: fakeState('online'), listener: listener as unknown as Listener, sink, screen: screen as never, log })
    voice.start()
    const activity = () => updates.filter((u) => 'activity' in u).map((u) => u.activity)
    listener.open({ turnId: 1, trigger: 'vad' })
    listener.endUtterance('vad')
    expect(activity().at(-1)).toBe('thinking')
    voice.onEvent({ v: 1, ts: 1, type: 'turn_error', turnId: 1, reason: 'turn_timeout' })
    expect(activity().at(-1)).toBe('idle')
    listener.open({ turnId: 2, trigger: 'vad' })
    listener.endUtterance('vad')
    voice.onEvent({ v: 1, ts: 1, type: 'reply', turnId: 2, text: 'It is noon.', kind: 'skill', audio: true })
    expect(activity().at(-1)).toBe('thinking') // audio follows: playback's end sets idle
    voice.onEvent({ v: 1, ts: 1, type: 'reply', turnId: 2, text: 'It is noon.', kind: 'skill', audio: false })
    expect(activity().at(-1)).toBe('idle')
  })
})
