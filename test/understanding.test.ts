// Issue #12 regression tests: what the assistant understands and whether skills keep their word.
// Each test reproduces a defect measured on the held-out set (see README "Understanding").
// Real pocketsphinx on synthesized speech where the defect was acoustic; the skill/reply code
// in-process where it was logic.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { FallbackChain, PocketsphinxAsr, Unavailable, jsgfFromPhrases, readDictionaryWords, which, type SpawnFn } from '@mirrormesh/speech'
import { FakeLlm, fakeCtx, silentLog, sink, source, testMetrics } from '../hub/src/pipeline/fakes.js'
import type { Frame } from '../hub/src/pipeline/frames.js'
import { actsOn } from '../hub/src/pipeline/early-end.js'
import { ReplyStage, phrasesSpoken } from '../hub/src/pipeline/reply.js'
import { SkillMatcher, builtinSkills } from '../hub/src/pipeline/skills.js'
import { HubTimers } from '../hub/src/pipeline/skills-timers.js'
import { OfflineRecognizer } from '../node-agent/src/offline/recognizer.js'
import { synth } from './support/voice.js'

const matcher = new SkillMatcher(builtinSkills())
const haveSphinx = !!which('pocketsphinx_continuous')
// CI installs pocketsphinx: there a missing decoder fails the test instead of skipping it.
const sphinxIt = haveSphinx || process.env.CI ? it : it.skip

function replyStage(llm: ConstructorParameters<typeof FallbackChain>[1]) {
  const m = testMetrics()
  return new ReplyStage(matcher, new FallbackChain('llm', llm as never, m.metrics, silentLog), { persona: 'You are a mirror.', llmMaxTokens: 50 })
}
const sentences = (frames: Frame[]) => frames.flatMap((f) => (f.type === 'sentence' ? [f.text] : []))

