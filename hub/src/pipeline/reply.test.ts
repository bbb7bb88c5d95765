import { describe, expect, it } from 'vitest'
import { FallbackChain, Unavailable, type LlmEngine } from '@mirrormesh/speech'
import { FakeLlm, fakeCtx, silentLog, sink, source, testMetrics } from './fakes.js'
import type { Frame } from './frames.js'
import { ReplyStage, phrasesSpoken } from './reply.js'
import { SkillMatcher, builtinSkills } from './skills.js'

function setup(llm: LlmEngine[]) {
  const m = testMetrics()
  const stage = new ReplyStage(new SkillMatcher(builtinSkills()), new FallbackChain('llm', llm, m.metrics, silentLog), { persona: 'You are a mirror.', llmMaxTokens: 50 })
  return { ...m, stage }
}

const heard = (text: string): Frame[] => [{ type: 'end_of_speech', at: 1 }, { type: 'transcript', text, engine: 'fake', at: 2 }]
const sentences = (frames: Frame[]) => frames.flatMap((f) => (f.type === 'sentence' ? [f.text] : []))

describe('ReplyStage', () => {
  it('a skill match answers without the LLM and acts', async () => {
    const llm = new FakeLlm('llama', ['no'])
    const { stage } = setup([llm])
    const out = sink()
    const ctx = fakeCtx()
    await stage.run(source(heard('Turn on the kitchen light.')), out.out, ctx)
    expect(out.types()).toEqual(['end_of_speech', 'transcript', 'reply_start', 'sentence', 'reply_end'])
    expect(out.frames[2]).toEqual({ type: 'reply_start', kind: 'skill', skill: 'light' })
    expect(sentences(out.frames)).toEqual(['Turning on the kitchen light.'])
    expect(out.frames[4]).toEqual({ type: 'reply_end', kind: 'skill' })
    expect(ctx.env.acts).toEqual([{ component: 'light', action: 'set', room: 'kitchen', state: 'on' }])
    expect(llm.prompts).toHaveLength(0)
  })

  it('nothing heard → "didn\'t catch that", kind none', async () => {
    const { stage } = setup([new FakeLlm('llama', ['x'])])
    const out = sink()
    await stage.run(source(heard('')), out.out, fakeCtx())
    expect(sentences(out.frames)).toEqual([phrasesSpoken.didntCatch])
    expect(out.frames.at(-1)).toEqual({ type: 'reply_end', kind: 'none' })
  })

  it('the LLM streams into sentences as they close, with the room in the prompt', async () => {
    const llm = new FakeLlm('llama', ['Why did the ', 'chicken cross? ', 'To get ', 'to the other side. ', 'Ha'])
    const { stage } = setup([llm])
    const out = sink()
    const ctx = fakeCtx({ room: 'hall' })
    await stage.run(source(heard('tell me a joke')), out.out, ctx)
    expect(out.frames[2]).toEqual({ type: 'reply_start', kind: 'llm', llm: 'llama' })
    expect(sentences(out.frames)).toEqual(['Why did the chicken cross?', 'To get to the other side.', 'Ha'])
    expect(out.frames.at(-1)).toEqual({ type: 'reply_end', kind: 'llm' })
    expect(llm.prompts[0]).toMatchObject({ prompt: 'tell me a joke', system: 'You are a mirror. You are in the hall.', maxTokens: 50 })
    expect(ctx.marks.llmFirst).toBeTypeOf('number')
  })

  it('sentences go out while the LLM still generates', async () => {
    const llm = new FakeLlm('llama', ['First one. ', 'Second one.'], { gapMs: 40 })
    const { stage } = setup([llm])
    const seen: Array<[string, number]> = []
    await stage.run(source(heard('tell me a joke')), (f) => { if (f.type === 'sentence') seen.push([f.text, Date.now()]) }, fakeCtx())
    expect(seen.map(([t]) => t)).toEqual(['First one.', 'Second one.'])
    expect(seen[1]![1] - seen[0]![1]).toBeGreaterThanOrEqual(30)
  })

  it('the LLM fails before any text → the canned "unavailable", kind unavailable, step counted', async () => {
    const { stage, value } = setup([new FakeLlm('llama', ['never'], { failAfter: 0 })])
    const out = sink()
    const ctx = fakeCtx()
    await stage.run(source(heard('tell me a joke')), out.out, ctx)
    expect(out.frames[2]).toMatchObject({ type: 'reply_start', kind: 'llm' })
    expect(sentences(out.frames)).toEqual([phrasesSpoken.unavailable])
    expect(out.frames.at(-1)).toEqual({ type: 'reply_end', kind: 'unavailable' })
    expect(await value('mirrormesh_fallback_total', { stage: 'llm', from: 'llama', to: 'canned', reason: 'crashed' })).toBe(1)
    expect(ctx.errors).toEqual([])
  })

  it('the LLM fails after some text → keeps what was said, kind llm', async () => {
    const { stage, value } = setup([new FakeLlm('llama', ['It is sunny. ', 'And then', ' more'], { failAfter: 2 })])
    const out = sink()
    await stage.run(source(heard('tell me a joke')), out.out, fakeCtx())
    expect(sentences(out.frames)).toEqual(['It is sunny.'])
    expect(out.frames.at(-1)).toEqual({ type: 'reply_end', kind: 'llm' })
    expect(await value('mirrormesh_fallback_total', { stage: 'llm', to: 'canned' })).toBe(1)
  })

  it('no healthy LLM → "unavailable" at once, the skip counted as unhealthy', async () => {
    const { stage, value } = setup([new Unavailable('llama', 'not_configured')])
    const out = sink()
    await stage.run(source(heard('tell me a joke')), out.out, fakeCtx())
    expect(out.frames.slice(2)).toEqual([
      { type: 'reply_start', kind: 'unavailable' },
      { type: 'sentence', text: phrasesSpoken.unavailable },
      { type: 'reply_end', kind: 'unavailable' },
    ])
    expect(await value('mirrormesh_fallback_total', { stage: 'llm', from: 'llama', to: 'canned', reason: 'unhealthy' })).toBe(1)
  })

  it('an LLM that says nothing → "didn\'t catch that"', async () => {
    const { stage } = setup([new FakeLlm('llama', ['  '])])
    const out = sink()
    await stage.run(source(heard('tell me a joke')), out.out, fakeCtx())
    expect(sentences(out.frames)).toEqual([phrasesSpoken.didntCatch])
  })

  it('cancelled while the LLM streams: no more sentences, no reply_end, no fallback counted', async () => {
    const llm = new FakeLlm('llama', ['One. ', 'Two. ', 'Three. '], { gapMs: 20 })
    const { stage, value } = setup([llm])
    const out = sink()
    const ctx = fakeCtx()
    const done = stage.run(source(heard('tell me a joke')), (f) => {
      out.out(f)
      if (f.type === 'sentence') ctx.ctl.abort(new Error('barge_in'))
    }, ctx)
    await done
    expect(sentences(out.frames)).toEqual(['One.'])
    expect(out.types()).not.toContain('reply_end')
    expect(await value('mirrormesh_fallback_total')).toBe(0)
  })

  it('a skill that throws is reported upstream, not thrown', async () => {
    const m = testMetrics()
    const boom = { id: 'boom', offline: false, phrases: ['boom'], handle: () => { throw new Error('bad skill') } }
    const stage = new ReplyStage(new SkillMatcher([boom]), new FallbackChain('llm', [], m.metrics, silentLog), { persona: '', llmMaxTokens: 10 })
    const ctx = fakeCtx()
    await stage.run(source(heard('boom')), sink().out, ctx)
    expect(ctx.errors.map((e) => e.stage)).toEqual(['reply'])
  })
})
