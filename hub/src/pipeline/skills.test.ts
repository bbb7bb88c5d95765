import { describe, expect, it } from 'vitest'
import { fakeCtx } from './fakes.js'
import { SkillMatcher, builtinSkills, normalize, parseNumber, spokenTime } from './skills.js'

const matcher = new SkillMatcher(builtinSkills())

function answer(text: string, opts: Parameters<typeof fakeCtx>[0] = {}) {
  const m = matcher.match(text)
  if (!m) throw new Error(`no skill for "${text}"`)
  const { env } = fakeCtx(opts)
  return { id: m.skill.id, slots: m.slots, reply: m.skill.handle(m.slots, env), env }
}

describe('skill matcher', () => {
  it.each([
    ['What time is it?', 'time'],
    ["what's the time", 'time'],
    ['please tell me the time', 'time'],
    ['What day is it today', 'date'],
    ['switch the bedroom lights off', 'light'],
    ['set a timer for five minutes', 'timer'],
    ['Volume up', 'volume'],
    ['make it quieter please', 'volume'],
    ['never mind', 'stop'],
    ['hello mirror', 'presence'],
    ["what's the weather like", 'weather'],
  ])('"%s" → %s', (text, id) => {
    expect(matcher.match(text)?.skill.id).toBe(id)
  })

  it('anything else goes to the LLM', () => {
    expect(matcher.match('tell me a joke')).toBeUndefined()
    expect(matcher.match('what time is it in tokyo')).toBeUndefined()
    expect(matcher.match('')).toBeUndefined()
  })

  it('slots and alternatives come back named', () => {
    expect(matcher.match('turn off the living room light')?.slots).toEqual({ turnswitch: 'turn', onoff: 'off', room: 'living room', lightlights: 'light' })
  })

  it('only configured rooms match', () => {
    const m = new SkillMatcher(builtinSkills(), { room: ['attic'], number: ['one'] })
    expect(m.match('turn on the attic light')?.slots.room).toBe('attic')
    expect(m.match('turn on the kitchen light')).toBeUndefined()
  })

  it('phrases() expands every template for the ASR grammar, plus extras normalized', () => {
    const phrases = matcher.phrases(["What's cooking?"])
    expect(phrases).toContain('turn on the kitchen light')
    expect(phrases).toContain('switch the dining room lights off')
    expect(phrases).toContain('set a timer for forty five minutes')
    expect(phrases).toContain('what is cooking')
    expect(phrases.every((p) => !/[{}()|]/.test(p))).toBe(true)
  })

  it('normalize lowers, expands contractions and drops punctuation', () => {
    expect(normalize("  What's  the TIME?! ")).toBe('what is the time')
  })

  it('parseNumber reads digits and number words', () => {
    expect(parseNumber('12')).toBe(12)
    expect(parseNumber('forty five')).toBe(45)
    expect(parseNumber('twenty')).toBe(20)
    expect(parseNumber('lots')).toBeUndefined()
  })
})

describe('skill handlers', () => {
  it('time: the clock in 12-hour form', () => {
    expect(answer('what time is it', { now: new Date(2026, 0, 5, 14, 7) }).reply.text).toBe("It's 2:07 PM.")
    expect(spokenTime(new Date(2026, 0, 5, 0, 30))).toBe("It's 12:30 AM.")
  })

  it('date: weekday, month and day', () => {
    expect(answer('what is the date', { now: new Date(2026, 0, 5, 9) }).reply.text).toBe('Today is Monday, January 5.')
  })

  it('lights: publishes the house action and says so', () => {
    const { reply, env } = answer('turn on the kitchen light')
    expect(reply.text).toBe('Turning on the kitchen light.')
    expect(env.acts).toEqual([{ component: 'light', action: 'set', room: 'kitchen', state: 'on' }])
    const off = answer('switch the hall lights off')
    expect(off.env.acts).toEqual([{ component: 'light', action: 'set', room: 'hall', state: 'off' }])
  })

  it('timers: set for the spoken minutes', () => {
    const { reply, env } = answer('set a timer for twenty minutes')
    expect(reply.text).toBe('Timer set for twenty minutes.')
    expect(env.timers).toEqual([[20 * 60_000, '20 minute timer']])
    const one = answer('set a one minute timer')
    expect(one.reply.text).toBe('Timer set for one minute.')
    expect(one.env.timers).toEqual([[60_000, '1 minute timer']])
  })

  it('volume: up/down, louder/quieter, and a level clamped to 0–100', () => {
    expect(answer('volume down').env.notes).toEqual([{ type: 'volume', change: 'down' }])
    expect(answer('turn it louder').env.notes).toEqual([{ type: 'volume', change: 'up' }])
    const set = answer('set the volume to sixty')
    expect(set.reply.text).toBe('Volume set to 60.')
    expect(set.env.notes).toEqual([{ type: 'volume', level: 60 }])
    // Digits bypass the number words: 250 is clamped.
    const skill = builtinSkills().find((s) => s.id === 'volume')!
    const { env } = fakeCtx()
    expect(skill.handle({ number: '250' }, env).text).toBe('Volume set to 100.')
    expect(env.notes).toEqual([{ type: 'volume', level: 100 }])
  })

  it('stop: tells the node to stop and says nothing', () => {
    const { reply, env } = answer('be quiet')
    expect(reply).toEqual({ text: '', stop: true })
    expect(env.notes).toEqual([{ type: 'stop' }])
  })

  it('weather: from the report when there is one', () => {
    expect(answer('what is the weather', { weather: { summary: 'cloudy', temperatureC: 11.6 } }).reply.text).toBe("It's 12 degrees and cloudy.")
    expect(answer('how is the weather', { weather: { summary: 'raining' } }).reply.text).toBe("It's raining.")
  })

  it('weather: says so when there is no report yet', () => {
    expect(answer('what is the weather', { weather: null }).reply.text).toBe("I don't have a weather report yet.")
  })

  it('every built-in skill but the timer status (read aloud from live state) can answer offline and has phrases', () => {
    for (const s of builtinSkills()) {
      expect(s.offline).toBe(s.id !== 'timer_status')
      expect(s.phrases.length).toBeGreaterThan(0)
    }
  })
})
