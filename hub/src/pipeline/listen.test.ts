import { describe, expect, it } from 'vitest'
import { FallbackChain, Unavailable, type AsrEngine, type OfflineRecognizer, type Recognition, type SessionHooks } from '@mirrormesh/speech'
import { FakeAsr, FakeVad, fakeCtx, pcm, silentLog, sink, source, testMetrics } from './fakes.js'
import type { Frame } from './frames.js'
import { ListenStage } from './listen.js'
import { AsyncQueue } from './queue.js'

function setup(asr: AsrEngine[], vadEndAfter?: number, maxUtteranceMs = 10_000) {
  const m = testMetrics()
  const chain = new FallbackChain('asr', asr, m.metrics, silentLog)
  const stage = new ListenStage(vadEndAfter ? new FakeVad(vadEndAfter) : undefined, chain, { maxUtteranceMs }, m.metrics)
  return { ...m, stage }
}

const audio = (n: number): Frame[] => Array.from({ length: n }, (_, seq) => ({ type: 'audio_in', seq, pcm: pcm(320) }))

describe('ListenStage', () => {
  it('VAD end of speech → end_of_speech then the streaming engine\'s transcript; the input is closed', async () => {
    const asr = new FakeAsr('sherpa', { text: '  what time is it ' })
    const { stage, count } = setup([asr], 3)
    const input = source(audio(5), false) // the node is still sending
    const out = sink()
    const ctx = fakeCtx()
    await stage.run(input, out.out, ctx)
    expect(out.types()).toEqual(['end_of_speech', 'transcript'])
    expect(out.frames[1]).toMatchObject({ type: 'transcript', text: 'what time is it', engine: 'sherpa' })
    expect(asr.samples).toBe(3 * 320) // streamed while listening, stopped at the VAD's end
    expect(input.ended).toBe(true)
    expect(await count('mirrormesh_stage_seconds', { stage: 'asr', engine: 'sherpa' })).toBe(1)
    expect(ctx.errors).toEqual([])
  })

  it('the node\'s end flag ends the utterance at its own time', async () => {
    const asr = new FakeAsr('sherpa', { text: 'hello mirror' })
    const { stage } = setup([asr])
    const out = sink()
    await stage.run(source([...audio(2), { type: 'input_end', at: 1234 }]), out.out, fakeCtx())
    expect(out.frames[0]).toEqual({ type: 'end_of_speech', at: 1234 })
    expect(out.frames[1]).toMatchObject({ text: 'hello mirror' })
  })

  it('the utterance limit ends a turn whose node stopped sending', async () => {
    const { stage } = setup([new FakeAsr('sherpa', { text: 'x' })], undefined, 30)
    const input = new AsyncQueue<Frame>()
    input.push(audio(1)[0]!)
    const out = sink()
    const t0 = Date.now()
    await stage.run(input, out.out, fakeCtx())
    expect(Date.now() - t0).toBeGreaterThanOrEqual(25)
    expect(out.types()).toEqual(['end_of_speech', 'transcript'])
  })

  it('first ASR fails → the next engine gets the buffered audio; the step is counted', async () => {
    const first = new FakeAsr('sherpa', { fail: 'finish', reason: 'crashed' })
    const second = new FakeAsr('pocketsphinx', { text: 'turn on the kitchen light' })
    const { stage, value } = setup([first, second])
    const out = sink()
    await stage.run(source([...audio(4), { type: 'input_end', at: Date.now() }]), out.out, fakeCtx())
    expect(out.frames.at(-1)).toMatchObject({ type: 'transcript', text: 'turn on the kitchen light', engine: 'pocketsphinx' })
    expect(second.samples).toBe(4 * 320)
    expect(second.starts).toBe(1)
    expect(await value('mirrormesh_fallback_total', { stage: 'asr', from: 'sherpa', to: 'pocketsphinx', reason: 'crashed' })).toBe(1)
  })

  it('a first engine that cannot even start is stepped past the same way', async () => {
    const second = new FakeAsr('pocketsphinx', { text: 'stop' })
    const { stage, value } = setup([new FakeAsr('sherpa', { fail: 'start', reason: 'model_missing' }), second])
    const out = sink()
    await stage.run(source([...audio(2), { type: 'input_end', at: Date.now() }]), out.out, fakeCtx())
    expect(out.frames.at(-1)).toMatchObject({ text: 'stop', engine: 'pocketsphinx' })
    expect(await value('mirrormesh_fallback_total', { stage: 'asr', from: 'sherpa', to: 'pocketsphinx', reason: 'model_missing' })).toBe(1)
  })

  it('an engine that is down is skipped up front and counted with its reason', async () => {
    const second = new FakeAsr('pocketsphinx', { text: 'stop' })
    const { stage, value } = setup([new Unavailable('sherpa', 'model_missing'), second])
    const out = sink()
    await stage.run(source([...audio(2), { type: 'input_end', at: Date.now() }]), out.out, fakeCtx())
    expect(out.frames.at(-1)).toMatchObject({ text: 'stop', engine: 'pocketsphinx' })
    expect(second.samples).toBe(2 * 320) // it was the streaming engine
    expect(await value('mirrormesh_fallback_total', { stage: 'asr', from: 'sherpa', reason: 'model_missing' })).toBe(1)
  })

  it('every engine fails → an empty transcript from engine none, no error', async () => {
    const { stage, value } = setup([new FakeAsr('sherpa', { fail: 'finish' }), new FakeAsr('pocketsphinx', { fail: 'finish' })])
    const out = sink()
    const ctx = fakeCtx()
    await stage.run(source([...audio(2), { type: 'input_end', at: Date.now() }]), out.out, ctx)
    expect(out.frames.at(-1)).toMatchObject({ type: 'transcript', text: '', engine: 'none' })
    expect(await value('mirrormesh_fallback_total', { stage: 'asr', from: 'pocketsphinx', to: 'none' })).toBe(1)
    expect(ctx.errors).toEqual([])
  })

  it('cancelled while listening: no transcript, no fallback, resolves', async () => {
    const { stage, value } = setup([new FakeAsr('sherpa', { text: 'x' })])
    const input = new AsyncQueue<Frame>()
    input.push(audio(1)[0]!)
    const ctx = fakeCtx()
    const out = sink()
    const done = stage.run(input, out.out, ctx)
    ctx.ctl.abort(new Error('barge_in'))
    input.end() // what the orchestrator does on cancel
    await done
    expect(out.frames).toEqual([])
    expect(await value('mirrormesh_fallback_total')).toBe(0)
  })

  it('a probe the second opinion distrusted starts the session\'s open decode early; a trusted one does not', async () => {
    const hints: number[] = [] // frames the ASR session had heard when hinted
    const asr: AsrEngine = {
      name: 'pocketsphinx',
      health: () => 'ok',
      start: () => {
        let n = 0
        return { write: () => void n++, finish: async () => ({ text: '' }), expectUntrusted: () => void hints.push(n) }
      },
    }
    const verdict = (trusted: boolean): Recognition => ({ text: 'what day is it', confident: trusted, speechMs: 500, peakDbfs: -10, wordMs: 400, coverage: 0.8, latencyMs: 20, margin: trusted ? 2 : -9, trusted })
    const recognizer = {
      start: (_signal: AbortSignal, hooks: SessionHooks = {}) => {
        let n = 0
        return {
          write: () => {
            n++
            if (n === 2) hooks.onProbe?.(verdict(true))
            if (n === 4) hooks.onProbe?.(verdict(false))
          },
          finish: () => Promise.reject(new Error('unused')),
          kill: () => undefined,
        }
      },
    } as unknown as OfflineRecognizer
    const m = testMetrics()
    const stage = new ListenStage(undefined, new FallbackChain('asr', [asr], m.metrics, silentLog), { maxUtteranceMs: 10_000 }, m.metrics, { recognizer, answersEarly: () => true })
    const out = sink()
    await stage.run(source([...audio(6), { type: 'input_end', at: 1 }]), out.out, fakeCtx())
    expect(hints).toEqual([4])
    expect(out.types()).toEqual(['end_of_speech', 'transcript'])
  })
})
