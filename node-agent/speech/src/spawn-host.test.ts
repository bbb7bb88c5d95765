import { afterAll, describe, expect, it } from 'vitest'
import { once } from 'node:events'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { createLogger } from '@mirrormesh/broker'
import { SpawnHost } from './spawn-host.js'
import { killGroup } from './proc.js'
import { EspeakTts } from './tts-espeak.js'
import { PocketsphinxAsr, jsgfFromPhrases } from './asr-pocketsphinx.js'

const host = new SpawnHost()
afterAll(() => host.close())

describe('SpawnHost', () => {
  it('relays stdin to stdout and reports the exit code', async () => {
    const child = host.spawn('/bin/sh', ['-c', 'cat; echo err >&2; exit 3'])
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (b: Buffer) => out.push(b))
    child.stderr.on('data', (b: Buffer) => err.push(b))
    child.stdin.write(Buffer.from('hello '))
    child.stdin.end('world')
    const [code] = await once(child, 'close')
    expect(code).toBe(3)
    expect(child.exitCode).toBe(3)
    expect(Buffer.concat(out).toString()).toBe('hello world')
    expect(Buffer.concat(err).toString()).toBe('err\n')
    expect(child.pid).toBeGreaterThan(0)
  })

  it('pipes one child into another and iterates stdout', async () => {
    const a = host.spawn('/bin/sh', ['-c', 'printf abc'])
    const b = host.spawn('/bin/cat', [])
    a.stdout.pipe(b.stdin)
    let text = ''
    for await (const chunk of b.stdout as AsyncIterable<Buffer>) text += chunk.toString()
    expect(text).toBe('abc')
  })

  it('emits error for a missing binary', async () => {
    const child = host.spawn('/nonexistent/bin', [])
    const [err] = await once(child, 'error')
    expect((err as NodeJS.ErrnoException).code).toBe('ENOENT')
  })

  it('kills a detached child as a group, also before its pid is known', async () => {
    const child = host.spawn('/bin/sh', ['-c', 'sleep 30 | cat'], { detached: true })
    killGroup(child)
    const [, signal] = await once(child, 'close')
    expect(signal).toBe('SIGKILL')
  })
})

describe('engines through SpawnHost', () => {
  it('espeak-ng + sox speak, and pocketsphinx hears it, with every child spawned by the worker', async () => {
    const tts = new EspeakTts({ voice: 'en-us', spawn: host.spawn })
    const parts: Int16Array[] = []
    for await (const c of tts.synthesize('turn on the kitchen light', new AbortController().signal)) parts.push(c)
    const n = parts.reduce((a, c) => a + c.length, 0)
    expect(n).toBeGreaterThan(16_000 * 0.8)
    const pcm = new Int16Array(n)
    let off = 0
    for (const c of parts) { pcm.set(c, off); off += c.length }
    const grammarPath = path.join(mkdtempSync(path.join(tmpdir(), 'mm-spawnhost-')), 'g.gram')
    writeFileSync(grammarPath, jsgfFromPhrases(['turn on the kitchen light', 'what time is it', 'stop']))
    const asr = new PocketsphinxAsr({ grammarPath, log: createLogger({ name: 'test', level: 'silent' }), spawn: host.spawn })
    const s = asr.start(new AbortController().signal)
    for (let i = 0; i < pcm.length; i += 320) s.write(pcm.subarray(i, i + 320))
    expect((await s.finish()).text).toBe('turn on the kitchen light')
  })

  it('an aborted espeak turn stops at once', async () => {
    const tts = new EspeakTts({ voice: 'en-us', spawn: host.spawn })
    const ctl = new AbortController()
    const t0 = Date.now()
    const run = (async () => { for await (const _ of tts.synthesize('this is a rather long sentence that takes a while to say', ctl.signal)) ctl.abort(new Error('barge_in')) })()
    await expect(run).rejects.toThrow('barge_in')
    expect(Date.now() - t0).toBeLessThan(3000)
  })
})
