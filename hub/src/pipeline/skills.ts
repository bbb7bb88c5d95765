// Skills: deterministic intents answered without the LLM. Declared once as data plus
// a small handler; the same declarations give the matcher, the ASR grammar and (later)
// the offline reply bundle. Phrase templates: words, {slot}, and (a|b) alternatives.
import { clockText, type ClockSettings, type EventBody, type HubEvent } from '@mirrormesh/broker'

export interface SkillEnv {
  nodeId: string
  now: Date
  /** The node's time zone and 12/24-hour clock (its nodes/{id}/config); unset: the hub's zone, 12h. */
  clock?: ClockSettings
  /** Publish a house action (Node-RED / Home Assistant act on it). */
  act(component: string, action: { action: string; room: string | null; state?: string }): void
  /** Send an event to the node (volume, stop, timer). */
  notify(event: EventBody<HubEvent>): void
  weather(): { summary: string; temperatureC?: number } | null
  setTimer(ms: number, label: string): void
  /** Cancels every running timer of this node; how many were running. Absent: no timers to cancel here. */
  cancelTimers?(): number
  /** This node's running timers, soonest first. */
  listTimers?(): Array<{ label: string; remainingMs: number }>
}

export interface SkillReply {
  text: string
  /** Stop any reply that is playing; say nothing more. */
  stop?: boolean
}

export interface Skill {
  id: string
  /**
   * Sentence templates: words, {slot}, (a|b) alternatives and [optional words] (`[please|can you]`
   * means: nothing, "please" or "can you"). The matcher, the ASR grammar and the offline bundle
   * are all generated from these: one template stands for every wording it expands to.
   */
  phrases: string[]
  /** Answerable from pre-synthesized audio when the hub is gone. */
  offline: boolean
  handle(slots: Record<string, string>, env: SkillEnv): SkillReply
  /**
   * What the offline bundle says instead of handle()'s text, when the hub being gone means the
   * skill cannot do what it would online (a house action: the device is reached through the hub).
   */
  offlineText?(slots: Record<string, string>): string
}

const numberWords = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten', 'eleven', 'twelve',
  'thirteen', 'fourteen', 'fifteen', 'sixteen', 'seventeen', 'eighteen', 'nineteen', 'twenty']
const tens: Record<string, number> = { thirty: 30, forty: 40, fifty: 50, sixty: 60 }
export const numberPhrases = [...numberWords.slice(1), 'thirty', 'forty', 'forty five', 'fifty', 'sixty']

export function parseNumber(s: string): number | undefined {
  if (/^\d+$/.test(s)) return Number(s)
  const parts = s.split(' ')
  let n = 0
  for (const p of parts) {
    const i = numberWords.indexOf(p)
    if (i >= 0) n += i
    else if (tens[p] !== undefined) n += tens[p]
    else return undefined
  }
  return n
}

export function spokenTime(d: Date, s: ClockSettings = {}): string {
  return `${clockText(d, s)}.`
}

export function spokenDate(d: Date, s: ClockSettings = {}): string {
  return `Today is ${d.toLocaleDateString('en-US', { weekday: 'long', month: 'long', day: 'numeric', ...(s.timeZone ? { timeZone: s.timeZone } : {}) })}.`
}

export const defaultRooms = ['kitchen', 'living room', 'bedroom', 'hall', 'bathroom', 'office', 'garage', 'dining room']

const minutes = (ms: number): string => {
  const m = Math.max(1, Math.round(ms / 60_000))
  return `${m} minute${m === 1 ? '' : 's'}`
}

