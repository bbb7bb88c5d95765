// Offline reply bundle builder: every phrase an offline skill accepts, its reply text and
// pre-synthesized audio (raw PCM16LE mono 16 kHz), plus the fragments a node strings
// together for the time, the date and timer lengths. Identical texts share one clip, named
// by a hash of voice + text; clips are cached across rebuilds in <outDir>/.clips. The
// bundle folder <outDir>/<version> appears atomically (built under .tmp-*, then renamed).
import { createHash, randomBytes } from 'node:crypto'
import { copyFile, link, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { BundleFile, BundleManifest, BundleReply, Logger } from '@mirrormesh/broker'
import { monthKeys, weekdayKeys, writeFileDurable } from '@mirrormesh/broker'
import type { TtsEngine } from '@mirrormesh/speech'
import { SkillMatcher, numberPhrases, parseNumber, type Skill, type SkillEnv } from '../pipeline/skills.js'

export const OFFLINE_TEXT = "I'm offline right now, I'll pass that on."
export const NOT_UNDERSTOOD_TEXT = "Sorry, I didn't catch that."

export interface BuildBundleOptions {
  skills: Skill[]
  rooms: string[]
  tts: TtsEngine
  /** Voice label recorded in the manifest and mixed into clip names (a new voice means new clips). */
  voice: string
  /** The bundles folder, e.g. <stateDir>/bundles; the bundle lands in <outDir>/<version>. */
  outDir: string
  log?: Logger
  /** Last known weather: the weather reply says it; null gives "I don't have a weather report yet." */
  weather?: { summary: string; temperatureC?: number } | null
  /** Syntheses at once (default 4, at most 4). */
  concurrency?: number
  /** Per-clip synthesis limit (default 20 s). */
  clipTimeoutMs?: number
  signal?: AbortSignal
}

export interface BuildStats {
  clips: number
  synthesized: number
  cached: number
  bytes: number
  ms: number
  /** The same content was already on disk: nothing was written. */
  reused: boolean
}

export interface BuiltBundle {
  version: string
  dir: string
  manifest: BundleManifest
  /** sha256 of the manifest.json bytes, as announced on cache/manifest. */
  manifestSha256: string
  stats: BuildStats
}

const SAMPLE_RATE = 16000
const ones = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten', 'eleven', 'twelve',
  'thirteen', 'fourteen', 'fifteen', 'sixteen', 'seventeen', 'eighteen', 'nineteen']
const tensWords = ['', '', 'twenty', 'thirty', 'forty', 'fifty', 'sixty']
const ordinalOnes = ['', 'first', 'second', 'third', 'fourth', 'fifth', 'sixth', 'seventh', 'eighth', 'ninth', 'tenth', 'eleventh', 'twelfth',
  'thirteenth', 'fourteenth', 'fifteenth', 'sixteenth', 'seventeenth', 'eighteenth', 'nineteenth']

/** 0..69 in words: "twenty one". */
export function numberWords(n: number): string {
  if (n < 20) return ones[n]!
  const t = tensWords[Math.floor(n / 10)]!
  return n % 10 ? `${t} ${ones[n % 10]}` : t
}

/** 1..31 as an ordinal: "twenty first", "thirtieth". */
export function ordinalWords(n: number): string {
  if (n < 20) return ordinalOnes[n]!
  if (n % 10 === 0) return n === 20 ? 'twentieth' : 'thirtieth'
  return `${tensWords[Math.floor(n / 10)]} ${ordinalOnes[n % 10]}`
}

const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1)

/** Fragment key → text to say. */
export function fragmentTexts(): Record<string, string> {
  const f: Record<string, string> = { its: "It's" }
  // h0..h23: a 24-hour clock says "fourteen oh seven", "fourteen hundred" on the hour.
  for (let h = 0; h <= 23; h++) f[`h${h}`] = numberWords(h)
  f.hundred = 'hundred'
  for (let m = 0; m < 60; m++) f[`m${String(m).padStart(2, '0')}`] = m === 0 ? "o'clock" : m < 10 ? `oh ${ones[m]}` : numberWords(m)
  f.am = 'A M'
  f.pm = 'P M'
  f.today_is = 'Today is'
  for (const w of weekdayKeys) f[w] = cap(w)
  for (const m of monthKeys) f[m] = cap(m)
  for (let d = 1; d <= 31; d++) f[`d${d}`] = ordinalWords(d)
  f.timer_set_for = 'Timer set for'
  f.timer_done = 'Your timer is done.'
  f.minute = 'minute'
  f.minutes = 'minutes'
  for (const p of numberPhrases) {
    const n = parseNumber(p)
    if (n !== undefined) f[`n${n}`] = p
  }
  return f
}

