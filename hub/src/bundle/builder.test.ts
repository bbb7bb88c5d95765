import { createHash } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { resolveClips, timeFragmentKeys, dateFragmentKeys } from '@mirrormesh/broker'
import { EspeakTts } from '@mirrormesh/speech'
import { builtinSkills } from '../pipeline/skills.js'
import { buildBundle, clipName, numberWords, ordinalWords, trimSilence, type BuiltBundle } from './builder.js'

const tts = new EspeakTts({ voice: 'en-us' })
const hasEspeak = tts.health() === 'ok'
let dir: string
let first: BuiltBundle
let second: BuiltBundle

describe('words', () => {
  it('says numbers and ordinals', () => {
    expect(numberWords(5)).toBe('five')
    expect(numberWords(21)).toBe('twenty one')
    expect(numberWords(40)).toBe('forty')
    expect(ordinalWords(3)).toBe('third')
    expect(ordinalWords(20)).toBe('twentieth')
    expect(ordinalWords(31)).toBe('thirty first')
  })

  it('trims leading and trailing silence', () => {
    const pcm = Buffer.alloc(16000 * 2)
    for (let i = 8000; i < 9000; i++) pcm.writeInt16LE(5000, i * 2)
    const t = trimSilence(pcm)
    expect(t.length / 2).toBe(1000 + 160 + 960)
    expect(trimSilence(Buffer.alloc(100)).length).toBe(0)
  })
})

