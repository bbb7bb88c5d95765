import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLogger } from '@mirrormesh/broker'
import { DEFAULT_HUB_MIN_MARGIN, jsgfFromPhrases } from '@mirrormesh/speech'
import { grammarWords, LevelMeter, OfflineRecognizer, phoneCounts, squeezedWord, syllables, writeGrammarDictionary, type Recognition } from './recognizer.js'
import { concat } from './responder.js'

const log = createLogger({ name: 'test', level: 'silent' })
const dir = mkdtempSync(path.join(tmpdir(), 'mm-orec-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function speech(text: string, gain = 1): Int16Array {
  const wav = execFileSync('espeak-ng', ['--stdout', text])
  const raw = execFileSync('sox', ['-t', 'wav', '-', '-t', 'raw', '-r', '16000', '-e', 'signed', '-b', '16', '-c', '1', '-', 'vol', String(gain)], { input: wav })
  return new Int16Array(raw.buffer, raw.byteOffset, raw.length >> 1)
}

function noise(seconds: number, amplitude: number): Int16Array {
  const out = new Int16Array(seconds * 16000)
  let x = 12345
  for (let i = 0; i < out.length; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff
    out[i] = Math.round(((x / 0x7fffffff) * 2 - 1) * amplitude)
  }
  return out
}

/** Speech padded with 300 ms of faint room noise either side, as a VAD would cut it. */
function padded(pcm: Int16Array): Int16Array {
  const pad = noise(0.3, 30)
  const out = new Int16Array(pcm.length + 2 * pad.length)
  out.set(pad)
  out.set(pcm, pad.length)
  out.set(pad, pad.length + pcm.length)
  return out
}

const PHRASES = ['what time is it', 'what day is it', 'turn on the kitchen light', 'turn off the kitchen light', 'set a timer for five minutes', 'stop']
const grammarPath = path.join(dir, 'offline.gram')
writeFileSync(grammarPath, jsgfFromPhrases(PHRASES))
// The early endpoint tests add a phrase that a cut-short command gets forced onto.
const EARLY_PHRASES = [...PHRASES, 'volume up', 'volume down']
const earlyGrammarPath = path.join(dir, 'early.gram')
writeFileSync(earlyGrammarPath, jsgfFromPhrases(EARLY_PHRASES))
const silence = (ms: number): Int16Array => new Int16Array(ms * 16)
const cat = (...parts: Int16Array[]): Int16Array => concat(parts)
/** espeak speech without its trailing near-silence (> 40 dB under the peak), in whole 20 ms frames. */
function trimmed(pcm: Int16Array): Int16Array {
  const rms = (i: number): number => Math.sqrt(pcm.subarray(i, i + 160).reduce((n, s) => n + s * s, 0) / 160)
  let peak = 0
  for (let i = 0; i < pcm.length; i += 160) peak = Math.max(peak, rms(i))
  let last = 0
  for (let i = 0; i < pcm.length; i += 160) if (rms(i) >= peak / 100) last = Math.min(pcm.length, i + 160)
  const out = new Int16Array(Math.ceil(last / 320) * 320)
  out.set(pcm.subarray(0, Math.min(out.length, pcm.length)))
  return out
}

describe('helpers', () => {
  it('counts syllables roughly', () => {
    expect(syllables('what time is it')).toBe(4)
    expect(syllables('stop')).toBe(1)
    expect(syllables('set a timer for five minutes')).toBe(9)
  })

  it('measures speech above the noise', () => {
    const m = new LevelMeter()
    m.push(padded(speech('what time is it')))
    const s = m.summary(30)
    expect(s.peakDbfs).toBeGreaterThan(-30)
    expect(s.speechMs).toBeGreaterThan(400)
    expect(s.speechMs).toBeLessThan(1200)
  })
})

describe('early endpoint checks', () => {
  const phones = new Map([['volume', 6], ['up', 2], ['what', 3], ['time', 3], ['is', 2], ['it', 2]])
  const w = (word: string, start: number, end: number) => ({ word, start, end })

  it('passes a phrase whose words all have real durations', () => {
    expect(squeezedWord([w('<sil>', 0, 20), w('volume', 21, 67), w('up', 68, 88), w('<sil>', 89, 99)], phones)).toBeUndefined()
    expect(squeezedWord([w('what', 0, 20), w('time', 21, 55), w('is', 56, 64), w('it', 65, 82)], phones)).toBeUndefined()
  })

  it('refuses words squeezed to the decoder floor (3 frames per phone) and a short last word', () => {
    // "volume" said alone, forced onto "volume up": "up" gets the minimum 6 frames.
    expect(squeezedWord([w('volume', 21, 75), w('up', 76, 81)], phones)).toBe('up:6')
    expect(squeezedWord([w('what', 0, 20), w('time', 21, 29), w('is', 30, 45), w('it', 46, 65)], phones)).toBe('time:9')
    // Last word above the floor but under 5 frames per phone.
    expect(squeezedWord([w('volume', 21, 75), w('up', 76, 84)], phones)).toBe('up:9')
    // Unknown phone count or no words: not complete.
    expect(squeezedWord([w('volume', 21, 75), w('down', 76, 99)], phones)).toBe('down')
    expect(squeezedWord([w('<sil>', 0, 99)], phones)).toBe('(no words)')
  })

  it('counts phones per pronunciation of the grammar words only', () => {
    const words = grammarWords(jsgfFromPhrases(['what day is it today', 'stop']))
    expect([...words].sort()).toEqual(['day', 'is', 'it', 'stop', 'today', 'what'])
    const counts = phoneCounts('today T AH D EY\ntoday(2) T UW D EY\ntomorrow T AH M AA R OW\nstop S T AA P\n', words)
    expect(Object.fromEntries(counts)).toEqual({ today: 4, 'today(2)': 4, stop: 4 })
  })

  it('tracks the quiet at the end of the audio', () => {
    const m = new LevelMeter()
    m.push(cat(silence(200), trimmed(speech('stop'))))
    expect(m.trailingQuietMs).toBe(0)
    expect(m.loudFrames).toBeGreaterThan(5)
    m.push(silence(100))
    expect(m.trailingQuietMs).toBe(100)
  })
})

describe('OfflineRecognizer', () => {
  const rec = new OfflineRecognizer({ grammarPath, log })
  const results: [string, Recognition][] = []
  afterAll(() => {
    for (const [what, r] of results) {
      console.log(`${what.padEnd(40)} → ${JSON.stringify(r.text).padEnd(32)} confident=${r.confident} ${r.reason ?? ''} speech=${r.speechMs}ms peak=${r.peakDbfs}dB coverage=${r.coverage} words=${r.wordMs}ms latency=${r.latencyMs}ms`)
    }
  })
  const run = async (what: string, pcm: Int16Array): Promise<Recognition> => {
    const r = await rec.recognize(pcm, new AbortController().signal)
    results.push([what, r])
    return r
  }

  it('recognizes in-grammar commands confidently', async () => {
    expect(rec.health()).toBe('ok')
    for (const p of ['what time is it', 'turn off the kitchen light', 'set a timer for five minutes', 'stop']) {
      expect(await run(p, padded(speech(p)))).toMatchObject({ text: p, confident: true })
    }
  })

  it('still recognizes quieter speech (-20 dB)', async () => {
    expect(await run('what time is it (-20 dB)', padded(speech('what time is it', 0.1)))).toMatchObject({ text: 'what time is it', confident: true })
  })

  it('is not confident about out-of-grammar speech, noise, silence', async () => {
    for (const p of ['tell me about the roman empire', 'hello there', 'what is the weather like tomorrow', 'play some music']) {
      expect((await run(p, padded(speech(p)))).confident).toBe(false)
    }
    expect((await run('white noise 1.5 s', noise(1.5, 8000))).confident).toBe(false)
    expect((await run('faint noise 1 s', noise(1, 30))).confident).toBe(false)
    expect((await run('silence 1 s', new Int16Array(16000))).confident).toBe(false)
    expect((await run('very quiet speech (-50 dB)', padded(speech('what time is it', 0.003)))).confident).toBe(false)
  })

  it('writes the hub\'s extra pronunciations into its grammar dictionary ("off" also as AA F, else heard as "on")', async () => {
    const dictPath = path.join(dir, 'onoff.dict')
    await writeGrammarDictionary(PHRASES, dictPath)
    const lines = readFileSync(dictPath, 'utf8').trim().split('\n')
    expect(lines).toContain('off AO F')
    expect(lines).toContain('off(2) AA F')
    expect(lines.filter((l) => l.startsWith('off')).length).toBe(2)
  })

  it('returns soon after the end of speech when audio was streamed', async () => {
    const pcm = padded(speech('turn on the kitchen light'))
    const s = rec.start(new AbortController().signal)
    // Real time-ish: 100 ms chunks, as the audio arrives.
    for (let i = 0; i < pcm.length; i += 1600) {
      s.write(pcm.subarray(i, i + 1600))
      await new Promise((r) => setTimeout(r, 20))
    }
    const r = await s.finish()
    results.push(['streamed: turn on the kitchen light', r])
    expect(r).toMatchObject({ text: 'turn on the kitchen light', confident: true })
    expect(r.latencyMs).toBeLessThan(1000)
  })
})

describe('OfflineRecognizer early endpoint (streamed in real time)', () => {
  const dictPath = path.join(dir, 'offline.dict')
  let rec: OfflineRecognizer
  beforeAll(async () => {
    await writeGrammarDictionary(EARLY_PHRASES, dictPath)
    // The endpoint mechanism alone; the second opinion has its own tests (test/understanding.test.ts).
    rec = new OfflineRecognizer({ grammarPath: earlyGrammarPath, dictPath, log, secondOpinion: false })
  })

  /**
   * Streams 300 ms of silence, the parts (text: trimmed speech; number: ms of silence) and then
   * silence, in 20 ms frames at real-time pace, until finish. `endpointAt`: ms of audio after
   * the end of the last speech when onEndpoint fired (undefined: it did not).
   */
  async function stream(parts: Array<string | number>, opts: { tailMs?: number; prefix?: Int16Array[]; accept?: (call: number) => boolean; rec?: OfflineRecognizer; onProbe?: (r: Recognition) => void } = {}) {
    const pcm = cat(silence(300), ...parts.map((p) => (typeof p === 'number' ? silence(p) : trimmed(speech(p)))))
    const all = cat(pcm, silence(opts.tailMs ?? 800))
    const calls: { text: string; atMs: number }[] = []
    let written = 0
    let accepted = false
    const s = (opts.rec ?? rec).start(new AbortController().signal, {
      prefix: opts.prefix,
      ...(opts.onProbe ? { onProbe: opts.onProbe } : {}),
      onEndpoint: (r) => {
        calls.push({ text: r.text, atMs: (written - pcm.length) / 16 })
        accepted = opts.accept?.(calls.length) ?? true
        return accepted
      },
    })
    const t0 = performance.now()
    for (let i = 0; written < all.length && !accepted; i++) {
      s.write(all.subarray(written, written + 320))
      written += 320
      const wait = t0 + (i + 1) * 20 - performance.now()
      if (wait > 0) await new Promise((r) => setTimeout(r, wait))
    }
    const r = await s.finish()
    results.push([`endpoint: ${parts.join(' | ')}`, r])
    return { r, calls, endpointAt: calls[0]?.atMs, audio: all.subarray(0, written) }
  }
  const results: [string, Recognition][] = []
  afterAll(() => {
    for (const [what, r] of results) console.log(`${what.padEnd(40)} → ${JSON.stringify(r.text).padEnd(32)} confident=${r.confident} early=${r.early ?? false} latency=${r.latencyMs}ms`)
  })

  it('answers a whole command ~100 ms after the speech, long before a VAD end silence', async () => {
    const { r, calls, endpointAt } = await stream(['turn on the kitchen light'])
    expect(calls.map((c) => c.text)).toEqual(['turn on the kitchen light'])
    expect(r).toMatchObject({ text: 'turn on the kitchen light', confident: true, early: true })
    console.log(`early endpoint ${endpointAt} ms of audio after the speech`)
    // 100 ms of quiet plus the probe's decode (~30 ms) at real-time pace; a 400-600 ms VAD could not be this early.
    expect(endpointAt).toBeGreaterThanOrEqual(60)
    expect(endpointAt).toBeLessThan(350)
  })

  it('does not answer early a command cut short ("volume …" would be forced onto "volume up")', async () => {
    const { r, calls } = await stream(['volume'], { tailMs: 600 })
    expect(calls).toEqual([])
    expect(r.early).toBeUndefined()
  })

  it('waits through a pause inside a phrase and answers at its real end', async () => {
    const { r, calls, endpointAt } = await stream(['what time', 300, 'is it'])
    expect(calls.map((c) => c.text)).toEqual(['what time is it'])
    expect(endpointAt).toBeGreaterThanOrEqual(60) // after "is it", not in the pause
    expect(r).toMatchObject({ text: 'what time is it', early: true })
  })

  it('hears a prefix (speech resumed after an early answer) with the new audio, and does not answer the prefix again', async () => {
    const prefix = [cat(silence(300), trimmed(speech('what time')), silence(120))]
    const again = await stream([], { prefix, tailMs: 600 })
    expect(again.calls).toEqual([]) // nothing new was said
    const { r, calls } = await stream(['is it'], { prefix })
    expect(calls.map((c) => c.text)).toEqual(['what time is it'])
    expect(r.text).toBe('what time is it')
  })

  it('probes the same pause once more after 200 ms of quiet when the first probe was refused, and not again', async () => {
    // The first probe refused (as a squeezed last word or the skills' veto would): the second
    // one, later in the same pause, may still end the turn long before a VAD or end flag would.
    const { r, calls } = await stream(['turn on the kitchen light'], { accept: (n) => n === 2, tailMs: 1500 })
    expect(calls.map((c) => c.text)).toEqual(['turn on the kitchen light', 'turn on the kitchen light'])
    expect(calls[0]!.atMs).toBeGreaterThanOrEqual(100)
    expect(calls[1]!.atMs).toBeGreaterThanOrEqual(200)
    expect(calls[1]!.atMs).toBeGreaterThan(calls[0]!.atMs)
    expect(r).toMatchObject({ text: 'turn on the kitchen light', early: true })
    // Refused twice: no third probe without new speech; the listener's end decides.
    const twice = await stream(['turn on the kitchen light'], { accept: () => false, tailMs: 1500 })
    expect(twice.calls).toHaveLength(2)
    expect(twice.r.early).toBeUndefined()
    // endpointRetrySilenceMs 0: a single probe per pause, as before.
    const single = new OfflineRecognizer({ grammarPath: earlyGrammarPath, dictPath, log, secondOpinion: false, endpointRetrySilenceMs: 0 })
    const once = await stream(['turn on the kitchen light'], { accept: () => false, tailMs: 1500, rec: single })
    expect(once.calls).toHaveLength(1)
  })

  it('with the second opinion every probe reports its verdict, and the phone loop that takes over at a probe has heard the whole utterance', async () => {
    const checked = new OfflineRecognizer({ grammarPath: earlyGrammarPath, dictPath, log, secondOpinion: { minMargin: DEFAULT_HUB_MIN_MARGIN } })
    const probes: Recognition[] = []
    // Both probes refused: the final verdict comes from the loop that was standby at the second.
    const { r, calls, audio } = await stream(['turn on the kitchen light'], { accept: () => false, tailMs: 1500, rec: checked, onProbe: (p) => probes.push(p) })
    expect(calls).toHaveLength(2)
    expect(probes.map((p) => p.trusted)).toEqual([true, true])
    // A loop that missed audio while the probes ran would score the grammar path differently.
    const whole = await checked.recognize(audio, new AbortController().signal)
    expect(r.margin).toBeDefined()
    expect(r.margin).toBe(whole.margin)
    // Speech no grammar phrase fits: the probe says the second opinion distrusts it (the hub then
    // starts its open-vocabulary decode), even though no endpoint is offered.
    const open: Recognition[] = []
    const q = await stream(['remember that my keys are in the drawer'], { tailMs: 800, rec: checked, onProbe: (p) => open.push(p) })
    expect(q.calls).toEqual([])
    expect(open.length).toBeGreaterThan(0)
    expect(open.some((p) => p.trusted === false), JSON.stringify(open)).toBe(true)
  })

  it('with endpointSilenceMs 0 it is the plain streaming path: onEndpoint is never called', async () => {
    const off = new OfflineRecognizer({ grammarPath: earlyGrammarPath, dictPath, log, endpointSilenceMs: 0 })
    let called = false
    const s = off.start(new AbortController().signal, { onEndpoint: () => (called = true) })
    const pcm = cat(silence(300), trimmed(speech('stop')), silence(800))
    for (let i = 0; i < pcm.length; i += 1600) {
      s.write(pcm.subarray(i, i + 1600))
      await new Promise((res) => setTimeout(res, 100))
    }
    expect(await s.finish()).toMatchObject({ text: 'stop', confident: true })
    expect(called).toBe(false)
  })
})

describe('offline turn end to end (bundle → grammar → recognizer → answer)', () => {
  it('answers "what time is it" from a served bundle', async () => {
    const { BundleStore } = await import('./bundle-store.js')
    const { OfflineResponder } = await import('./responder.js')
    const { announcementOf, makeTestBundle, serveBundles } = await import('../../../test/support/offline-bundle.js')
    const { readDictionaryWords } = await import('@mirrormesh/speech')
    const b = makeTestBundle({ version: 'e2e' })
    const srv = await serveBundles(b)
    try {
      const store = await BundleStore.open(path.join(dir, 'store'), log)
      await store.sync(announcementOf(b), srv.url)
      const responder = new OfflineResponder(store.current()!, log)
      await responder.preload()
      const gram = path.join(dir, 'bundle.gram')
      await responder.recognizerGrammar(gram, { dictionary: readDictionaryWords() })
      const recognizer = new OfflineRecognizer({ grammarPath: gram, log })
      const s = recognizer.start(new AbortController().signal)
      const pcm = padded(speech('what time is it'))
      for (let i = 0; i < pcm.length; i += 1600) {
        s.write(pcm.subarray(i, i + 1600))
        await new Promise((r) => setTimeout(r, 20))
      }
      const t0 = performance.now()
      const r = await s.finish()
      const a = responder.answer(r.confident ? r.text : '', new Date(2026, 10, 25, 16, 5))
      const ms = performance.now() - t0
      console.log(`end of speech → answer pcm ready: ${ms.toFixed(0)} ms (recognition ${r.latencyMs} ms)`)
      expect(r).toMatchObject({ text: 'what time is it', confident: true })
      expect(a).toMatchObject({ matched: true, text: "It's 4:05 PM" })
      expect(a.pcm.length).toBe(16)
    } finally {
      await srv.close()
    }
  })
})
