import { EventEmitter } from 'node:events'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createLogger, type Payload } from '@mirrormesh/broker'
import type { EngineHealth, TtsEngine } from '@mirrormesh/speech'
import { buildApp } from '../app.js'
import { NodeRegistry } from '../registry.js'
import type { Skill } from '../pipeline/skills.js'
import { BundleService, type BundlePublisher } from './service.js'

const log = createLogger({ name: 'test', level: 'silent' })

/** A fast deterministic TTS: a tone whose length depends on the text. */
class ToneTts implements TtsEngine {
  readonly name = 'tone'
  calls = 0
  health(): EngineHealth { return 'ok' }
  async *synthesize(text: string): AsyncIterable<Int16Array> {
    this.calls++
    const n = 800 + text.length * 40
    const a = new Int16Array(n)
    for (let i = 0; i < n; i++) a[i] = Math.round(8000 * Math.sin(i / 5))
    yield a
  }
}

class FakeClient extends EventEmitter implements BundlePublisher {
  connected = true
  published: Payload<'cacheManifest'>[] = []
  async publish(_n: 'cacheManifest', _p: Record<string, never>, data: Payload<'cacheManifest'>): Promise<void> {
    this.published.push(data)
  }
}

const skills: Skill[] = [
  { id: 'presence', offline: true, phrases: ['are you there'], handle: () => ({ text: "Yes, I'm here." }) },
  { id: 'joke', offline: false, phrases: ['tell me a joke'], handle: () => ({ text: 'No.' }) },
]

let stateDir: string
let svc: BundleService
let client: FakeClient
let tts: ToneTts

beforeEach(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'mm-bundle-svc-'))
  client = new FakeClient()
  tts = new ToneTts()
  svc = new BundleService({ stateDir, skills, rooms: ['kitchen'], tts, voice: 'tone', client, httpPort: () => 8123, log, delayMs: 0 })
})
afterEach(async () => {
  await svc.stop()
  await rm(stateDir, { recursive: true, force: true })
})

function app() {
  const metrics = new Registry()
  const registry = new NodeRegistry({ staleMs: 3000, metrics, log })
  return buildApp({ registry, metrics, readiness: () => ({ ready: true, checks: {} }), uptimeS: () => 1, drain: () => undefined, bundles: svc })
}

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 10))
  }
}