// Skipped only on a dev machine without Debian's espeak-ng; CI installs it, and there a missing one fails.
describe.skipIf(!hasEspeak && !process.env.CI)('buildBundle with espeak', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mm-bundle-'))
    const opts = { skills: builtinSkills(), rooms: ['kitchen', 'hall'], tts, voice: 'espeak:en-us', outDir: dir }
    first = await buildBundle(opts)
    second = await buildBundle(opts)
  }, 120_000)
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('writes manifest.json and every listed file, with matching sha256', async () => {
    const m = first.manifest
    expect(m.v).toBe(1)
    expect(m.sampleRate).toBe(16000)
    expect(first.dir).toBe(join(dir, first.version))
    const raw = await readFile(join(first.dir, 'manifest.json'))
    expect(createHash('sha256').update(raw).digest('hex')).toBe(first.manifestSha256)
    expect(JSON.parse(raw.toString())).toEqual(m)
    for (const f of m.files) {
      const b = await readFile(join(first.dir, f.name))
      expect(b.length).toBe(f.bytes)
      expect(createHash('sha256').update(b).digest('hex')).toBe(f.sha256)
    }
    // Nothing else in the folder; no temp folders left.
    expect((await readdir(first.dir)).sort()).toEqual([...m.files.map((f) => f.name), 'manifest.json'].sort())
    expect((await readdir(dir)).filter((n) => n.startsWith('.tmp-'))).toEqual([])
  })

  it('answers the offline phrases', () => {
    const m = first.manifest
    const by = (p: string) => m.replies.find((r) => r.phrase === p)
    const names = new Set(m.files.map((f) => f.name))
    expect(by('are you there')).toMatchObject({ skill: 'presence', text: "Yes, I'm here." })
    expect(by('turn on the kitchen light')).toMatchObject({ skill: 'light', text: "Sorry, I can't reach the kitchen light while the hub is offline.", action: { component: 'light', action: 'set', room: 'kitchen', state: 'on' } })
    expect(by('switch the hall lights off')).toMatchObject({ text: "Sorry, I can't reach the hall light while the hub is offline.", action: { room: 'hall', state: 'off' } })
    // Timers keep their word offline: "cancel the timer" cancels them (the node acts on the event); "stop" only stops playback.
    expect(by('cancel the timer')).toMatchObject({ skill: 'timer_cancel', text: 'Timer cancelled.', event: { type: 'timer_cancel' } })
    expect(by('stop')).toMatchObject({ skill: 'stop', stop: true })
    expect(by('stop')!.event).toBeUndefined()
    expect(by('how long is left')).toBeUndefined() // read aloud from live timers: online only
    // Identical texts share one clip.
    expect(by('turn on the kitchen lights')!.clips).toEqual(by('turn on the kitchen light')!.clips)
    expect(by('what is the weather')!.text).toBe("I don't have a weather report yet.")
    expect(by('what time is it')).toMatchObject({ skill: 'time', clips: ['{time}'] })
    expect(by('what day is it')).toMatchObject({ skill: 'date', clips: ['{date}'] })
    const timer = by('set a timer for five minutes')!
    expect(timer.timerMs).toBe(300_000)
    expect(timer.clips).toEqual([m.fragments.timer_set_for, m.fragments.n5, m.fragments.minutes])
    expect(by('set a timer for one minute')!.clips[2]).toBe(m.fragments.minute)
    expect(by('stop')).toMatchObject({ skill: 'stop', clips: [], stop: true })
    expect(by('volume up')).toMatchObject({ text: 'Volume up.', event: { type: 'volume', change: 'up' } })
    expect(m.fallbacks?.offline.text).toBe("I'm offline right now, I'll pass that on.")
    expect(m.fallbacks?.not_understood.text).toBe("Sorry, I didn't catch that.")
    for (const r of [...m.replies, ...Object.values(m.fallbacks!)]) {
      for (const c of r.clips) if (!c.startsWith('{')) expect(names.has(c)).toBe(true)
    }
    // Only rooms asked for.
    expect(m.replies.some((r) => r.phrase.includes('bedroom'))).toBe(false)
  })

  it('has time and date fragments for every hour, minute and day', () => {
    const f = first.manifest.fragments
    const names = new Set(first.manifest.files.map((x) => x.name))
    const keys = ['its', 'am', 'pm', 'today_is']
    for (let h = 1; h <= 12; h++) keys.push(`h${h}`)
    for (let m = 0; m < 60; m++) keys.push(`m${String(m).padStart(2, '0')}`)
    for (let d = 1; d <= 31; d++) keys.push(`d${d}`)
    for (const k of keys) expect(names.has(f[k]!), k).toBe(true)
    expect(f.m05).toBe(clipName('espeak:en-us', 'oh five'))
    expect(f.m00).toBe(clipName('espeak:en-us', "o'clock"))
    // Same text, same clip: "five" the hour and "five" the timer length.
    expect(f.h5).toBe(f.n5)
    const at = new Date(2026, 2, 3, 15, 5)
    expect(timeFragmentKeys(at)).toEqual(['its', 'h3', 'm05', 'pm'])
    expect(dateFragmentKeys(at)).toEqual(['today_is', 'tuesday', 'march', 'd3'])
    expect(resolveClips(first.manifest, ['{time}'], at)).toEqual([f.its, f.h3, f.m05, f.pm])
    // A 24-hour clock in the node's zone (issue #12): "fourteen hundred", "zero oh five".
    for (let h = 0; h <= 23; h++) expect(names.has(f[`h${h}`]!), `h${h}`).toBe(true)
    expect(f.hundred).toBe(clipName('espeak:en-us', 'hundred'))
    expect(resolveClips(first.manifest, ['{time}'], new Date(Date.UTC(2026, 2, 3, 14, 0)), { timeZone: 'UTC', clock: '24h' })).toEqual([f.its, f.h14, f.hundred])
    expect(resolveClips(first.manifest, ['{time}'], new Date(Date.UTC(2026, 2, 3, 18, 35)), { timeZone: 'Asia/Kolkata', clock: '24h' })).toEqual([f.its, f.h0, f.m05])
  })

  it('gives the same version on a rebuild, from the clip cache', () => {
    expect(second.version).toBe(first.version)
    expect(second.manifestSha256).toBe(first.manifestSha256)
    expect(second.stats).toMatchObject({ synthesized: 0, reused: true })
    expect(first.stats.synthesized).toBe(first.manifest.files.length)
  })

  it('clips are speech, not silence', async () => {
    const reply = first.manifest.replies.find((r) => r.phrase === 'are you there')!
    const pcm = await readFile(join(first.dir, reply.clips[0]!))
    const samples = new Int16Array(pcm.buffer, pcm.byteOffset, pcm.length >> 1)
    let sum = 0
    for (const s of samples) sum += s * s
    const rms = Math.sqrt(sum / samples.length)
    expect(samples.length).toBeGreaterThan(16000 * 0.4)
    expect(rms).toBeGreaterThan(500)
  })
})
