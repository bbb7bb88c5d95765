// Offline answers from the bundle: the recognizer's grammar (the bundle's phrases), the reply
// for a transcript with its audio assembled from clips, and {time}/{date} built from fragments
// (broker/src/bundle.ts: timeFragmentKeys → its h<1..12> m<00..59> am|pm; dateFragmentKeys →
// today_is <weekday> <month> d<1..31>), in the node's time zone and 12/24-hour clock from its
// hub config (ClockSettings; unset: this machine's zone, 12h).
//   text "{time}" → "It's 9:07 PM" or "It's 21:07"; "{date}" → "Today is Wednesday, November 25th"
// Unmatched transcripts get manifest.fallbacks.offline ("I'm offline right now, I'll pass that
// on."), an empty one fallbacks.not_understood; a reply whose audio cannot be assembled (missing
// fragment or clip) falls back to the offline one too.
import { readFileSync } from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import { clockText, dateFragmentKeys, monthKeys, timeFragmentKeys, wallClock, weekdayKeys, type BundleReply, type ClockSettings, type Logger } from '@mirrormesh/broker'
import { jsgfFromPhrases, type JsgfOptions } from '@mirrormesh/speech'
import type { LoadedBundle } from './bundle-store.js'
import type { Recognition } from './recognizer.js'

export type FallbackKind = 'offline' | 'not_understood'

export interface OfflineAnswer {
  /**
   * The matched reply (see its action / timerMs / stop / event), or a fallback as a reply with
   * skill 'offline' | 'not_understood' and phrase ''; undefined when the bundle has no fallbacks.
   */
  reply: BundleReply | undefined
  /** True when `reply` answers the transcript (not a fallback). */
  matched: boolean
  /** Which fallback was used, if any. */
  fallback?: FallbackKind
  /** PCM16 16 kHz mono: the reply's clips joined. Empty when there is nothing to play. */
  pcm: Int16Array
  /** Reply text with {time}/{date} filled in. */
  text: string
}

/** Same normalization as jsgfFromPhrases: lowercase letters and inner apostrophes, single spaces. */
export function normalizePhrase(s: string): string {
  return s.normalize('NFKD').toLowerCase()
    .replace(/[^a-z']+/g, ' ')
    .split(' ')
    .map((w) => w.replace(/^'+|'+$/g, ''))
    .filter(Boolean)
    .join(' ')
}

const cap = (w: string): string => w.charAt(0).toUpperCase() + w.slice(1)
const ordinal = (n: number): string => `${n}${n % 10 === 1 && n !== 11 ? 'st' : n % 10 === 2 && n !== 12 ? 'nd' : n % 10 === 3 && n !== 13 ? 'rd' : 'th'}`

export function timeParts(now: Date, s: ClockSettings = {}): { keys: string[]; text: string } {
  return { keys: timeFragmentKeys(now, s), text: clockText(now, s) }
}

export function dateParts(now: Date, s: ClockSettings = {}): { keys: string[]; text: string } {
  const { weekday, month, day } = wallClock(now, s.timeZone)
  return { keys: dateFragmentKeys(now, s), text: `Today is ${cap(weekdayKeys[weekday]!)}, ${cap(monthKeys[month]!)} ${ordinal(day)}` }
}

/** One buffer of all `parts`, in order. */
export function concat(parts: Int16Array[]): Int16Array {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0))
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}

export class OfflineResponder {
  private readonly byPhrase = new Map<string, BundleReply>()
  private readonly fallbacks: Partial<Record<FallbackKind, BundleReply>> = {}
  private readonly clips = new Map<string, Int16Array>()
  private readonly early = new Map<string, boolean>()

  /** `clock`: the node's time zone and 12/24-hour setting, read at each answer (the hub may change them). */
  constructor(readonly bundle: LoadedBundle, private readonly log: Logger, private readonly clock: () => ClockSettings = () => ({})) {
    for (const r of bundle.manifest.replies) {
      const p = normalizePhrase(r.phrase)
      if (p && !this.byPhrase.has(p)) this.byPhrase.set(p, r)
    }
    for (const kind of ['offline', 'not_understood'] as const) {
      const fb = bundle.manifest.fallbacks?.[kind]
      if (fb) this.fallbacks[kind] = { phrase: '', skill: kind, text: fb.text, clips: fb.clips }
    }
    if (!this.fallbacks.offline) log.warn({ version: bundle.manifest.version }, 'offline bundle has no offline fallback reply')
  }

  /** Phrases the recognizer should accept (normalized, unique; the offline reply excluded). */
  grammarPhrases(): string[] {
    return [...this.byPhrase.keys()]
  }

  /**
   * Writes a JSGF grammar of the bundle's phrases to `file`; phrases with words missing from
   * `dictionary` are left out (logged). Returns the phrases kept.
   */
  async recognizerGrammar(file: string, opts: Pick<JsgfOptions, 'dictionary'> = {}): Promise<string[]> {
    const dropped = new Set<string>()
    const jsgf = jsgfFromPhrases(this.grammarPhrases(), {
      dictionary: opts.dictionary,
      onDropped: (phrase, words) => {
        dropped.add(phrase)
        this.log.warn({ phrase, words }, 'offline phrase left out of the grammar: words not in the dictionary')
      },
    })
    const tmp = `${file}.tmp`
    await fs.mkdir(path.dirname(file), { recursive: true })
    await fs.writeFile(tmp, jsgf)
    await fs.rename(tmp, file)
    return this.grammarPhrases().filter((p) => !dropped.has(p))
  }

