import { Writable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { createLogger } from '@mirrormesh/broker'
import { EngineError } from './types.js'
import { EspeakTts } from './tts-espeak.js'

async function collect(it: AsyncIterable<Int16Array>): Promise<Int16Array[]> {
  const chunks: Int16Array[] = []
  for await (const c of it) chunks.push(c)
  return chunks
}

function rms(chunks: Int16Array[]): number {
  let sum = 0
  let n = 0
  for (const c of chunks) for (const s of c) {
    sum += s * s
    n++
  }
  return Math.sqrt(sum / Math.max(n, 1))
}

describe('EspeakTts', () => {
  const tts = new EspeakTts({ voice: 'en-us', speedWpm: 170 })

  it('yields non-silent 16 kHz PCM of plausible length, first chunk quickly', async () => {
    expect(tts.health()).toBe('ok')
    const t0 = performance.now()
    let firstMs = 0
    const chunks: Int16Array[] = []
    for await (const c of tts.synthesize('Turn on the kitchen light.', new AbortController().signal)) {
      if (chunks.length === 0) firstMs = performance.now() - t0
      chunks.push(c)
    }
    const seconds = chunks.reduce((n, c) => n + c.length, 0) / 16000
    expect(seconds).toBeGreaterThan(0.8)
    expect(seconds).toBeLessThan(4)
    expect(rms(chunks)).toBeGreaterThan(500)
    expect(firstMs).toBeLessThan(1000)
  })

  it('speaks text that looks like an option', async () => {
    const chunks = await collect(tts.synthesize('-v is not a flag', new AbortController().signal))
    expect(rms(chunks)).toBeGreaterThan(500)
  })

  it('stops early when aborted and ends with the abort reason', async () => {
    const long = 'This is a long sentence that keeps going for quite a while. '.repeat(40)
    const full = (await collect(tts.synthesize(long.slice(0, 600), new AbortController().signal)))
      .reduce((n, c) => n + c.length, 0)
    const ac = new AbortController()
    let got = 0
    const err = await (async () => {
      for await (const c of tts.synthesize(long.slice(0, 600), ac.signal)) {
        got += c.length
        ac.abort()
      }
    })().catch((e: unknown) => e)
    expect(err).toMatchObject({ name: 'AbortError' })
    expect(got).toBeGreaterThan(0)
    expect(got).toBeLessThan(full / 2)
  })

  it('falls back to the default voice with a warning, reports crashes, is down without binaries', async () => {
    const warnings: unknown[] = []
    const log = createLogger({ name: 'test', level: 'warn', destination: new Writable({
      write: (line: Buffer, _enc, done) => { warnings.push(JSON.parse(line.toString())); done() },
    }) })
    const unknownVoice = new EspeakTts({ voice: 'zz-not-a-voice', log })
    expect(unknownVoice.voice).toBeUndefined()
    expect(warnings).toMatchObject([{ msg: 'espeak-ng voice not found, using the default voice', voice: 'zz-not-a-voice' }])
    expect(rms(await collect(unknownVoice.synthesize('hello', new AbortController().signal)))).toBeGreaterThan(500)
    expect(tts.voice).toBe('en-us')

    const broken = new EspeakTts({ soxBin: '/bin/false' })
    const err = await collect(broken.synthesize('hello', new AbortController().signal)).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(EngineError)
    expect(err).toMatchObject({ reason: 'crashed', message: expect.stringMatching(/^sox exited 1/) })

    const missing = new EspeakTts({ espeakBin: 'no-such-espeak' })
    expect(missing.health()).toBe('down')
    expect(missing.downReason).toBe('not_installed')
    expect(missing.downDetail).toBe('no-such-espeak not found')
    await expect(collect(missing.synthesize('hello', new AbortController().signal))).rejects.toMatchObject({ reason: 'not_installed' })
  })
})
