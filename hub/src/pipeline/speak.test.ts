import { describe, expect, it } from 'vitest'
import { AudioFlags, decodeAudioFrame } from '@mirrormesh/broker'
import { FallbackChain, type TtsEngine } from '@mirrormesh/speech'
import { FakeTts, fakeCtx, silentLog, sink, source, testMetrics } from './fakes.js'
import type { AudioOutFrame, Frame } from './frames.js'
import { SpeakStage } from './speak.js'

function setup(tts: TtsEngine[], leadMs = 300) {
  const m = testMetrics()
  const stage = new SpeakStage(new FallbackChain('tts', tts, m.metrics, silentLog), { frameSamples: 320, leadMs })
  return { ...m, stage }
}

const reply = (...texts: string[]): Frame[] => [
  { type: 'reply_start', kind: 'llm' },
  ...texts.map((text): Frame => ({ type: 'sentence', text })),
  { type: 'reply_end', kind: 'llm' },
]
const audioOut = (frames: Frame[]) => frames.filter((f): f is AudioOutFrame => f.type === 'audio_out')

describe('SpeakStage', () => {
  it('each sentence: spoken_text, then numbered audio_out frames; start and end flags; reply_end after the audio', async () => {
    const tts = new FakeTts('sherpa', { chunks: 2, samplesPerChunk: 480 }) // 960 samples = 3 frames per sentence
    const { stage } = setup([tts])
    const out = sink()
    const ctx = fakeCtx()
    await stage.run(source(reply('One.', 'Two.')), out.out, ctx)
    const types = out.types().filter((t) => t !== 'tts_started')
    expect(types).toEqual(['reply_start', 'spoken_text', 'audio_out', 'audio_out', 'audio_out', 'spoken_text', 'audio_out', 'audio_out', 'audio_out', 'audio_out', 'reply_end'])
    const frames = audioOut(out.frames)
    expect(frames.map((f) => f.seq)).toEqual([0, 1, 2, 3, 4, 5, 6])
    expect(frames[0]!.flags & AudioFlags.start).toBeTruthy()
    expect(frames.at(-1)!.flags).toBe(AudioFlags.end)
    expect(frames.at(-1)!.samples).toBe(0)
    // The payload is the wire frame for this turn.
    const wire = decodeAudioFrame(frames[1]!.payload)
    expect(wire).toMatchObject({ turnId: 7, seq: 1 })
    expect(tts.said).toEqual(['One.', 'Two.'])
    expect(out.frames.find((f) => f.type === 'tts_started')).toMatchObject({ engine: 'sherpa' })
    expect(ctx.marks.firstSentence).toBeTypeOf('number')
  })

  it('frames are paced to real time, no more than leadMs ahead', async () => {
    const { stage } = setup([new FakeTts('sherpa', { chunks: 1, samplesPerChunk: 320 * 8 })], 0)
    const times: number[] = []
    await stage.run(source(reply('Eight frames.')), (f) => { if (f.type === 'audio_out') times.push(Date.now()) }, fakeCtx())
    expect(times).toHaveLength(9) // 8 audio + end
    // 8 frames of 20 ms with no lead: the 8th goes out ≈140 ms after the first.
    expect(times[7]! - times[0]!).toBeGreaterThanOrEqual(130)
  })

  it('barge-in: no audio after it, a cancel frame, queued sentences dropped, no reply_end', async () => {
    const tts = new FakeTts('sherpa', { chunks: 1, samplesPerChunk: 320 * 50 }) // 1 s per sentence
    const { stage } = setup([tts], 0)
    const ctx = fakeCtx()
    const out = sink()
    let abortedAt = -1
    await stage.run(source(reply('Long one.', 'Never said.')), (f) => {
      out.out(f)
      if (f.type === 'audio_out' && f.seq === 2) { ctx.ctl.abort(new Error('barge_in')); abortedAt = out.frames.length }
    }, ctx)
    const after = out.frames.slice(abortedAt)
    expect(after).toHaveLength(1)
    expect(after[0]).toMatchObject({ type: 'audio_out', seq: 3, flags: AudioFlags.cancel })
    expect(tts.said).toEqual(['Long one.'])
    expect(out.types()).not.toContain('reply_end')
  })

  it('aborted before any audio: no cancel frame (the node heard nothing)', async () => {
    const { stage } = setup([new FakeTts('sherpa')])
    const ctx = fakeCtx()
    ctx.ctl.abort(new Error('node_cancel'))
    const out = sink()
    await stage.run(source(reply('Hello.')), out.out, ctx)
    expect(out.types()).toEqual(['reply_start'])
  })

  it('TTS fails → the next engine speaks; the step is counted', async () => {
    const { stage, value } = setup([new FakeTts('sherpa', { fail: true }), new FakeTts('espeak')])
    const out = sink()
    await stage.run(source(reply('Hello.')), out.out, fakeCtx())
    expect(audioOut(out.frames).length).toBeGreaterThan(1)
    expect(out.frames.find((f) => f.type === 'tts_started')).toMatchObject({ engine: 'espeak' })
    expect(await value('mirrormesh_fallback_total', { stage: 'tts', from: 'sherpa', to: 'espeak', reason: 'crashed' })).toBe(1)
    expect(out.types().at(-1)).toBe('reply_end')
  })

  it('every TTS engine fails → text only: no audio, the step to text counted, reply_end still passed on', async () => {
    const { stage, value } = setup([new FakeTts('sherpa', { fail: true }), new FakeTts('espeak', { fail: true })])
    const out = sink()
    const ctx = fakeCtx()
    await stage.run(source(reply('Hello.')), out.out, ctx)
    expect(out.types()).toEqual(['reply_start', 'spoken_text', 'text_only', 'reply_end'])
    expect(await value('mirrormesh_fallback_total', { stage: 'tts', from: 'espeak', to: 'text', reason: 'all_failed' })).toBe(1)
    expect(ctx.errors).toEqual([])
  })

  it('passes on frames it does not handle, in order', async () => {
    const { stage } = setup([new FakeTts('sherpa')])
    const out = sink()
    await stage.run(source([{ type: 'end_of_speech', at: 1 }, { type: 'transcript', text: 'hi', engine: 'x', at: 2 }]), out.out, fakeCtx())
    expect(out.types()).toEqual(['end_of_speech', 'transcript'])
  })
})