/** Clip file name for a text in a voice: sha256 prefix, so identical texts share one file. */
export function clipName(voice: string, text: string): string {
  return createHash('sha256').update(`${voice}\n${text}`).digest('hex').slice(0, 20) + '.pcm'
}

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex')

interface Recorded {
  action?: BundleReply['action']
  timerMs?: number
  event?: Record<string, unknown> & { type: string }
}

function recordingEnv(weather: BuildBundleOptions['weather']): { env: SkillEnv; rec: Recorded } {
  const rec: Recorded = {}
  const env: SkillEnv = {
    nodeId: 'bundle',
    now: new Date(0),
    act: (component, a) => { rec.action = { component, action: a.action, room: a.room, ...(a.state !== undefined ? { state: a.state } : {}) } },
    notify: (event) => { rec.event = event },
    weather: () => weather ?? null,
    setTimer: (ms) => { rec.timerMs = ms },
    // The node cancels its own timers for this reply (offline-mode.ts); the bundle says "Timer cancelled."
    cancelTimers: () => { rec.event = { type: 'timer_cancel' }; return 1 },
  }
  return { env, rec }
}

/** Replies (with clip *texts* for now) for every phrase the offline skills accept. */
function planReplies(opts: BuildBundleOptions, frag: (key: string) => string, say: (text: string) => string): BundleReply[] {
  const slots = { room: opts.rooms, number: numberPhrases }
  const replies: BundleReply[] = []
  const seen = new Set<string>()
  for (const skill of opts.skills) {
    if (!skill.offline) continue
    const matcher = new SkillMatcher([skill], slots)
    for (const phrase of matcher.phrases()) {
      if (seen.has(phrase)) continue
      seen.add(phrase)
      const m = matcher.match(phrase)
      if (!m) {
        opts.log?.warn({ skill: skill.id, phrase }, 'bundle: phrase does not match its own skill; left out')
        continue
      }
      if (skill.id === 'time') { replies.push({ phrase, skill: skill.id, text: '{time}', clips: ['{time}'] }); continue }
      if (skill.id === 'date') { replies.push({ phrase, skill: skill.id, text: '{date}', clips: ['{date}'] }); continue }
      const { env, rec } = recordingEnv(opts.weather)
      const handled = skill.handle(m.slots, env)
      const r = skill.offlineText ? { ...handled, text: skill.offlineText(m.slots) } : handled
      const reply: BundleReply = { phrase, skill: skill.id, text: r.text, clips: [] }
      if (r.stop) reply.stop = true
      else if (skill.id === 'timer' && rec.timerMs !== undefined) {
        const n = Math.round(rec.timerMs / 60_000)
        reply.clips = [frag('timer_set_for'), frag(`n${n}`) ?? say(numberWords(n)), frag(n === 1 ? 'minute' : 'minutes')]
      } else if (r.text) reply.clips = [say(r.text)]
      if (rec.action) reply.action = rec.action
      if (rec.timerMs !== undefined) reply.timerMs = rec.timerMs
      if (rec.event && !r.stop) reply.event = rec.event
      replies.push(reply)
    }
  }
  return replies
}

/** PCM16 bytes with leading/trailing near-silence cut (10 ms kept before, 60 ms after), so fragments join tightly. */
export function trimSilence(pcm: Buffer, threshold = 300): Buffer {
  const n = pcm.length >> 1
  let a = 0
  while (a < n && Math.abs(pcm.readInt16LE(a * 2)) < threshold) a++
  if (a === n) return pcm.subarray(0, 0)
  let b = n - 1
  while (b > a && Math.abs(pcm.readInt16LE(b * 2)) < threshold) b--
  const start = Math.max(0, a - 160)
  const end = Math.min(n, b + 1 + 960)
  return pcm.subarray(start * 2, end * 2)
}

async function synthesize(tts: TtsEngine, text: string, signal: AbortSignal): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const chunk of tts.synthesize(text, signal)) parts.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))
  const le = Buffer.concat(parts)
  // Int16Array is host-endian; the wire format is little-endian.
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) le.swap16()
  return trimSilence(le)
}

async function exists(p: string): Promise<boolean> {
  try { await stat(p); return true } catch { return false }
}

