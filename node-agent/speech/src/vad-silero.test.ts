import { execFileSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { EngineError } from './types.js'
import { SileroVad, SileroWorkerVad } from './vad-silero.js'

function speech(text: string): Int16Array {
  const wav = execFileSync('espeak-ng', ['--stdout', text])
  const raw = execFileSync('sox', ['-t', 'wav', '-', '-t', 'raw', '-r', '16000', '-e', 'signed', '-b', '16', '-c', '1', '-'], { input: wav })
  return new Int16Array(raw.buffer, raw.byteOffset, raw.length >> 1)
}

function lastLoud(pcm: Int16Array): number {
  let i = pcm.length - 1
  while (i > 0 && Math.abs(pcm[i]!) < 1000) i--
  return i
}

const silence = (ms: number) => new Int16Array((16 * ms) | 0)

/** Feeds audio in 20 ms chunks (as a node would); returns the sample offset where push() first returned true. */
function feed(session: { push(p: Int16Array): boolean }, audio: Int16Array[]): number | undefined {
  let offset = 0
  for (const part of audio) {
    for (let i = 0; i < part.length; i += 320) {
      const chunk = part.subarray(i, i + 320)
      offset += chunk.length
      if (session.push(chunk)) return offset
    }
  }
  return undefined
}

describe('SileroVad', () => {
  it('finds the end of speech after the configured silence, and not before', async () => {
    const vad = await SileroVad.load({ endSilenceMs: 500 })
    const words = speech('turn on the kitchen light')
    const s = vad.start()
    const endAt = feed(s, [silence(500), words, silence(2000)])
    expect(s.speechDetected).toBe(true)
    expect(endAt).toBeDefined()
    // Measured from the last loud sample (espeak pads its own trailing silence).
    const afterSpeech = (endAt! - 8000 - lastLoud(words)) / 16
    expect(afterSpeech).toBeGreaterThanOrEqual(400)
    expect(afterSpeech).toBeLessThanOrEqual(900)
    // Once ended it stays ended.
    expect(s.push(silence(100))).toBe(true)
    await vad.close()
  })

  it('does not end an utterance at a short pause between phrases', async () => {
    const vad = await SileroVad.load({ endSilenceMs: 800 })
    const s = vad.start()
    const endAt = feed(s, [speech('what time'), silence(300), speech('is it'), silence(1500)])
    const firstPart = speech('what time').length + 16 * 300
    expect(endAt).toBeGreaterThan(firstPart)
    await vad.close()
  })

  it('never ends on silence alone, and pooled sessions start clean', async () => {
    const vad = await SileroVad.load({ endSilenceMs: 300, poolSize: 1 })
    const quiet = vad.start()
    expect(feed(quiet, [silence(3000)])).toBeUndefined()
    expect(quiet.speechDetected).toBe(false)
    quiet.release()
    // Reuses the released instance; must behave like a fresh one.
    const s = vad.start()
    expect(feed(s, [speech('stop'), silence(1000)])).toBeDefined()
    await vad.close()
  })

  it('rejects a missing model file', async () => {
    const err = await SileroVad.load({ endSilenceMs: 500, modelPath: '/nonexistent/silero.onnx' }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(EngineError)
    expect((err as EngineError).reason).toBe('model_missing')
  })
})

const within = <T>(p: Promise<T>, ms: number) => Promise.race([p.then(() => 'done' as const), new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms))])

describe('SileroWorkerVad', () => {
  it('ends where the in-process VAD does, reported through `ended` and the next push', async () => {
    const vad = await SileroWorkerVad.load({ endSilenceMs: 500 })
    const local = await SileroVad.load({ endSilenceMs: 500 })
    const words = speech('turn on the kitchen light')
    const audio = [silence(500), words, silence(2000)]
    const expected = feed(local.start(), audio)
    // Fed frame by frame, waiting for each to be processed, it ends one frame later at most.
    const s = vad.start()
    let offset = 0
    let endAt: number | undefined
    for (const part of audio) {
      for (let i = 0; i < part.length && endAt === undefined; i += 320) {
        const chunk = part.subarray(i, i + 320)
        if (s.push(chunk)) endAt = offset
        offset += chunk.length
        await within(s.ended, 5)
      }
    }
    expect(await within(s.ended, 2000)).toBe('done')
    expect(s.speechDetected).toBe(true)
    expect(endAt).toBeDefined()
    expect(Math.abs(endAt! - expected!)).toBeLessThanOrEqual(320)
    expect(s.push(silence(100))).toBe(true)
    await vad.close()
    await local.close()
  })

  it('never ends on silence alone; released sessions leave later ones clean', async () => {
    const vad = await SileroWorkerVad.load({ endSilenceMs: 300, poolSize: 1 })
    const quiet = vad.start()
    expect(feed(quiet, [silence(3000)])).toBeUndefined()
    expect(await within(quiet.ended, 300)).toBe('timeout')
    expect(quiet.speechDetected).toBe(false)
    quiet.release()
    const s = vad.start()
    feed(s, [speech('stop'), silence(1000)])
    expect(await within(s.ended, 2000)).toBe('done')
    expect(vad.health()).toBe('ok')
    await vad.close()
    expect(vad.health()).toBe('down')
  })

  it('rejects a missing model file', async () => {
    const err = await SileroWorkerVad.load({ endSilenceMs: 500, modelPath: '/nonexistent/silero.onnx' }).catch((e: unknown) => e)
    expect((err as EngineError).reason).toBe('model_missing')
  })
})