  /**
   * Whether `phrase` may be answered at an early endpoint, before the user has surely finished:
   * true unless a longer grammar phrase starts with it and gets another reply. "what day is it"
   * (also "… today", same reply) may; a phrase whose extension means something else waits for
   * the listener's end of utterance instead, so that pausing before the rest costs nothing.
   */
  answersEarly(phrase: string): boolean {
    const p = normalizePhrase(phrase)
    let ok = this.early.get(p)
    if (ok === undefined) {
      const key = (r: BundleReply | undefined): string => JSON.stringify(r && [r.skill, r.text, r.clips, r.action, r.timerMs, r.stop, r.event])
      const own = key(this.byPhrase.get(p))
      ok = [...this.byPhrase].every(([q, r]) => !q.startsWith(`${p} `) || key(r) === own)
      this.early.set(p, ok)
    }
    return ok
  }

  /** Reads every clip the replies and fragments use, so answer() never touches the disk. */
  async preload(): Promise<void> {
    const m = this.bundle.manifest
    const names = new Set([...Object.values(m.fragments), ...m.replies.flatMap((r) => r.clips), ...Object.values(m.fallbacks ?? {}).flatMap((f) => f.clips)])
    for (const n of names) if (!n.startsWith('{')) this.clip(n)
  }

  /** The reply to a transcript; '' (nothing usable heard) gets the not_understood fallback. */
  answer(transcript: string, now: Date = new Date()): OfflineAnswer {
    const phrase = normalizePhrase(transcript)
    const reply = phrase ? this.byPhrase.get(phrase) : undefined
    if (reply) {
      const built = this.build(reply, now)
      if (built) return { reply, matched: true, ...built }
    }
    return this.fallback(phrase || reply ? 'offline' : 'not_understood', now)
  }

  /**
   * The reply to a recognition: a confident phrase gets its answer; speech the grammar does not
   * cover (empty, uncovered_speech, duration_mismatch, multiple) gets 'offline' (worth passing on:
   * the agent journals it); too quiet / too short gets 'not_understood'.
   */
  answerFor(r: Pick<Recognition, 'text' | 'confident' | 'reason'>, now: Date = new Date()): OfflineAnswer {
    if (r.confident) return this.answer(r.text, now)
    return this.fallback(r.reason === 'too_quiet' || r.reason === 'too_short' ? 'not_understood' : 'offline', now)
  }

  /** One fragment's audio by key (e.g. 'timer_done'); undefined when the bundle lacks it. */
  fragment(key: string): Int16Array | undefined {
    const name = this.bundle.manifest.fragments[key]
    return name ? this.clip(name) : undefined
  }

  /** A fallback reply ('not_understood' uses 'offline' when the bundle lacks it). */
  fallback(kind: FallbackKind, now: Date = new Date()): OfflineAnswer {
    const used: FallbackKind = this.fallbacks[kind] ? kind : 'offline'
    const fb = this.fallbacks[used]
    if (!fb) return { reply: undefined, matched: false, pcm: new Int16Array(0), text: '' }
    return { reply: fb, matched: false, fallback: used, ...(this.build(fb, now) ?? { pcm: new Int16Array(0), text: fb.text }) }
  }

  private build(reply: BundleReply, now: Date): { pcm: Int16Array; text: string } | undefined {
    const parts: Int16Array[] = []
    let time: ReturnType<typeof timeParts> | undefined
    let date: ReturnType<typeof dateParts> | undefined
    const clock = this.clockSettings()
    for (const c of reply.clips) {
      let names: string[]
      if (c === '{time}' || c === '{date}') {
        const p = c === '{time}' ? (time ??= timeParts(now, clock)) : (date ??= dateParts(now, clock))
        const files = p.keys.map((k) => this.bundle.manifest.fragments[k])
        const missing = p.keys.filter((_, i) => !files[i])
        if (missing.length > 0) {
          this.log.warn({ skill: reply.skill, missing }, `offline reply needs fragments the bundle lacks: ${missing.join(', ')}`)
          return undefined
        }
        names = files as string[]
      } else {
        names = [c]
      }
      for (const n of names) {
        const pcm = this.clip(n)
        if (!pcm) return undefined
        parts.push(pcm)
      }
    }
    let text = reply.text
    if (text.includes('{time}')) text = text.replaceAll('{time}', (time ??= timeParts(now, clock)).text)
    if (text.includes('{date}')) text = text.replaceAll('{date}', (date ??= dateParts(now, clock)).text)
    return { pcm: concat(parts), text }
  }

  /** The node's clock settings; a bundle from before 24-hour fragments existed says the time on a 12-hour clock. */
  private clockSettings(): ClockSettings {
    const s = this.clock()
    return s.clock === '24h' && !this.bundle.manifest.fragments.hundred ? { ...s, clock: '12h' } : s
  }

  /** A clip's samples, read once (synchronously: clips are small and local) and cached. */
  private clip(name: string): Int16Array | undefined {
    const cached = this.clips.get(name)
    if (cached) return cached
    if (path.basename(name) !== name) return undefined
    try {
      const buf = readFileSync(path.join(this.bundle.dir, name))
      // Copy into an aligned buffer of its own (Buffer pools are not 2-byte aligned).
      const pcm = new Int16Array(buf.length >> 1)
      new Uint8Array(pcm.buffer).set(buf.subarray(0, pcm.length * 2))
      this.clips.set(name, pcm)
      return pcm
    } catch (err) {
      this.log.warn({ clip: name, err: (err as Error).message }, 'offline clip unreadable')
      return undefined
    }
  }
}
