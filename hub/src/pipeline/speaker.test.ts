import { describe, expect, it } from 'vitest'
import { AudioFlags, decodeAudioFrame } from '@mirrormesh/broker'
import { FallbackChain, type TtsEngine } from '@mirrormesh/speech'
import { FakeTts, silentLog, testMetrics } from './fakes.js'
import type { AudioOutFrame, Frame } from './frames.js'
import { Speaker } from './speaker.js'

function setup(tts: TtsEngine[], opts = { frameSamples: 320, leadMs: 300 }, signal = new AbortController().signal) {
  const m = testMetrics()
  const frames: Frame[] = []
  const speaker = new Speaker(42, (f) => void frames.push(f), new FallbackChain('tts', tts, m.metrics, silentLog), opts, signal)
  const audio = () => frames.filter((f): f is AudioOutFrame => f.type === 'audio_out')
  return { ...m, speaker, frames, audio }
}

describe('Speaker', () => {
  it('re-frames TTS chunks into fixed frames; the remainder goes out with finish(), then the end frame', async () => {
    const s = setup([new FakeTts('espeak', { chunks: 2, samplesPerChunk: 500 })]) // 1000 = 3×320 + 40
    expect(await s.speaker.say('Hello.')).toBe(true)
    expect(s.audio().map((f) => f.samples)).toEqual([320, 320, 320])
    await s.speaker.finish()
    expect(s.audio().map((f) => f.samples)).toEqual([320, 320, 320, 40, 0])
    expect(s.audio().map((f) => f.seq)).toEqual([0, 1, 2, 3, 4])
    expect(s.audio()[0]!.flags).toBe(AudioFlags.start)
    expect(s.audio()[4]!.flags).toBe(AudioFlags.end)
    expect(s.speaker.ended).toBe(true)
    const wire = decodeAudioFrame(s.audio()[3]!.payload)
    expect(wire).toMatchObject({ turnId: 42, seq: 3, flags: 0 })
    expect(typeof wire === 'object' && wire.samples.length).toBe(40)
  })

  it('records the first frame, the engine, and the first chunk time', async () => {
    const s = setup([new FakeTts('espeak')])
    await s.speaker.say('Hi.')
    expect(s.speaker.firstFrameAt).toBeTypeOf('number')
    expect(s.speaker.ttsEngine).toBe('espeak')
    expect(s.speaker.ttsFirstChunkMs).toBeGreaterThanOrEqual(0)
    expect(s.frames.filter((f) => f.type === 'tts_started')).toHaveLength(1)
  })

  it('every engine failing returns false (text only), with nothing sent', async () => {
    const s = setup([new FakeTts('espeak', { fail: true })])
    expect(await s.speaker.say('Hi.')).toBe(false)
    await s.speaker.finish()
    expect(s.audio()).toEqual([])
    expect(await s.value('mirrormesh_fallback_total', { stage: 'tts', from: 'espeak', to: 'none' })).toBe(1)
  })

  it('an engine that yields no audio counts as failed', async () => {
    const s = setup([new FakeTts('sherpa', { chunks: 0 }), new FakeTts('espeak')])
    expect(await s.speaker.say('Hi.')).toBe(true)
    expect(s.speaker.ttsEngine).toBe('espeak')
    expect(await s.value('mirrormesh_fallback_total', { stage: 'tts', from: 'sherpa', to: 'espeak' })).toBe(1)
  })

  it('paces frames: at most leadMs ahead of real time', async () => {
    const s = setup([new FakeTts('espeak', { samplesPerChunk: 320 * 15 })], { frameSamples: 320, leadMs: 100 })
    const t0 = Date.now()
    await s.speaker.say('Fifteen frames.')
    // 300 ms of audio with 100 ms lead: the last frame waits until ≈180 ms.
    expect(Date.now() - t0).toBeGreaterThanOrEqual(170)
    expect(s.audio()).toHaveLength(15)
  })

  it('aborted while pacing: say() rejects and nothing more is sent; cancel() sends the cancel frame', async () => {
    const ctl = new AbortController()
    const m = testMetrics()
    const frames: AudioOutFrame[] = []
    const speaker = new Speaker(42, (f) => {
      if (f.type !== 'audio_out') return
      frames.push(f)
      if (f.seq === 2) ctl.abort(new Error('barge_in'))
    }, new FallbackChain('tts', [new FakeTts('espeak', { samplesPerChunk: 320 * 50 })], m.metrics, silentLog), { frameSamples: 320, leadMs: 0 }, ctl.signal)
    await expect(speaker.say('A long sentence.')).rejects.toThrow('barge_in')
    expect(frames.map((f) => f.seq)).toEqual([0, 1, 2])
    speaker.cancel()
    expect(frames.at(-1)).toMatchObject({ flags: AudioFlags.cancel, seq: 3 })
    expect(speaker.ended).toBe(false)
  })
})
