// The memory intents, matched before the skills: "remember that …", "what did I tell you
// about …", "where are my/is the …", "forget that". Kept here (not in the skill grammar) so the
// ASR/intent work on the skills moves independently; text turns reach them without any ASR.

export type MemoryIntent =
  | { type: 'remember'; fact: string }
  | { type: 'recall'; about: string }
  | { type: 'forget'; about?: string }

const clean = (s: string) => s.trim().replace(/[.!?]+$/, '').trim()

const rules: Array<[RegExp, (m: RegExpExecArray) => MemoryIntent | undefined]> = [
  [/^(?:please )?remember(?: that)? (.+)$/i, (m) => (/^(that|it|this)$/i.test(clean(m[1]!)) ? undefined : { type: 'remember', fact: clean(m[1]!) })],
  [/^(?:please )?forget(?: that| it| about that)?$/i, () => ({ type: 'forget' })],
  [/^(?:please )?forget (?:about |that )?(.+)$/i, (m) => ({ type: 'forget', about: clean(m[1]!) })],
  [/^what did i (?:tell|say to) you about (.+)$/i, (m) => ({ type: 'recall', about: clean(m[1]!) })],
  [/^what do you (?:remember|know) about (.+)$/i, (m) => ({ type: 'recall', about: clean(m[1]!) })],
  [/^do you remember (.+)$/i, (m) => ({ type: 'recall', about: clean(m[1]!) })],
  [/^where (?:are|is|did i (?:put|leave)) (?:my|the|our) (.+)$/i, (m) => ({ type: 'recall', about: clean(m[1]!) })],
]

export function matchMemoryIntent(transcript: string): MemoryIntent | undefined {
  const text = clean(transcript.replace(/\s+/g, ' '))
  for (const [re, make] of rules) {
    const m = re.exec(text)
    if (m) {
      const intent = make(m)
      if (intent && !('fact' in intent && !intent.fact) && !('about' in intent && intent.about === '')) return intent
    }
  }
  return undefined
}

const swaps: Record<string, string> = { i: 'you', "i'm": "you're", me: 'you', my: 'your', mine: 'yours', myself: 'yourself', am: 'are', we: 'you', our: 'your', us: 'you' }

/** "my keys are in the drawer" → "your keys are in the drawer", for saying a fact back. */
export function secondPerson(fact: string): string {
  return fact.replace(/\b[\w']+\b/g, (w) => {
    const s = swaps[w.toLowerCase()]
    return s ?? w
  })
}
