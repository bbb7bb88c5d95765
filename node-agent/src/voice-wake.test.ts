// Arbitration evidence: a turn the wake word opened, online, tells the hub the detector score
// (the `wake` event) so the hub can pick among mirrors that all woke; other turns send none.
import { EventEmitter } from 'node:events'
import { describe, expect, it } from 'vitest'
import { createLogger, type MeshClient } from '@mirrormesh/broker'
import type { AudioSink } from './audio/sink.js'
import type { Listener, UtteranceStart } from './audio/listener.js'
import type { NodeStateMachine } from './state.js'
import { VoiceLoop } from './voice.js'

function setup(state: 'online' | 'offline') {
  const listener = Object.assign(new EventEmitter(), { speaking: false, start: () => Promise.resolve(), endUtterance: () => {} })
  const events: unknown[] = []
  const client = { publishRaw: async () => {}, publish: async (name: string, _p: unknown, data: unknown) => { if (name === 'nodeEvents') events.push(data) } } as unknown as MeshClient
  const sink = { play: () => {}, stop: () => {}, onFirstSample: () => {}, idle: Promise.resolve(), playing: false, close: async () => {} } as unknown as AudioSink
  const sm = Object.assign(new EventEmitter(), { state }) as unknown as NodeStateMachine
  const voice = new VoiceLoop({ nodeId: 'n', client, audioInTopic: 'audio/in', state: sm, listener: listener as unknown as Listener, sink, log: createLogger({ name: 'test', level: 'silent' }) })
  voice.start()
  const open = (s: Omit<UtteranceStart, 'at'>) => listener.emit('utterance-start', { ...s, at: Date.now() })
  return { open, events }
}

describe('wake-word score as arbitration evidence', () => {
  it('online, a wake-word turn sends its score; a speech-opened or an offline turn sends nothing', () => {
    const on = setup('online')
    on.open({ turnId: 4, trigger: 'wake', score: 0.83 })
    expect(on.events).toMatchObject([{ type: 'wake', turnId: 4, score: 0.83 }])
    on.open({ turnId: 5, trigger: 'vad' })
    expect(on.events).toHaveLength(1)
    const off = setup('offline')
    off.open({ turnId: 6, trigger: 'wake', score: 0.9 })
    expect(off.events).toHaveLength(0)
  })
})
