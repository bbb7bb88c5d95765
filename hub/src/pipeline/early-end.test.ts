import { describe, expect, it } from 'vitest'
import { earlyVeto } from './early-end.js'
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
