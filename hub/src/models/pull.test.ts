// pullModels against a local HTTP server on 127.0.0.1 (never the internet), serving a
// generated tar.bz2 "model" and a tiny GGUF through a manifest override.
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { buildTinyGguf } from '../../../test/support/tiny-gguf.js'
import { checkModels } from './check.js'
import { LOCK_FILE, readLock, type ManifestEntry } from './manifest.js'
import { pullModels, type PullOptions } from './pull.js'

const root = mkdtempSync(path.join(tmpdir(), 'mm-models-pull-'))
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

/** A tar.bz2 with one top folder holding `files`. */
function tarBz2(name: string, files: Record<string, string | Buffer>): Buffer {
  const src = mkdtempSync(path.join(root, 'src-'))
  mkdirSync(path.join(src, name))
  for (const [f, body] of Object.entries(files)) writeFileSync(path.join(src, name, f), body)
  execFileSync('tar', ['-cjf', path.join(src, 'out.tar.bz2'), '-C', src, name])
  return readFileSync(path.join(src, 'out.tar.bz2'))
}

const garbageOnnx = Buffer.from('not really an onnx model '.repeat(200))
const asrArchive = tarBz2('sherpa-onnx-test-asr', { 'tokens.txt': 'a 0\nb 1\n', 'model.onnx': garbageOnnx })
const notModel = tarBz2('readme-only', { 'README.md': 'hello' })
const gguf: Buffer = buildTinyGguf({}).buffer

let server: Server
let base = ''
beforeAll(async () => {
  server = createServer((req, res) => {
    const send = (body: Buffer) => { res.writeHead(200, { 'content-length': body.length }); res.end(body) }
    if (req.url === '/asr.tar.bz2') return send(asrArchive)
    if (req.url === '/readme.tar.bz2') return send(notModel)
    if (req.url === '/tiny.gguf') return send(gguf)
    if (req.url === '/broken') { // promises more than it sends, then drops the connection
      res.writeHead(200, { 'content-length': 100_000 })
      res.write(gguf.subarray(0, 5000), () => res.destroy())
      return
    }
    res.writeHead(404).end()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve))
  rmSync(root, { recursive: true, force: true })
})

const entry = (over: Partial<ManifestEntry>): ManifestEntry => ({
  id: 'test-asr', engine: 'asr-sherpa', name: 'asr', url: `${base}/asr.tar.bz2`, sizeBytes: 1000, sha256: null,
  archive: 'tar.bz2', license: 'test', note: 'test', ...over,
})

let n = 0
let modelsDir = ''
let lines: string[] = []
beforeEach(() => {
  modelsDir = path.join(root, `models-${n++}`)
  lines = []
})
const pull = (manifest: ManifestEntry[], o: Partial<PullOptions> = {}) => pullModels({ modelsDir, manifest, log: (l) => lines.push(l), ...o })
/** Nothing but the given names in the models dir (no temp folders left). */
const leftover = () => readdirSync(modelsDir).sort()