describe('BundleService + /api/bundle', () => {
  it('404 before the build, then serves manifest and files; announces on build and reconnect', async () => {
    const a = app()
    expect((await a.inject({ method: 'GET', url: '/api/bundle/manifest' })).statusCode).toBe(404)

    svc.start()
    const built = await svc.rebuild()
    expect(built).toBeDefined()
    const res = await a.inject({ method: 'GET', url: '/api/bundle/manifest' })
    expect(res.statusCode).toBe(200)
    const m = res.json()
    expect(m.version).toBe(built!.version)
    expect(m.replies.map((r: { phrase: string }) => r.phrase)).toEqual(['are you there'])

    const file = m.files[0]
    const got = await a.inject({ method: 'GET', url: `/api/bundle/${m.version}/${file.name}` })
    expect(got.statusCode).toBe(200)
    expect(got.headers['content-type']).toBe('application/octet-stream')
    expect(got.rawPayload.equals(await readFile(join(built!.dir, file.name)))).toBe(true)
    expect(got.rawPayload.length).toBe(file.bytes)

    const mf = await a.inject({ method: 'GET', url: `/api/bundle/${m.version}/manifest.json` })
    expect(mf.statusCode).toBe(200)
    expect(mf.rawPayload.equals(await readFile(join(built!.dir, 'manifest.json')))).toBe(true)

    await until(() => client.published.length >= 1)
    const ann = client.published.at(-1)!
    expect(ann).toMatchObject({ v: 1, version: m.version, sha256: built!.manifestSha256, url: `/api/bundle/${m.version}/manifest.json`, httpPort: 8123 })
    const n = client.published.length
    client.emit('connect')
    await until(() => client.published.length === n + 1)
    await a.close()
  })

  it('refuses unknown versions, unlisted files and path traversal', async () => {
    const a = app()
    svc.start()
    const b = (await svc.rebuild())!
    // A file that exists in the state dir but is not part of the bundle.
    await writeFile(join(stateDir, 'secret.txt'), 'no')
    await writeFile(join(b.dir, 'extra.pcm'), 'no')
    for (const url of [
      `/api/bundle/${b.version}/..%2F..%2Fsecret.txt`,
      `/api/bundle/${b.version}/..%2F.clips`,
      `/api/bundle/${b.version}/extra.pcm`,
      `/api/bundle/${b.version}/%2Fetc%2Fpasswd`,
      `/api/bundle/..%2F..%2F/manifest.json`,
      `/api/bundle/0123456789abcdef/manifest.json`,
      `/api/bundle/.clips/${b.manifest.files[0]!.name}`,
      `/api/bundle/${b.version}/../../secret.txt`,
    ]) {
      const res = await a.inject({ method: 'GET', url })
      expect(res.statusCode, url).toBe(404)
      expect(res.body).not.toBe('no')
    }
    await a.close()
  })

  it('uses the clip cache on rebuild, keeps the last good bundle on failure, prunes beyond 2', async () => {
    svc.start()
    const b1 = (await svc.rebuild())!
    const calls = tts.calls
    expect((await svc.rebuild())!.version).toBe(b1.version)
    expect(tts.calls).toBe(calls)

    // Failing TTS: the build fails, the old bundle stays current.
    const broken: TtsEngine = { name: 'broken', health: () => 'down', synthesize: () => { throw new Error('boom') } }
    const svc2 = new BundleService({ stateDir, skills: [{ ...skills[0]!, handle: () => ({ text: 'Something new.' }) }], rooms: [], tts: broken, voice: 'tone', log, delayMs: 60_000 })
    svc2.start()
    await until(() => svc2.manifest() !== undefined) // loaded from disk
    expect(await svc2.rebuild()).toBeUndefined()
    expect(svc2.manifest()!.version).toBe(b1.version)
    await svc2.stop()

    // Three more versions: only the newest two folders stay.
    for (const text of ['A.', 'B.', 'C.']) {
      const s = new BundleService({ stateDir, skills: [{ ...skills[0]!, handle: () => ({ text }) }], rooms: [], tts, voice: 'tone', log, delayMs: 60_000 })
      s.start()
      await s.rebuild()
      await s.stop()
      await new Promise((r) => setTimeout(r, 15)) // distinct mtimes
    }
    const dirs = (await readdir(join(stateDir, 'bundles'))).filter((d) => /^[0-9a-f]+$/.test(d))
    expect(dirs).toHaveLength(2)
    expect(dirs).not.toContain(b1.version)
  })

  it('a failed build is retried with a growing delay until it succeeds, no restart needed', async () => {
    // Fails (a full disk, say) until space is freed.
    let full = true
    const flaky: TtsEngine = {
      name: 'flaky', health: () => 'ok',
      synthesize: (t: string) => { if (full) throw new Error('ENOSPC: no space left on device'); return tts.synthesize(t) },
    }
    const s = new BundleService({ stateDir, skills, rooms: [], tts: flaky, voice: 'flaky', client, log, delayMs: 0, retry: { firstMs: 50, maxMs: 120 } })
    s.start()
    await until(() => s.retry?.attempt === 1)
    expect(s.retry!.error).toMatch(/ENOSPC/)
    expect(s.manifest()).toBeUndefined()
    await until(() => s.retry?.attempt === 2)
    full = false
    await until(() => s.manifest() !== undefined)
    expect(s.retry).toBeUndefined()
    // Announced after pruning: wait for it rather than race it.
    await until(() => client.published.at(-1)?.version === s.manifest()!.version)
    await s.stop()
  })

  it('stop() cancels a pending retry', async () => {
    const broken: TtsEngine = { name: 'broken', health: () => 'down', synthesize: () => { throw new Error('boom') } }
    const s = new BundleService({ stateDir, skills, rooms: [], tts: broken, voice: 'b', log, delayMs: 0, retry: { firstMs: 30, maxMs: 30 } })
    s.start()
    await until(() => s.retry?.attempt === 1)
    await s.stop()
    const n = s.retry!.attempt
    await new Promise((r) => setTimeout(r, 150))
    expect(s.retry!.attempt).toBe(n)
  })

  it('start() does not wait for the build and stop() aborts it', async () => {
    let release!: () => void
    const gate = new Promise<void>((r) => { release = r })
    const slow: TtsEngine = {
      name: 'slow', health: () => 'ok',
      async *synthesize(_t: string, signal: AbortSignal) {
        await Promise.race([gate, new Promise((_r, rej) => signal.addEventListener('abort', () => rej(signal.reason), { once: true }))])
        yield new Int16Array(100).fill(1000)
      },
    }
    const s = new BundleService({ stateDir, skills, rooms: [], tts: slow, voice: 'slow', log, delayMs: 0 })
    s.start()
    await until(() => s.isBuilding)
    expect(s.manifest()).toBeUndefined()
    await s.stop()
    expect(s.isBuilding).toBe(false)
    release()
    await mkdir(join(stateDir, 'bundles'), { recursive: true })
    expect((await readdir(join(stateDir, 'bundles'))).filter((n) => n.startsWith('.tmp-'))).toEqual([])
  })
})
