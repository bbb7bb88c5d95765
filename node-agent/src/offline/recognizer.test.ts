import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { createLogger } from '@mirrormesh/broker'
import { jsgfFromPhrases } from '../speech/asr-pocketsphinx.js'
import { LevelMeter, OfflineRecognizer, syllables, type Recognition } from './recognizer.js'

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

describe('offline turn end to end (bundle → grammar → recognizer → answer)', () => {
  it('answers "what time is it" from a served bundle', async () => {
    const { BundleStore } = await import('./bundle-store.js')
    const { OfflineResponder } = await import('./responder.js')
    const { announcementOf, makeTestBundle, serveBundles } = await import('./testing.js')
    const { readDictionaryWords } = await import('../speech/asr-pocketsphinx.js')
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