describe('out-of-skill speech never fires a skill', () => {
  let dir: string
  let grammarPath: string
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'mm-understanding-'))
    grammarPath = join(dir, 'grammar.gram')
    if (haveSphinx) writeFileSync(grammarPath, jsgfFromPhrases(matcher.phrases(), { dictionary: readDictionaryWords() }))
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  async function decode(asr: PocketsphinxAsr, pcm: Int16Array) {
    const s = asr.start(new AbortController().signal)
    for (let i = 0; i < pcm.length; i += 320) s.write(pcm.subarray(i, i + 320))
    return s.finish()
  }

  // General-knowledge questions, chit-chat and memory requests: the grammar alone forces them onto
  // skills. The check is a threshold on evidence, not a proof: the figures on the whole set are in
  // README "Understanding"; here, on the test voice, it must stop most of them.
  sphinxIt('the grammar alone forces open questions onto skills; with the second opinion (nearly) none fires one', async () => {
    const plain = new PocketsphinxAsr({ grammarPath, log: silentLog })
    const checked = new PocketsphinxAsr({ grammarPath, log: silentLog, secondOpinion: {} })
    const questions = ['what is the capital of france', 'remember that my keys are in the drawer', 'who wrote romeo and juliet',
      'tell me about the roman empire', 'how do i make pancakes', 'what did i tell you about my keys']
    const forced: string[] = []
    const fired: string[] = []
    for (const q of questions) {
      const pcm = await synth(q, { padMs: 300 })
      const before = await decode(plain, pcm)
      if (before.text && matcher.match(before.text)) forced.push(`${q} → ${before.text}`)
      const after = await decode(checked, pcm)
      if (after.text && matcher.match(after.text)) fired.push(`${q} → ${after.text} (margin ${after.margin})`)
      else expect(after.rejected).toBe('second_opinion')
    }
    // The defect is real on this audio: without the check most of them fired a skill; the check
    // stops at least two in three of those (measured here: 2 of 6 still fire on this voice).
    expect(forced.length, forced.join('; ')).toBeGreaterThanOrEqual(4)
    expect(fired.length, fired.join('; ')).toBeLessThanOrEqual(Math.floor(forced.length / 3) + 1)
  }, 90_000)

  // The hub hints a session mid-turn when its early-end probe distrusted the audio so far; the open
  // decode then starts early instead of after the turn (README "End of turn"). Nothing may change
  // but the time: the same open transcript, and a command that is trusted after all leaves no decoder running.
  sphinxIt('an open decode started early hears the whole utterance, and is stopped when the command is trusted after all', async () => {
    const children: ChildProcess[] = []
    const spawnFn: SpawnFn = (file, args, opts) => {
      const c = spawn(file, args, { ...opts, stdio: ['pipe', 'pipe', 'pipe'] })
      children.push(c)
      return c
    }
    const asr = new PocketsphinxAsr({ grammarPath, log: silentLog, secondOpinion: { openVocabulary: true }, spawn: spawnFn })
    const run = async (pcm: Int16Array, hintAt: number | undefined) => {
      const s = asr.start(new AbortController().signal)
      for (let i = 0; i < pcm.length; i += 320) {
        if (i === hintAt) s.expectUntrusted?.()
        s.write(pcm.subarray(i, i + 320))
      }
      return s.finish()
    }
    const question = await synth('remember that my keys are in the drawer', { padMs: 300 })
    const late = await run(question, undefined)
    const early = await run(question, 320 * Math.floor(question.length / 640)) // half-way through
    expect(late.rejected).toBe('second_opinion')
    expect(late.text).not.toBe('')
    expect(early).toEqual(late)

    const command = await synth('turn on the kitchen light', { padMs: 300 })
    children.length = 0
    const r = await run(command, 320 * 10)
    expect(r.text).toBe('turn on the kitchen light')
    expect(children).toHaveLength(3) // grammar, phone loop, open decoder
    await vi.waitFor(() => expect(children.map((c) => c.exitCode ?? c.signalCode)).not.toContain(null), { timeout: 5000 })
  }, 90_000)

  // A wrong action is worse than "say that again": a phrase that changes something (a light, a
  // timer, the volume) needs a higher margin than an answer (ASR_ACTION_MIN_MARGIN, README
  // "Understanding"). The thresholds are set around this audio's own margins, so the test checks
  // that the bar follows what the phrase does, on the hub's decoder and on the probe/offline one.
  sphinxIt('a phrase that changes something needs the action margin, an answer only the general one', async () => {
    const acts = actsOn(matcher)
    const light = await synth('turn on the kitchen light', { padMs: 300 })
    const time = await synth('what time is it', { padMs: 300 })
    const probe = new PocketsphinxAsr({ grammarPath, log: silentLog, secondOpinion: { minMargin: -Infinity } })
    const [ml, mt] = [(await decode(probe, light)).margin!, (await decode(probe, time)).margin!]
    expect(typeof ml).toBe('number')
    expect(typeof mt).toBe('number')
    const minMargin = Math.min(ml, mt) - 1
    const actionMinMargin = Math.max(ml, mt) + 1
    const hub = new PocketsphinxAsr({ grammarPath, log: silentLog, secondOpinion: { minMargin, actionMinMargin, acts } })
    const l = await decode(hub, light)
    expect(l).toMatchObject({ text: '', rejected: 'second_opinion', heard: 'turn on the kitchen light' })
    expect(await decode(hub, time)).toMatchObject({ text: 'what time is it' })
    // The same bar without the action margin: both trusted.
    const plain = new PocketsphinxAsr({ grammarPath, log: silentLog, secondOpinion: { minMargin } })
    expect((await decode(plain, light)).text).toBe('turn on the kitchen light')

    const offline = new OfflineRecognizer({ grammarPath, log: silentLog, secondOpinion: { minMargin, actionMinMargin, acts } })
    const [ol, ot] = await Promise.all([offline.recognize(light, new AbortController().signal), offline.recognize(time, new AbortController().signal)])
    expect(ol).toMatchObject({ text: 'turn on the kitchen light', confident: false, reason: 'second_opinion' })
    expect(ot).toMatchObject({ text: 'what time is it', confident: true })
  }, 90_000)

  sphinxIt('commands that were said are still trusted, and none becomes another command', async () => {
    const checked = new PocketsphinxAsr({ grammarPath, log: silentLog, secondOpinion: {} })
    const commands = ['turn on the kitchen light', 'what time is it', 'set a timer for five minutes', 'volume down', 'cancel the timer']
    let trusted = 0
    for (const c of commands) {
      const r = await decode(checked, await synth(c, { padMs: 300 }))
      if (r.text) {
        expect(matcher.match(r.text)?.skill.id, `"${c}" heard "${r.text}"`).toBe(matcher.match(c)?.skill.id)
        trusted++
      }
    }
    // Some are refused ("say that again"): the price of refusing open speech (README trade-off table).
    expect(trusted).toBeGreaterThanOrEqual(3)
  }, 90_000)

  sphinxIt('offline: the same check refuses open questions the coverage check let through', async () => {
    const checked = new OfflineRecognizer({ grammarPath, log: silentLog })
    const plain = new OfflineRecognizer({ grammarPath, log: silentLog, secondOpinion: false })
    const questions = ['what is the capital of france', 'remember that my keys are in the drawer', 'who wrote romeo and juliet',
      'tell me about the roman empire', 'how do i make pancakes', 'what did i tell you about my keys']
    let before = 0
    let after = 0
    for (const q of questions) {
      const pcm = await synth(q, { padMs: 300 })
      const [a, b] = await Promise.all([plain.recognize(pcm, new AbortController().signal), checked.recognize(pcm, new AbortController().signal)])
      if (a.confident && matcher.match(a.text)) before++
      if (b.confident && matcher.match(b.text)) after++
    }
    expect(before).toBeGreaterThanOrEqual(2)
    expect(after).toBeLessThan(before)
  }, 90_000)

  // Room swaps: with eight rooms in the grammar, "kitchen" was once heard as "bedroom" — the right
  // skill with the wrong room, which the skill-level check above cannot see.
  sphinxIt('a light command is never carried out in another room than the one said', async () => {
    const checked = new PocketsphinxAsr({ grammarPath, log: silentLog, secondOpinion: {} })
    const plain = new PocketsphinxAsr({ grammarPath, log: silentLog })
    const swaps: string[] = []
    const heard: string[] = []
    for (const [room, onoff] of [['kitchen', 'on'], ['bedroom', 'off'], ['living room', 'on'], ['office', 'off'], ['hall', 'on'], ['garage', 'off']] as const) {
      const said = `turn ${onoff} the ${room} light`
      const pcm = await synth(said, { padMs: 300 })
      for (const [name, asr] of [['plain', plain], ['checked', checked]] as const) {
        const r = await decode(asr, pcm)
        const m = r.text ? matcher.match(r.text) : undefined
        heard.push(`${name}: ${said} → ${r.text || '(rejected)'}`)
        if (m?.skill.id === 'light' && m.slots.room !== room) swaps.push(`${name}: ${said} → ${r.text}`)
        if (m?.skill.id === 'light' && m.slots.onoff !== onoff) heard.push(`  ^ on/off swapped`)
      }
    }
    console.log(heard.join('\n'))
    expect(swaps, swaps.join('; ')).toEqual([])
  }, 90_000)

  // "off" was heard as "on" — the opposite action — on four of these five voices: cmudict knows
  // "off" only as AO F, and a speaker who says it with the vowel of "on" (AA) fitted "on" (AA N)
  // better. The hub's grammar dictionary adds "off(2) AA F" (EXTRA_PRONUNCIATIONS). en+f3 is left
  // out: its "off" is still heard as "on" (README "Understanding", known defect).
  sphinxIt('"off" is never carried out as "on", nor "on" as "off" (several voices and wordings)', async () => {
    const asr = new PocketsphinxAsr({ grammarPath, log: silentLog, secondOpinion: {} })
    const said = [['turn off the garage light', 'off'], ['switch the bedroom lights off', 'off'], ['please turn off the hall lights', 'off'],
      ['turn the office light off', 'off'], ['turn off the bedroom light', 'off'], ['turn on the garage light', 'on'], ['switch the hall lights on', 'on']] as const
    const opposite: string[] = []
    let right = 0
    for (const voice of ['en-us', 'en-us+m3', 'en', 'en-gb-x-rp']) {
      for (const [text, onoff] of said) {
        const r = await decode(asr, await synth(text, { voice, padMs: 300 }))
        const m = r.text ? matcher.match(r.text) : undefined
        if (m?.skill.id !== 'light') continue // refused or another skill: not the opposite action
        if (m.slots.onoff !== onoff) opposite.push(`${voice}: "${text}" → "${r.text}" (margin ${r.margin})`)
        else right++
      }
    }
    expect(opposite, opposite.join('; ')).toEqual([])
    expect(right).toBeGreaterThanOrEqual(14) // of 28 (16 here): the fix is not "refuse them all"
  }, 90_000)

  it('an open transcript goes to the LLM, never to a skill (a memory question once became a silent "never mind")', async () => {
    const llm = new FakeLlm('llama', ['I will remember that.'])
    const out = sink()
    const ctx = fakeCtx()
    await replyStage([llm]).run(source([{ type: 'end_of_speech', at: 1 }, { type: 'transcript', text: 'never mind', engine: 'pocketsphinx', at: 2, open: true }]), out.out, ctx)
    expect(out.frames.find((f) => f.type === 'reply_start')).toMatchObject({ kind: 'llm' })
    expect(llm.prompts).toHaveLength(1)
    expect(ctx.env.notes).toEqual([]) // no stop event: not the stop skill
  })

  it('with no LLM an open transcript gets an honest "I can\'t answer that yet", not silence', async () => {
    const out = sink()
    await replyStage([new Unavailable('llama', 'not_configured', 'LLM_MODEL is not set')]).run(
      source([{ type: 'end_of_speech', at: 1 }, { type: 'transcript', text: 'what did i tell you about my keys', engine: 'pocketsphinx', at: 2, open: true }]), out.out, fakeCtx())
    expect(sentences(out.frames)).toEqual([phrasesSpoken.cantAnswer])
  })
})

