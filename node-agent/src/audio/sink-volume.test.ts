// Playback volume: a PCM gain in the sink, heard by a real aplay stand-in process.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { aplaySink, fileSink } from './sink.js'

const dir = mkdtempSync(path.join(tmpdir(), 'mm-vol-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** Plays 50 ms of a constant 8000 through a fake aplay; returns the samples it was fed. */
async function playedAt(volume?: number): Promise<Int16Array> {
  const out = path.join(dir, `out-${volume}.raw`)
  const fake = path.join(dir, `aplay-${volume}`)
  writeFileSync(fake, `#!/bin/sh\nexec cat > ${out}\n`)
  chmodSync(fake, 0o755)
  const sink = aplaySink({ bin: fake })
  if (volume !== undefined) sink.volume = volume
  const pcm = new Int16Array(800).fill(8000)
  sink.play(pcm, { turnId: 1 })
  await sink.idle
  await new Promise((r) => setTimeout(r, 100)) // aplay's stdin closed: let cat finish writing
  await sink.close()
  expect(pcm[0]).toBe(8000) // the caller's audio is not changed
  const buf = readFileSync(out)
  return new Int16Array(buf.buffer, buf.byteOffset, buf.length / 2)
}

describe('sink volume', () => {
  it('plays samples unchanged at 100, scaled by (volume/100)² below, silent at 0', async () => {
    expect([...new Set(await playedAt())]).toEqual([8000])
    expect([...new Set(await playedAt(50))]).toEqual([2000])
    expect([...new Set(await playedAt(0))]).toEqual([0])
  })

  it('refuses a volume outside 0–100', () => {
    const sink = fileSink(null)
    expect(() => { sink.volume = 101 }).toThrow('volume must be 0–100, got 101')
    expect(sink.volume).toBe(100)
  })
})
