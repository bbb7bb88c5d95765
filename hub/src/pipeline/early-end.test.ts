import { describe, expect, it } from 'vitest'
import { actsOn, earlyVeto } from './early-end.js'
import { SkillMatcher, builtinSkills } from './skills.js'

describe('earlyVeto: which phrases may end a turn early', () => {
  const skills = new SkillMatcher(builtinSkills())
  const answersEarly = earlyVeto(skills, skills.phrases())

  it('a whole command whose longer wordings mean the same may end early', () => {
    expect(answersEarly('what time is it')).toBe(true) // "… now", "… right now": the same answer
    expect(answersEarly('turn on the kitchen light')).toBe(true) // "… please": the same action
  })

  it('a phrase that a longer sentence turns into another request waits for the real end', () => {
    expect(answersEarly('stop')).toBe(false) // "stop the timer" cancels timers
    expect(answersEarly('cancel')).toBe(false) // "cancel the timer"
  })

  it('speech no skill answers never ends a turn early', () => {
    expect(answersEarly('what is the capital of france')).toBe(false)
    expect(answersEarly('')).toBe(false)
  })
})

describe('actsOn: which phrases change something (they need ASR_ACTION_MIN_MARGIN)', () => {
  const acts = actsOn(new SkillMatcher(builtinSkills()))

  it('a light, a timer set or cancelled and the volume change something', () => {
    for (const p of ['turn on the kitchen light', 'switch the office lights off', 'set a timer for five minutes', 'cancel all timers', 'volume up', 'set the volume to ten']) {
      expect(acts(p), p).toBe(true)
    }
  })

  it('answers, "stop" and speech no skill answers do not', () => {
    for (const p of ['what time is it', 'what is the date', 'what is the weather like', 'how long is left', 'are you there', 'stop', 'be quiet', 'what is the capital of france', '']) {
      expect(acts(p), p).toBe(false)
    }
  })
})
