import { mkdtempSync, rmSync } from 'node:fs'
import fs from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLogger, type ClockSettings } from '@mirrormesh/broker'
import { readDictionaryWords } from '@mirrormesh/speech'
import { BundleStore, type LoadedBundle } from './bundle-store.js'
import { dateParts, normalizePhrase, OfflineResponder, timeParts } from './responder.js'
import { announcementOf, makeTestBundle, serveBundles, type TestBundle } from '../../../test/support/offline-bundle.js'

const log = createLogger({ name: 'test', level: 'silent' })
const root = mkdtempSync(path.join(tmpdir(), 'mm-resp-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

async function install(b: TestBundle, name: string): Promise<LoadedBundle> {
  const srv = await serveBundles(b)
  try {
    const store = await BundleStore.open(path.join(root, name), log)
    expect((await store.sync(announcementOf(b), srv.url)).status).toBe('installed')
    return store.current()!
  } finally {
    await srv.close()
  }
}

/** The marker values of the clips joined in `pcm` (each test clip is 4 equal samples). */
function markersOf(pcm: Int16Array): number[] {
  const out: number[] = []
  for (let i = 0; i < pcm.length; i += 4) out.push(pcm[i]!)
  return out
}

describe('time and date parts', () => {
  it('uses 12-hour keys with zero-padded minutes', () => {
    expect(timeParts(new Date(2026, 10, 25, 0, 5))).toEqual({ keys: ['its', 'h12', 'm05', 'am'], text: "It's 12:05 AM" })
    expect(timeParts(new Date(2026, 10, 25, 12, 0))).toEqual({ keys: ['its', 'h12', 'm00', 'pm'], text: "It's 12:00 PM" })
    expect(timeParts(new Date(2026, 10, 25, 22, 59))).toEqual({ keys: ['its', 'h10', 'm59', 'pm'], text: "It's 10:59 PM" })
    expect(dateParts(new Date(2026, 10, 25))).toEqual({ keys: ['today_is', 'wednesday', 'november', 'd25'], text: 'Today is Wednesday, November 25th' })
    expect(dateParts(new Date(2026, 2, 1)).text).toBe('Today is Sunday, March 1st')
    expect(dateParts(new Date(2026, 2, 12)).text).toBe('Today is Thursday, March 12th')
    expect(dateParts(new Date(2026, 2, 23)).text).toBe('Today is Monday, March 23rd')
  })

  it('normalizes transcripts like the grammar does', () => {
    expect(normalizePhrase("  What TIME is it?! ")).toBe('what time is it')
  })
})

describe('OfflineResponder', () => {
  const b = makeTestBundle()
  let bundle: LoadedBundle
  let r: OfflineResponder
  beforeAll(async () => {
    bundle = await install(b, 'full')
    r = new OfflineResponder(bundle, log)
  })
  const m = (file: string): number => b.markers.get(file)!

  it('lists the grammar phrases and writes a JSGF', async () => {
    expect(r.grammarPhrases()).toEqual(['what time is it', 'what day is it', 'turn on the kitchen light', 'set a timer for five minutes', 'stop'])
    const file = path.join(root, 'g', 'offline.gram')
    const kept = await r.recognizerGrammar(file, { dictionary: readDictionaryWords() })
    expect(kept).toHaveLength(5)
    expect(await fs.readFile(file, 'utf8')).toBe('#JSGF V1.0;\ngrammar mm;\npublic <cmd> = what time is it | what day is it | turn on the kitchen light | set a timer for five minutes | stop ;\n')
  })

  it('assembles the time from fragments', () => {
    const t0 = performance.now()
    const a = r.answer('what time is it', new Date(2026, 10, 25, 21, 7))
    const ms = performance.now() - t0
    expect(a.matched).toBe(true)
    expect(a.reply?.skill).toBe('time')
    expect(a.text).toBe("It's 9:07 PM")
    expect(markersOf(a.pcm)).toEqual([m('frag-its.pcm'), m('frag-h9.pcm'), m('frag-m07.pcm'), m('frag-pm.pcm')])
    // Cached clips: a second answer reads nothing from disk.
    const t1 = performance.now()
    r.answer('what time is it', new Date(2026, 10, 25, 9, 30))
    console.log(`answer assembly: first ${ms.toFixed(2)} ms (reads clips), cached ${(performance.now() - t1).toFixed(3)} ms`)
  })

  it('assembles the date and plain replies with their action', () => {
    const d = r.answer('What day is it?', new Date(2026, 0, 3))
    expect(d.text).toBe('Today is Saturday, January 3rd')
    expect(markersOf(d.pcm)).toEqual([m('frag-today_is.pcm'), m('frag-saturday.pcm'), m('frag-january.pcm'), m('frag-d3.pcm')])
    const l = r.answer('turn on the kitchen light')
    expect(l).toMatchObject({ matched: true, text: 'Kitchen light on', reply: { action: { component: 'light', room: 'kitchen', state: 'on' } } })
    expect(markersOf(l.pcm)).toEqual([m('kitchen-on.pcm')])
    expect(r.answer('set a timer for five minutes').reply?.timerMs).toBe(300_000)
    const stop = r.answer('stop')
    expect(stop).toMatchObject({ matched: true, text: '', reply: { stop: true } })
    expect(stop.pcm.length).toBe(0)
  })

  it('tells the time and date in the node\'s time zone and on its 12/24-hour clock (issue #12)', async () => {
    let clock: ClockSettings = { timeZone: 'Asia/Kolkata', clock: '24h' }
    const z = new OfflineResponder(bundle, log, () => clock)
    const at = new Date(Date.UTC(2026, 10, 25, 20, 37)) // Wednesday 20:37 UTC = Thursday 02:07 in Kolkata (+5:30)
    const t = z.answer('what time is it', at)
    expect(t.text).toBe("It's 02:07")
    expect(markersOf(t.pcm)).toEqual([m('frag-its.pcm'), m('frag-h2.pcm'), m('frag-m07.pcm')])
    const d = z.answer('what day is it', at)
    expect(d.text).toBe('Today is Thursday, November 26th')
    expect(markersOf(d.pcm)).toEqual([m('frag-today_is.pcm'), m('frag-thursday.pcm'), m('frag-november.pcm'), m('frag-d26.pcm')])
    // The setting is read at each answer: the hub may change it while the node runs.
    clock = { timeZone: 'America/New_York' }
    expect(z.answer('what time is it', at).text).toBe("It's 3:37 PM")
    expect(z.answer('what day is it', at).text).toBe('Today is Wednesday, November 25th')
    clock = { timeZone: 'UTC', clock: '24h' }
    const onTheHour = z.answer('what time is it', new Date(Date.UTC(2026, 10, 25, 14, 0)))
    expect(onTheHour.text).toBe("It's 14:00")
    expect(markersOf(onTheHour.pcm)).toEqual([m('frag-its.pcm'), m('frag-h14.pcm'), m('frag-hundred.pcm')])
    // A bundle from before the 24-hour fragments says the time on a 12-hour clock, not nothing.
    const old = new OfflineResponder(await install(makeTestBundle({ version: 'no24', omitFragments: ['hundred', 'h14'] }), 'no24'), log, () => clock)
    expect(old.answer('what time is it', new Date(Date.UTC(2026, 10, 25, 14, 0)))).toMatchObject({ matched: true, text: "It's 2:00 PM" })
  })

  it('has the "timer done" clip as its own fragment (a timer ending is not an unheard phrase)', () => {
    expect(markersOf(r.fragment('timer_done')!)).toEqual([m('frag-timer_done.pcm')])
    expect(r.fragment('no_such_fragment')).toBeUndefined()
  })

  it('answers anything else with the offline fallback, nothing heard with not_understood', () => {
    const a = r.answer('tell me about the roman empire')
    expect(a).toMatchObject({ matched: false, fallback: 'offline', reply: { skill: 'offline' }, text: "I'm offline right now, I'll pass that on." })
    expect(markersOf(a.pcm)).toEqual([m('offline.pcm')])
    const e = r.answer(' ?')
    expect(e).toMatchObject({ matched: false, fallback: 'not_understood', text: "Sorry, I didn't catch that." })
    expect(markersOf(e.pcm)).toEqual([m('not-understood.pcm')])
    expect(r.answerFor({ text: 'stop', confident: false, reason: 'uncovered_speech' }).fallback).toBe('offline')
    expect(r.answerFor({ text: '', confident: false, reason: 'empty' }).fallback).toBe('offline')
    expect(r.answerFor({ text: 'stop', confident: false, reason: 'too_short' }).fallback).toBe('not_understood')
    expect(r.answerFor({ text: 'turn on the kitchen light', confident: true })).toMatchObject({ matched: true, text: 'Kitchen light on' })
  })

  it('falls back to the offline reply when a fragment is missing', async () => {
    const partial = makeTestBundle({ version: 'p1', omitFragments: ['m42'] })
    const pr = new OfflineResponder(await install(partial, 'partial'), log)
    expect(pr.answer('what time is it', new Date(2026, 10, 25, 10, 41)).text).toBe("It's 10:41 AM")
    const a = pr.answer('what time is it', new Date(2026, 10, 25, 10, 42))
    expect(a).toMatchObject({ matched: false, reply: { skill: 'offline' } })
    expect(markersOf(a.pcm)).toEqual([partial.markers.get('offline.pcm')])
  })

  it('falls back when a clip file vanished, and copes with a bundle without an offline reply', async () => {
    const nb = makeTestBundle({ version: 'n1', noFallbacks: true, replies: [{ phrase: 'stop', skill: 'media', text: 'Stopped', clips: ['stopped.pcm'] }] })
    const loaded = await install(nb, 'noffl')
    await fs.rm(path.join(loaded.dir, 'stopped.pcm'))
    const nr = new OfflineResponder(loaded, log)
    expect(nr.answer('stop')).toEqual({ reply: undefined, matched: false, pcm: new Int16Array(0), text: '' })
  })

  it('answers early only phrases that no longer phrase with another reply extends', async () => {
    const eb = makeTestBundle({ version: 'e1', replies: [
      { phrase: 'what day is it', skill: 'date', text: '{date}', clips: ['{date}'] },
      { phrase: 'what day is it today', skill: 'date', text: '{date}', clips: ['{date}'] },
      { phrase: 'turn on the light', skill: 'lights', text: 'Light on', clips: ['on.pcm'], action: { component: 'light', action: 'set', room: null, state: 'on' } },
      { phrase: 'turn on the light in the hall', skill: 'lights', text: 'Hall light on', clips: ['hall-on.pcm'], action: { component: 'light', action: 'set', room: 'hall', state: 'on' } },
      { phrase: 'stop', skill: 'stop', text: '', clips: [], stop: true },
    ] })
    const er = new OfflineResponder(await install(eb, 'early'), log)
    expect(er.answersEarly('what day is it')).toBe(true) // "… today" gets the same reply
    expect(er.answersEarly('What day is it today')).toBe(true)
    expect(er.answersEarly('turn on the light')).toBe(false) // "… in the hall" is another room
    expect(er.answersEarly('turn on the light in the hall')).toBe(true)
    expect(er.answersEarly('stop')).toBe(true)
  })
})