/** Run `fn` over items, at most `n` at a time. */
async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!)
  }
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker))
}

export async function buildBundle(opts: BuildBundleOptions): Promise<BuiltBundle> {
  const t0 = performance.now()
  const { outDir, voice, tts, log } = opts
  const concurrency = Math.max(1, Math.min(4, opts.concurrency ?? 4))
  const clipDir = join(outDir, '.clips')
  await mkdir(clipDir, { recursive: true })

  // Text → clip name; every text is synthesized once.
  const texts = new Map<string, string>()
  const say = (text: string) => {
    let name = texts.get(text)
    if (!name) { name = clipName(voice, text); texts.set(text, name) }
    return name
  }
  const fragmentText = fragmentTexts()
  const fragments: Record<string, string> = {}
  for (const [key, text] of Object.entries(fragmentText)) fragments[key] = say(text)
  const replies = planReplies(opts, (k) => fragments[k]!, say)
  const fallbacks = {
    offline: { text: OFFLINE_TEXT, clips: [say(OFFLINE_TEXT)] },
    not_understood: { text: NOT_UNDERSTOOD_TEXT, clips: [say(NOT_UNDERSTOOD_TEXT)] },
  }

  // Synthesize what the cache lacks.
  let synthesized = 0
  let cached = 0
  const data = new Map<string, Buffer>()
  await pool([...texts], concurrency, async ([text, name]) => {
    opts.signal?.throwIfAborted()
    const cachePath = join(clipDir, name)
    const hit = await readFile(cachePath).catch(() => undefined)
    if (hit && hit.length > 0) { data.set(name, hit); cached++; return }
    const signal = AbortSignal.any([AbortSignal.timeout(opts.clipTimeoutMs ?? 20_000), ...(opts.signal ? [opts.signal] : [])])
    const pcm = await synthesize(tts, text, signal)
    if (pcm.length === 0) throw new Error(`bundle: TTS gave silence for ${JSON.stringify(text)}`)
    const tmp = `${cachePath}.${randomBytes(4).toString('hex')}.tmp`
    await writeFile(tmp, pcm)
    await rename(tmp, cachePath)
    data.set(name, pcm)
    synthesized++
  })

  const files: BundleFile[] = [...data].map(([name, b]) => ({ name, sha256: sha256(b), bytes: b.length }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  const body = { voice, sampleRate: SAMPLE_RATE as 16000, files, replies, fragments, fallbacks }
  const version = sha256(JSON.stringify(body)).slice(0, 16)
  const bytes = files.reduce((s, f) => s + f.bytes, 0)
  const dir = join(outDir, version)
  const stats = (reused: boolean): BuildStats => ({ clips: files.length, synthesized, cached, bytes, ms: Math.round(performance.now() - t0), reused })

  // Same content already built (e.g. a restart): keep it as it is.
  if (await exists(join(dir, 'manifest.json'))) {
    const raw = await readFile(join(dir, 'manifest.json'))
    const manifest = JSON.parse(raw.toString('utf8')) as BundleManifest
    const s = stats(true)
    log?.info({ version, ...s }, 'offline bundle unchanged')
    return { version, dir, manifest, manifestSha256: sha256(raw), stats: s }
  }

  const manifest: BundleManifest = { v: 1, version, createdAt: new Date().toISOString(), ...body }
  const tmpDir = join(outDir, `.tmp-${version}-${randomBytes(4).toString('hex')}`)
  await mkdir(tmpDir)
  try {
    for (const f of files) {
      const src = join(clipDir, f.name)
      const dst = join(tmpDir, f.name)
      // A hard link shares the cache's bytes; the cache file is never rewritten in place.
      await link(src, dst).catch(() => copyFile(src, dst))
    }
    const raw = Buffer.from(JSON.stringify(manifest))
    await writeFileDurable(join(tmpDir, 'manifest.json'), raw)
    await rename(tmpDir, dir)
    const s = stats(false)
    log?.info({ version, ...s }, 'offline bundle built')
    return { version, dir, manifest, manifestSha256: sha256(raw), stats: s }
  } catch (err) {
    await rm(tmpDir, { recursive: true, force: true })
    // Lost a race with another build of the same content: theirs is as good as ours.
    if (await exists(join(dir, 'manifest.json'))) {
      const raw = await readFile(join(dir, 'manifest.json'))
      return { version, dir, manifest: JSON.parse(raw.toString('utf8')) as BundleManifest, manifestSha256: sha256(raw), stats: stats(true) }
    }
    throw err
  }
}
