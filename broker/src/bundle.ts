// The offline reply bundle: what a mirror can answer alone when the hub is gone.
// The hub builds it from the skills (offline: true) with pre-synthesized audio, announces
// it on the retained cache/manifest topic, and serves the files over its HTTP API at
// GET /api/bundle/{version}/{file}. Audio files are raw PCM16LE mono 16 kHz (`.pcm`).

export interface BundleFile {
  name: string
  sha256: string
  bytes: number
}

export interface BundleReply {
  /** What the user says (normalized lowercase words, as in the ASR grammar). */
  phrase: string
  /** Skill id that answers it. */
  skill: string
  /** Text of the reply, for the screen; may contain {time}/{date} placeholders. */
  text: string
  /** Files to play in order; a `{time}` or `{date}` entry is assembled from fragments at play time. */
  clips: string[]
  /** House action to publish when the node is back online, e.g. { component: 'light', action: 'set', room, state }. */
  action?: { component: string; action: string; room: string | null; state?: string }
  /** Timer skill: the node runs this timer itself (ms). */
  timerMs?: number
  /** Stop skill: stop whatever is playing; no clips. */
  stop?: boolean
  /** Event the node applies locally, e.g. { type: 'volume', change: 'up' }. */
  event?: Record<string, unknown> & { type: string }
}

/** A reply that is not tied to a phrase (see BundleManifest.fallbacks). */
export interface BundleFallback {
  text: string
  clips: string[]
}

export interface BundleManifest {
  v: 1
  /** Content hash: changes whenever any file or reply changes. */
  version: string
  createdAt: string
  voice: string
  sampleRate: 16000
  files: BundleFile[]
  replies: BundleReply[]
  /** Fragment key → file name: hours "h1".."h12", minutes "m00".."m59", "am", "pm", "its", weekdays, months, "d1".."d31"… */
  fragments: Record<string, string>
  /** offline: anything not matched while the hub is gone; not_understood: empty/unclear transcript. */
  fallbacks?: { offline: BundleFallback; not_understood: BundleFallback }
}

/**
 * How a node tells the time (its nodes/{id}/config): an IANA time zone (absent: the local zone of
 * the process answering) and a 12- or 24-hour clock (absent: 12h). Online and offline use the same.
 */
export interface ClockSettings {
  timeZone?: string
  clock?: '12h' | '24h'
}

/** True for a time zone this runtime knows (IANA names such as "Europe/Berlin", or "UTC"). */
export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz })
    return true
  } catch {
    return false
  }
}

/** The wall clock of `d` in `timeZone` (absent: this process's local zone). */
export function wallClock(d: Date, timeZone?: string): { hour: number; minute: number; weekday: number; month: number; day: number } {
  if (!timeZone) return { hour: d.getHours(), minute: d.getMinutes(), weekday: d.getDay(), month: d.getMonth(), day: d.getDate() }
  const parts = Object.fromEntries(new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', hour: 'numeric', minute: 'numeric', weekday: 'short', month: 'numeric', day: 'numeric' })
    .formatToParts(d).map((p) => [p.type, p.value]))
  return { hour: Number(parts.hour) % 24, minute: Number(parts.minute), weekday: ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'].indexOf(parts.weekday!), month: Number(parts.month) - 1, day: Number(parts.day) }
}

/** "It's 2:07 PM" (12h) or "It's 14:07" (24h), in the node's zone. */
export function clockText(d: Date, s: ClockSettings = {}): string {
  const { hour, minute } = wallClock(d, s.timeZone)
  const mm = String(minute).padStart(2, '0')
  return s.clock === '24h' ? `It's ${String(hour).padStart(2, '0')}:${mm}` : `It's ${hour % 12 || 12}:${mm} ${hour < 12 ? 'AM' : 'PM'}`
}

/**
 * Fragment keys that say a clock time: its, h1..h12, m00..m59, am|pm; on a 24-hour clock
 * its, h0..h23, m01..m59 or "hundred" on the hour ("fourteen hundred"), no am/pm.
 */
export function timeFragmentKeys(d: Date, s: ClockSettings = {}): string[] {
  const { hour: h, minute } = wallClock(d, s.timeZone)
  if (s.clock === '24h') return ['its', `h${h}`, minute === 0 ? 'hundred' : `m${String(minute).padStart(2, '0')}`]
  return ['its', `h${h % 12 || 12}`, `m${String(minute).padStart(2, '0')}`, h < 12 ? 'am' : 'pm']
}

export const weekdayKeys = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'] as const
export const monthKeys = ['january', 'february', 'march', 'april', 'may', 'june', 'july', 'august', 'september', 'october', 'november', 'december'] as const

/** Fragment keys that say a date: today_is, weekday, month, d1..d31 (ordinal) — "Today is Tuesday, March third". */
export function dateFragmentKeys(d: Date, s: ClockSettings = {}): string[] {
  const { weekday, month, day } = wallClock(d, s.timeZone)
  return ['today_is', weekdayKeys[weekday]!, monthKeys[month]!, `d${day}`]
}

/** Expand a reply's clips: `{time}`/`{date}` become fragment file names; other entries are file names. */
export function resolveClips(manifest: Pick<BundleManifest, 'fragments'>, clips: string[], now: Date, s: ClockSettings = {}): string[] {
  return clips.flatMap((c) => {
    const keys = c === '{time}' ? timeFragmentKeys(now, s) : c === '{date}' ? dateFragmentKeys(now, s) : undefined
    if (!keys) return [c]
    return keys.map((k) => manifest.fragments[k]).filter((f): f is string => f !== undefined)
  })
}

/** Where a node fetches a bundle file from the hub's HTTP API. */
export function bundleFilePath(version: string, file: string): string {
  return `/api/bundle/${encodeURIComponent(version)}/${encodeURIComponent(file)}`
}
