import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { aplaySink, fileSink, type FirstSample, type PlayRecord } from './sink.js'

const dir = mkdtempSync(path.join(tmpdir(), 'mm-sink-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const ms = (n: number): Int16Array => new Int16Array((n * 16000) / 1000).fill(1000)

describe('fileSink', () => {
  it('plays queued audio in real time and records each turn as JSONL', async () => {
    const file = path.join(dir, 'play.jsonl')
    const sink = fileSink(file)
    const first: FirstSample[] = []
    sink.onFirstSample((e) => first.push(e))
    const t0 = Date.now()
    sink.play(ms(200), { turnId: 7 })
    sink.play(ms(100), { turnId: 7 })
    expect(sink.playing).toBe(true)
    await sink.idle
    const took = Date.now() - t0
    expect(took).toBeGreaterThanOrEqual(290)
    expect(took).toBeLessThan(450)
    expect(sink.playing).toBe(false)
    expect(first).toHaveLength(1)
    expect(first[0]!.turnId).toBe(7)
    expect(first[0]!.at - t0).toBeLessThan(20)
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as PlayRecord)
    expect(lines).toEqual([{ turnId: 7, startAt: expect.any(Number), firstSampleAt: first[0]!.at, samples: 4800 }])
    await sink.close()
  })

  it('stop() silences at once and drops the queue; a new turn plays after it', async () => {
    const sink = fileSink(null)
    sink.play(ms(2000), { turnId: 1 })
    await new Promise((r) => setTimeout(r, 100))
    const idle = sink.idle
    const t0 = Date.now()
    sink.stop()
    await idle
    expect(Date.now() - t0).toBeLessThan(10)
    // What was released is ~100 ms plus the lead, nowhere near 2 s.
    expect(sink.playedSamples).toBeLessThan(16 * 200)
    expect(sink.records[0]).toMatchObject({ turnId: 1, stopped: true })
    sink.play(ms(40), { turnId: 2 })
    await sink.idle
    expect(sink.records.map((r) => r.turnId)).toEqual([1, 2])
    expect(sink.records[1]!.samples).toBe(640)
  })

  it('onFirstSample fires once per turn, when that turn starts playing', async () => {
    const sink = fileSink(null)
    const first: FirstSample[] = []
    sink.onFirstSample((e) => first.push(e))
    const t0 = Date.now()
    sink.play(ms(100), { turnId: 1 })
    sink.play(ms(100), { turnId: 2 })
    await sink.idle
    expect(first.map((f) => f.turnId)).toEqual([1, 2])
    expect(first[1]!.at - t0).toBeGreaterThanOrEqual(95)
    expect(sink.records.map((r) => [r.turnId, r.samples])).toEqual([[1, 1600], [2, 1600]])
  })
})

describe('aplaySink', () => {
  it('fails clearly when aplay is missing', () => {
    expect(() => aplaySink({ bin: 'no-such-aplay' })).toThrow(/no-such-aplay not found/)
  })

  it('feeds aplay through stdin in real time and kills it on stop()', async () => {
    // A stand-in that records its arguments and what it was fed.
    const out = path.join(dir, 'aplay.raw')
    const argsFile = path.join(dir, 'aplay.args')
    const fake = path.join(dir, 'fake-aplay')
    writeFileSync(fake, `#!/bin/sh\necho "$@" > ${argsFile}\nexec cat > ${out}\n`)
    chmodSync(fake, 0o755)
    const errors: Error[] = []
    const sink = aplaySink({ bin: fake, device: 'plughw:1,0', onError: (e) => errors.push(e) })
    sink.play(ms(100), { turnId: 3 })
    await sink.idle
    await new Promise((r) => setTimeout(r, 100))
    expect(readFileSync(argsFile, 'utf8')).toMatch(/^-D plughw:1,0 -q -t raw -f S16_LE -r 16000 -c 1 /)
    expect(readFileSync(out).length).toBe(3200)
    sink.play(ms(3000), { turnId: 4 })
    await new Promise((r) => setTimeout(r, 150))
    sink.stop()
    await new Promise((r) => setTimeout(r, 100))
    // Only ~150 ms (plus the 60 ms lead) reached aplay before it was killed.
    expect(readFileSync(out).length).toBeLessThan(16 * 2 * 300)
    expect(errors).toEqual([])
    await sink.close()
  })
})