describe('many wordings per intent', () => {
  it.each([
    ['lights on in the kitchen', 'light', { room: 'kitchen', onoff: 'on' }],
    ['can you turn off the bedroom light', 'light', { room: 'bedroom', onoff: 'off' }],
    ['turn off the light in the office please', 'light', { room: 'office', onoff: 'off' }],
    ['turn it up', 'volume', { updown: 'up' }],
    ['quieter please', 'volume', { louderquieter: 'quieter' }],
    ['start a timer for ten minutes', 'timer', { number: 'ten' }],
    ['what day is it today', 'date', {}],
    ['do you know what time it is', 'time', {}],
  ])('"%s" → %s', (text, id, slots) => {
    const m = matcher.match(text)
    expect(m?.skill.id).toBe(id)
    expect(m?.slots).toMatchObject(slots)
  })

  // Spoken: a wording other than the first template is heard as its own intent, not forced onto
  // another phrase (each either the intended skill or rejected; never another skill).
  sphinxIt('spoken in other wordings, each request is heard as its own intent or refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mm-wordings-'))
    try {
      const grammarPath = join(dir, 'grammar.gram')
      writeFileSync(grammarPath, jsgfFromPhrases(matcher.phrases(), { dictionary: readDictionaryWords() }))
      const asr = new PocketsphinxAsr({ grammarPath, log: silentLog })
      const wordings: [string, string][] = [['lights on in the kitchen', 'light'], ['do you know what time it is', 'time'], ['what day is it today', 'date'],
        ['start a timer for ten minutes', 'timer'], ['make it quieter', 'volume'], ['how is the weather outside', 'weather']]
      const wrong: string[] = []
      let right = 0
      for (const [said, id] of wordings) {
        const pcm = await synth(said, { padMs: 300 })
        const st = asr.start(new AbortController().signal)
        for (let i = 0; i < pcm.length; i += 320) st.write(pcm.subarray(i, i + 320))
        const r = await st.finish()
        const got = r.text ? matcher.match(r.text)?.skill.id : undefined
        if (got === id) right++
        else if (got) wrong.push(`${said} → ${r.text} (${got})`)
      }
      expect(wrong, wrong.join('; ')).toEqual([])
      expect(right).toBeGreaterThanOrEqual(4)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 90_000)

  it('optional parts expand into the ASR grammar without any brackets left', () => {
    const phrases = matcher.phrases()
    expect(phrases).toContain('can you switch off the kitchen lights please')
    expect(phrases).toContain('what is the weather like today')
    expect(phrases.every((p) => !/[[\]{}()|]/.test(p) && !/\s{2}/.test(p))).toBe(true)
  })
})