describe('pullModels', () => {
  it('downloads, unpacks (top folder stripped), places and locks; check then verifies against the lock', async () => {
    const manifest = [entry({}), entry({ id: 'test-llm', engine: 'llm-gguf', name: 'tiny.gguf', url: `${base}/tiny.gguf`, archive: 'none', sha256: sha(gguf) })]
    const results = await pull(manifest)
    expect(results.map((r) => r.status)).toEqual(['installed', 'installed'])
    expect(leftover()).toEqual(['asr', LOCK_FILE, 'tiny.gguf'])
    expect(readdirSync(path.join(modelsDir, 'asr')).sort()).toEqual(['model.onnx', 'tokens.txt'])
    expect(readFileSync(path.join(modelsDir, 'tiny.gguf')).equals(gguf)).toBe(true)
    expect(lines.some((l) => /test-llm: \d+% \(/.test(l))).toBe(true)

    const lock = await readLock(modelsDir)
    expect(lock.models['test-asr']).toMatchObject({
      engine: 'asr-sherpa', name: 'asr', url: `${base}/asr.tar.bz2`,
      download: { size: asrArchive.length, sha256: sha(asrArchive) },
      files: { 'model.onnx': { size: garbageOnnx.length, sha256: sha(garbageOnnx) }, 'tokens.txt': { size: 8, sha256: sha(Buffer.from('a 0\nb 1\n')) } },
    })
    expect(lock.models['test-llm']).toMatchObject({ download: { size: gguf.length, sha256: sha(gguf) }, files: { '': { size: gguf.length, sha256: sha(gguf) } } })

    const opts = { modelsDir, asrDir: path.join(modelsDir, 'asr'), ttsDir: path.join(modelsDir, 'tts'), llmModel: path.join(modelsDir, 'tiny.gguf'), probe: false }
    const before = await checkModels(opts)
    expect(before[0]).toMatchObject({ status: 'ok', detail: expect.stringContaining('sizes and sha256 match') })
    expect(before[2]).toMatchObject({ status: 'ok', detail: expect.stringContaining('sizes and sha256 match') })
    truncateSync(path.join(modelsDir, 'asr', 'model.onnx'), 10)
    expect((await checkModels(opts))[0]).toMatchObject({ status: 'invalid', detail: expect.stringContaining(`model.onnx: size 10, expected ${garbageOnnx.length}`), fix: expect.stringContaining('mirrormesh models pull test-asr --force') })
  })

  it('leaves an installed model alone unless forced', async () => {
    await pull([entry({})])
    expect((await pull([entry({})]))[0]).toMatchObject({ status: 'present', detail: 'already installed' })
    writeFileSync(path.join(modelsDir, 'asr', 'extra'), 'x')
    expect((await pull([entry({})], { force: true }))[0]!.status).toBe('installed')
    expect(readdirSync(path.join(modelsDir, 'asr')).sort()).toEqual(['model.onnx', 'tokens.txt']) // replaced whole
    expect(leftover()).toEqual(['asr', LOCK_FILE])
  })

  it('sha256 mismatch with the manifest → refused, nothing left in place', async () => {
    const [r] = await pull([entry({ sha256: '0'.repeat(64) })])
    expect(r).toMatchObject({ status: 'failed', detail: expect.stringMatching(/^sha256 mismatch: got [0-9a-f]{64}, the manifest expects 0{64}; refused/) })
    expect(leftover()).toEqual([])
    expect(existsSync(path.join(modelsDir, LOCK_FILE))).toBe(false)
  })

  it('an archive that is no model, a broken download or HTTP 404 → refused, nothing left', async () => {
    const results = await pull([
      entry({ id: 'readme', url: `${base}/readme.tar.bz2` }),
      entry({ id: 'broken', engine: 'llm-gguf', name: 'x.gguf', archive: 'none', url: `${base}/broken` }),
      entry({ id: 'gone', url: `${base}/nope.tar.bz2` }),
    ])
    expect(results).toMatchObject([
      { status: 'failed', detail: expect.stringMatching(/not a usable sherpa-onnx model \(no tokens\.txt in ASR model directory <archive>\); refused/) },
      { status: 'failed', detail: expect.stringMatching(/^download of .*\/broken (broke off after|is truncated)/) },
      { status: 'failed', detail: expect.stringContaining('HTTP 404') },
    ])
    expect(leftover()).toEqual([])
  })

  it('offline (nothing listening) → a clear error', async () => {
    const closed = createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const port = (closed.address() as AddressInfo).port
    await new Promise((resolve) => closed.close(resolve))
    const [r] = await pull([entry({ url: `http://127.0.0.1:${port}/asr.tar.bz2` })])
    expect(r!.detail).toBe(`cannot reach 127.0.0.1:${port} (ECONNREFUSED): are you online? models can also be copied by hand into ${path.join(modelsDir, 'asr')}`)
    expect(leftover()).toEqual([])
  })

  it('an injected fetch is used; unknown ids throw before anything is fetched', async () => {
    let calls = 0
    const fetchImpl = (async () => { calls++; return new Response(gguf, { headers: { 'content-length': String(gguf.length) } }) }) as typeof fetch
    const [r] = await pull([entry({ id: 'llm', engine: 'llm-gguf', name: 'm.gguf', archive: 'none', url: 'https://example.invalid/m.gguf' })], { fetchImpl })
    expect(r!.status).toBe('installed')
    await expect(pull([entry({})], { ids: ['nope'], fetchImpl })).rejects.toThrow(/unknown model id nope; known: test-asr/)
    expect(calls).toBe(1)
  })
})
