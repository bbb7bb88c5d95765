import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { PassThrough, Readable } from 'node:stream'
import { afterAll, describe, expect, it } from 'vitest'
import { arecordSource, AudioSourceError, FRAME_SAMPLES, parseWav, stdinSource, streamSource, wavFileSource } from './source.js'

const dir = mkdtempSync(path.join(tmpdir(), 'mm-src-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function wav(samples: Int16Array, { rate = 16000, channels = 1, bits = 16 } = {}): Buffer {
  const data = Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength)
  const h = Buffer.alloc(44)
  h.write('RIFF', 0, 'ascii')
  h.writeUInt32LE(36 + data.length, 4)
  h.write('WAVEfmt ', 8, 'ascii')
  h.writeUInt32LE(16, 16)
  h.writeUInt16LE(1, 20)
  h.writeUInt16LE(channels, 22)
  h.writeUInt32LE(rate, 24)
  h.writeUInt32LE((rate * channels * bits) / 8, 28)
  h.writeUInt16LE((channels * bits) / 8, 32)
  h.writeUInt16LE(bits, 34)
  h.write('data', 36, 'ascii')
  h.writeUInt32LE(data.length, 40)
  return Buffer.concat([h, data])
}

const ramp = (n: number): Int16Array => Int16Array.from({ length: n }, (_, i) => (i % 2000) - 1000)

async function collect(src: AsyncIterable<Int16Array>): Promise<Int16Array[]> {
  const out: Int16Array[] = []
  for await (const f of src) out.push(f)
  return out
}

describe('wavFileSource', () => {
  it('yields 20 ms frames of the samples, the last one zero-padded', async () => {
    const pcm = ramp(16000 + 100)
    const file = path.join(dir, 'a.wav')
    writeFileSync(file, wav(pcm))
    const frames = await collect(wavFileSource(file))
    expect(frames).toHaveLength(51)
    expect(frames.every((f) => f.length === FRAME_SAMPLES)).toBe(true)
    expect(Array.from(frames[1]!.subarray(0, 3))).toEqual(Array.from(pcm.subarray(320, 323)))
    expect(frames[50]![99]).toBe(pcm[16099])
    expect(frames[50]![100]).toBe(0)
  })

  it('accepts headerless .pcm and paces in real time when asked', async () => {
    const file = path.join(dir, 'b.pcm')
    const pcm = ramp(320 * 10)
    writeFileSync(file, Buffer.from(pcm.buffer))
    const t0 = performance.now()
    const frames = await collect(wavFileSource(file, { realtime: true }))
    const ms = performance.now() - t0
    expect(frames).toHaveLength(10)
    expect(ms).toBeGreaterThanOrEqual(175) // 9 gaps of 20 ms
    expect(ms).toBeLessThan(400)
  })

  it('rejects other formats with a clear message', async () => {
    const file = path.join(dir, 'c.wav')
    writeFileSync(file, wav(ramp(1000), { rate: 22050 }))
    await expect(collect(wavFileSource(file))).rejects.toThrow(/need 16-bit 16000 Hz mono PCM, got format 1 16-bit 22050 Hz 1 ch/)
    writeFileSync(path.join(dir, 'd.mp3'), 'ID3...')
    await expect(collect(wavFileSource(path.join(dir, 'd.mp3')))).rejects.toMatchObject({ reason: 'bad_format' })
    await expect(collect(wavFileSource(path.join(dir, 'none.wav')))).rejects.toMatchObject({ reason: 'not_found' })
    expect(() => parseWav(Buffer.from('RIFF....WAVEjunk'))).toThrow(AudioSourceError)
  })
})

describe('streamSource', () => {
  it('re-chunks odd-sized byte chunks into frames', async () => {
    const pcm = ramp(320 * 3)
    const bytes = Buffer.from(pcm.buffer)
    const chunks = [bytes.subarray(0, 7), bytes.subarray(7, 1001), bytes.subarray(1001)]
    const frames = await collect(streamSource(Readable.from(chunks)))
    expect(frames).toHaveLength(3)
    expect(Array.from(frames[2]!)).toEqual(Array.from(pcm.subarray(640)))
  })
})

describe('stdinSource', () => {
  // The agent stops a stdin microphone by aborting and destroying stdin (issue #12: a normal
  // SIGTERM logged "Premature close" as a microphone error).
  async function readUntilDestroyed(abort: boolean): Promise<{ frames: number; err?: string }> {
    const pipe = new PassThrough()
    const ctl = new AbortController()
    pipe.write(Buffer.alloc(FRAME_SAMPLES * 2 * 3))
    let frames = 0
    const reading = (async () => { for await (const _ of stdinSource(ctl.signal, pipe)) if (++frames === 3) { if (abort) ctl.abort(); pipe.destroy() } })()
    return reading.then(() => ({ frames }), (err: Error & { code?: string }) => ({ frames, err: err.code }))
  }

  it('ends without an error when the agent aborts, then closes stdin', async () => {
    expect(await readUntilDestroyed(true)).toEqual({ frames: 3 })
  })

  it('still reports stdin closing under it when nobody asked to stop', async () => {
    expect(await readUntilDestroyed(false)).toEqual({ frames: 3, err: 'ERR_STREAM_PREMATURE_CLOSE' })
  })
})

describe('arecordSource', () => {
  it('fails clearly when arecord is missing', async () => {
    await expect(collect(arecordSource({ bin: 'no-such-arecord' }))).rejects.toMatchObject({ reason: 'not_installed', message: /no-such-arecord not found/ })
  })

  it('fails clearly when the device does not exist', async () => {
    const err = (await collect(arecordSource({ device: 'hw:CARD=NoSuchCard,DEV=0' })).catch((e: unknown) => e)) as AudioSourceError
    expect(err).toBeInstanceOf(AudioSourceError)
    expect(err.reason).toBe('device_missing')
    expect(err.message).toMatch(/arecord -D hw:CARD=NoSuchCard,DEV=0: .+/)
  })

  it('restarts with backoff when arecord exits after audio flowed', async () => {
    // A stand-in that prints 2 frames of audio and exits, every time.
    const fake = path.join(dir, 'fake-arecord')
    writeFileSync(fake, '#!/bin/sh\nhead -c 1280 /dev/zero\nexit 1\n')
    chmodSync(fake, 0o755)
    const ac = new AbortController()
    const restarts: number[] = []
    let frames = 0
    const t0 = performance.now()
    for await (const f of arecordSource({ bin: fake, signal: ac.signal, backoffMs: 20, onRestart: (r) => restarts.push(r.delayMs) })) {
      expect(f.length).toBe(320)
      if (++frames === 6) ac.abort()
    }
    expect(frames).toBe(6)
    expect(restarts).toEqual([20, 20]) // backoff resets after each start that delivered audio
    expect(performance.now() - t0).toBeLessThan(2000)
  })
})