describe('timers keep their word', () => {
  it('"cancel the timer" cancels it (it used to fire anyway); "stop" only stops playback', () => {
    vi.useFakeTimers()
    try {
      const timers = new HubTimers()
      const done: string[] = []
      const ctx = fakeCtx()
      const env = { ...ctx.env, ...timers.env('kitchen', (l) => done.push(l)) }
      const say = (text: string) => {
        const m = matcher.match(text)!
        return { id: m.skill.id, reply: m.skill.handle(m.slots, env) }
      }
      expect(say('set a timer for five minutes').reply.text).toBe('Timer set for five minutes.')
      expect(say('how long is left').reply.text).toBe('5 minutes left on the 5 minute timer.')
      expect(say('stop')).toMatchObject({ id: 'stop', reply: { stop: true } })
      expect(env.listTimers!()).toHaveLength(1) // stop did not touch the timer
      expect(say('cancel the timer')).toEqual({ id: 'timer_cancel', reply: { text: 'Timer cancelled.' } })
      vi.advanceTimersByTime(10 * 60_000)
      expect(done).toEqual([])
      expect(say('how much time is left').reply.text).toBe('There is no timer running.')
      say('set a timer for one minute')
      say('set a two minute timer')
      expect(say('cancel all timers').reply.text).toBe('2 timers cancelled.')
      timers.stop()
    } finally {
      vi.useRealTimers()
    }
  })

  it('a timer nobody cancels still fires, once, for its own node', () => {
    vi.useFakeTimers()
    try {
      const timers = new HubTimers()
      const done: string[] = []
      timers.env('kitchen', (l) => done.push(`kitchen:${l}`)).setTimer(60_000, '1 minute timer')
      expect(timers.env('hall', () => {}).cancelTimers!()).toBe(0)
      vi.advanceTimersByTime(61_000)
      expect(done).toEqual(['kitchen:1 minute timer'])
    } finally {
      vi.useRealTimers()
    }
  })
})

describe('time and date follow the node\'s time zone and 12/24-hour setting', () => {
  // Wednesday 20:37 UTC: Thursday 02:07 in Kolkata (+5:30), Wednesday 3:37 PM in New York.
  const at = new Date(Date.UTC(2026, 10, 25, 20, 37))
  const say = (text: string, clock?: { timeZone?: string; clock?: '12h' | '24h' }) => {
    const m = matcher.match(text)!
    return m.skill.handle(m.slots, { ...fakeCtx({ now: at }).env, clock }).text
  }

  it('the hub says the time and date in the node\'s zone, on its clock', () => {
    expect(say('what time is it', { timeZone: 'Asia/Kolkata', clock: '24h' })).toBe("It's 02:07.")
    expect(say('what is the date today', { timeZone: 'Asia/Kolkata' })).toBe('Today is Thursday, November 26.')
    expect(say('what time is it', { timeZone: 'America/New_York' })).toBe("It's 3:37 PM.")
    expect(say('what day is it', { timeZone: 'America/New_York', clock: '24h' })).toBe('Today is Wednesday, November 25.')
    expect(say('what time is it', { timeZone: 'UTC', clock: '24h' })).toBe("It's 20:37.")
  })
})
