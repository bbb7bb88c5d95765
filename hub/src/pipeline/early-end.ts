// Which grammar phrases may end a turn early. As offline (responder.answersEarly): a phrase
// that a longer grammar phrase extends with another meaning ("stop" / "stop the timer") waits
// for the VAD or the node's end flag, so a pause before the rest costs nothing. "Another
// meaning" is judged by what the skill would do: its reply and effects, on a recording env.
// The same recording says which phrases change something (actsOn): they need a higher margin.
import type { SkillEnv, SkillMatcher } from './skills.js'

/** What a phrase does, run on a recording env: skill, reply and effects; undefined when no skill matches. */
function effectsOf(skills: SkillMatcher, phrase: string): { skill: string; reply: unknown; effects: unknown[][] } | undefined {
  const m = skills.match(phrase)
  if (!m) return undefined
  const effects: unknown[][] = []
  const env: SkillEnv = {
    nodeId: 'n', now: new Date(0),
    act: (c, a) => void effects.push(['act', c, a]),
    notify: (e) => void effects.push(['notify', e]),
    weather: () => null,
    setTimer: (ms, label) => void effects.push(['timer', ms, label]),
    cancelTimers: () => { effects.push(['cancel']); return 0 },
    listTimers: () => [],
  }
  const reply = m.skill.handle(m.slots, env)
  return { skill: m.skill.id, reply, effects }
}

function meaning(skills: SkillMatcher, phrase: string): string | undefined {
  const e = effectsOf(skills, phrase)
  return e && JSON.stringify([e.skill, e.reply, e.effects])
}

/**
 * `acts(phrase)`: the phrase changes something — a house action, a timer set or cancelled, a
 * setting (any effect but stopping what plays). Its grammar result needs the stronger second
 * opinion (ASR_ACTION_MIN_MARGIN): a wrong action is worse than "say that again".
 */
export function actsOn(skills: SkillMatcher): (phrase: string) => boolean {
  const cache = new Map<string, boolean>()
  return (phrase) => {
    const p = phrase.trim()
    let acts = cache.get(p)
    if (acts === undefined) {
      acts = effectsOf(skills, p)?.effects.some((e) => e[0] !== 'notify' || (e[1] as { type?: string }).type !== 'stop') ?? false
      if (cache.size < 10_000) cache.set(p, acts)
    }
    return acts
  }
}

/** `answersEarly(phrase)`: true when the phrase is a skill's and no longer phrase starting with it means something else. */
export function earlyVeto(skills: SkillMatcher, phrases: readonly string[]): (phrase: string) => boolean {
  const cache = new Map<string, boolean>()
  return (phrase) => {
    const p = phrase.trim()
    let ok = cache.get(p)
    if (ok === undefined) {
      const own = meaning(skills, p)
      ok = own !== undefined && phrases.every((q) => !q.startsWith(`${p} `) || meaning(skills, q) === own)
      if (cache.size < 10_000) cache.set(p, ok)
    }
    return ok
  }
}