export function builtinSkills(): Skill[] {
  return [
    { id: 'time', offline: true, phrases: ['what time is it [now|right now]', 'what is the time [now|right now]', '[can you] tell me the time [please]',
      'do you know what time it is'],
      handle: (_s, env) => ({ text: spokenTime(env.now, env.clock) }) },
    { id: 'date', offline: true, phrases: ['what is the date [today]', 'what day is it [today]', 'what is today date', 'which day is it [today]',
      'what day of the week is it', '[can you] tell me the date [please]'],
      handle: (_s, env) => ({ text: spokenDate(env.now, env.clock) }) },
    { id: 'light', offline: true, phrases: ['[please|can you] (turn|switch) (on|off) the {room} (light|lights) [please]',
      '[please|can you] (turn|switch) the {room} (light|lights) (on|off) [please]',
      '[please|can you] (turn|switch) (on|off) the (light|lights) in the {room} [please]',
      '(light|lights) (on|off) in the {room}', '{room} (light|lights) (on|off)'],
      handle: (s, env) => {
        const state = s.onoff ?? 'on'
        env.act('light', { action: 'set', room: s.room ?? null, state })
        return { text: `Turning ${state} the ${s.room} light.` }
      },
      // Offline the action is only written to the journal and never executed late (bundle/journal.ts).
      offlineText: (s) => `Sorry, I can't reach the ${s.room} light while the hub is offline.` },
    { id: 'timer', offline: true, phrases: ['[please|can you] (set|start) a timer for {number} (minute|minutes)', '[please|can you] (set|start) a {number} minute timer',
      'timer for {number} (minute|minutes)'],
      handle: (s, env) => {
        const n = parseNumber(s.number ?? '') ?? 1
        env.setTimer(n * 60_000, `${n} minute timer`)
        return { text: `Timer set for ${s.number} minute${n === 1 ? '' : 's'}.` }
      } },
    // Timers keep their word: "cancel the timer" cancels them ("stop" only stops what is playing).
    { id: 'timer_cancel', offline: true, phrases: ['[please] (cancel|stop|delete) the (timer|timers)', '[please] (cancel|stop|delete) all [the] timers', '(cancel|stop|delete) my (timer|timers)'],
      handle: (_s, env) => {
        const n = env.cancelTimers?.() ?? 0
        return { text: n === 0 ? 'There is no timer running.' : n === 1 ? 'Timer cancelled.' : `${n} timers cancelled.` }
      } },
    { id: 'timer_status', offline: false, phrases: ['how (long|much time) is left [on the timer|on my timer]', 'how long is left on the (timer|timers)',
      '(what|which) timers are (set|running)', 'list [the|my] timers'],
      handle: (_s, env) => {
        const t = env.listTimers?.() ?? []
        if (!t.length) return { text: 'There is no timer running.' }
        return { text: t.map((x) => `${minutes(x.remainingMs)} left on the ${x.label}`).join(', ') + '.' }
      } },
    { id: 'volume', offline: true, phrases: ['[turn the] volume (up|down)', '(turn|make) it (louder|quieter)', '(louder|quieter) please', 'turn it (up|down)',
      '(set|change) the volume to {number}', 'volume {number}'],
      handle: (s, env) => {
        const dir = (s.updown ?? (s.louderquieter === 'louder' ? 'up' : s.louderquieter === 'quieter' ? 'down' : undefined)) as 'up' | 'down' | undefined
        const n = s.number !== undefined ? parseNumber(s.number) : undefined
        const level = n !== undefined ? Math.min(100, Math.max(0, n)) : undefined
        env.notify({ type: 'volume', ...(dir ? { change: dir } : {}), ...(level !== undefined ? { level } : {}) })
        return { text: level !== undefined ? `Volume set to ${level}.` : `Volume ${dir}.` }
      } },
    // Stop what is playing; the same on the hub and offline (timers are cancelled only by name).
    { id: 'stop', offline: true, phrases: ['stop', 'cancel', 'never mind', 'be quiet', 'stop talking', 'quiet please'],
      handle: (_s, env) => {
        env.notify({ type: 'stop' })
        return { text: '', stop: true }
      } },
    { id: 'presence', offline: true, phrases: ['are you there', 'hello [mirror]', 'can you hear me', 'are you listening', 'hello are you there'],
      handle: () => ({ text: "Yes, I'm here." }) },
    { id: 'weather', offline: true, phrases: ['what is the weather [like] [today|outside]', 'what is the weather like in the {room}', 'how is the weather [today|outside]'],
      handle: (_s, env) => {
        const w = env.weather()
        if (!w) return { text: "I don't have a weather report yet." }
        return { text: w.temperatureC !== undefined ? `It's ${Math.round(w.temperatureC)} degrees and ${w.summary}.` : `It's ${w.summary}.` }
      } },
  ]
}

/** Expands `[a|b]` optional parts: one template per choice (including none). */
export function expandOptional(template: string): string[] {
  const m = /\[([^\]]*)\]/.exec(template)
  if (!m) return [template.replace(/\s+/g, ' ').trim()]
  return ['', ...m[1]!.split('|')].flatMap((o) => expandOptional(template.slice(0, m.index) + o + template.slice(m.index + m[0].length)))
}

/** Lowercase, expand contractions, drop punctuation: what ASR engines and people type differ here. */
export function normalize(text: string): string {
  return text.toLowerCase()
    .replace(/what's/g, 'what is').replace(/how's/g, 'how is').replace(/it's/g, 'it is').replace(/today's/g, 'today')
    .replace(/[^a-z0-9' ]+/g, ' ').replace(/'/g, '').replace(/\s+/g, ' ').trim()
}

interface Compiled { skill: Skill; re: RegExp; groups: string[] }

/** Template → regex. `(on|off)` becomes a named group `onoff`; `{room}` a group `room`. */
function compile(skill: Skill, template: string, slots: Record<string, string[]>): Compiled {
  const groups: string[] = []
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  const src = template.replace(/\{(\w+)\}|\(([^)]+)\)|([^{(]+)/g, (_m, slot: string, alt: string, lit: string) => {
    if (slot) {
      groups.push(slot)
      const values = (slots[slot] ?? []).slice().sort((a, b) => b.length - a.length).map(esc)
      return `(?<${slot}>${values.join('|') || '\\w+'})`
    }
    if (alt) {
      const name = alt.split('|').join('').replace(/\W+/g, '')
      const opts = alt.split('|').map(esc).join('|')
      if (groups.includes(name)) return `(?:${opts})`
      groups.push(name)
      return `(?<${name}>${opts})`
    }
    return esc(lit)
  })
  return { skill, re: new RegExp(`^(?:please )?${src}(?: please)?$`), groups }
}

export interface SkillMatch { skill: Skill; slots: Record<string, string> }

export class SkillMatcher {
  private readonly compiled: Compiled[]

  constructor(readonly skills: Skill[], readonly slots: Record<string, string[]> = { room: defaultRooms, number: numberPhrases }) {
    this.compiled = skills.flatMap((s) => s.phrases.flatMap(expandOptional).map((p) => compile(s, p, slots)))
  }

  match(transcript: string): SkillMatch | undefined {
    const text = normalize(transcript)
    for (const c of this.compiled) {
      const m = c.re.exec(text)
      if (m) return { skill: c.skill, slots: Object.fromEntries(Object.entries(m.groups ?? {}).filter(([, v]) => v !== undefined)) as Record<string, string> }
    }
    return undefined
  }

  /** Every concrete phrase the skills accept (slots and alternatives expanded), for an ASR grammar. */
  phrases(extra: string[] = []): string[] {
    const out = new Set<string>()
    const expand = (t: string): string[] => {
      const m = /\{(\w+)\}|\(([^)]+)\)/.exec(t)
      if (!m) return [t.replace(/\s+/g, ' ').trim()]
      const options = m[1] ? this.slots[m[1]] ?? [] : m[2]!.split('|')
      return options.flatMap((o) => expand(t.slice(0, m.index) + o + t.slice(m.index + m[0].length)))
    }
    for (const s of this.skills) for (const p of s.phrases.flatMap(expandOptional)) for (const e of expand(p)) out.add(e)
    for (const e of extra) out.add(normalize(e))
    return [...out]
  }
}
