// checkModels on real files in temp dirs. No real sherpa model is available offline, so the
// sherpa probe is exercised on wrong-kind models (which must not take this process down).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeEach, describe, expect, it } from 'vitest'
import { makeTinyGguf } from '../../../test/support/tiny-gguf.js'
import { defaultSileroModelPath } from '@mirrormesh/speech'
import { checkModels, type CheckModelsOptions, type ModelReport } from './check.js'
import { digestTree, hashFile, LOCK_FILE, writeLock } from './manifest.js'

const root = mkdtempSync(path.join(tmpdir(), 'mm-models-check-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

let n = 0
let opts: CheckModelsOptions
beforeEach(() => {
  const modelsDir = path.join(root, `m${n++}`)
  mkdirSync(modelsDir)
  opts = { modelsDir, asrDir: path.join(modelsDir, 'asr'), ttsDir: path.join(modelsDir, 'tts') }
})

const byEngine = (reports: ModelReport[]) => Object.fromEntries(reports.map((r) => [r.engine, r]))

function sherpaDir(dir: string, files: Record<string, string | Buffer>): void {
  mkdirSync(dir, { recursive: true })
  for (const [f, body] of Object.entries(files)) writeFileSync(path.join(dir, f), body)
}

/** Records `target` in the lock as `pull` would. */
async function lockIt(id: string, name: string, engine: 'asr-sherpa' | 'tts-sherpa' | 'llm-gguf'): Promise<void> {
  const target = path.join(opts.modelsDir, name)
  await writeLock(opts.modelsDir, { version: 1, models: { [id]: {
    id, engine, name, url: 'http://example.invalid/x', downloadedAt: new Date().toISOString(),
    download: { size: 1, sha256: 'x' }, files: await digestTree(target),
  } } })
}

describe('checkModels', () => {
  it('nothing there: sherpa missing with its fallback, LLM unset', async () => {
    const r = byEngine(await checkModels(opts))
    expect(r['asr-sherpa']).toMatchObject({ status: 'missing', detail: expect.stringContaining('fallback: pocketsphinx'), fix: expect.stringContaining('mirrormesh models pull whisper-tiny.en') })
    expect(r['tts-sherpa']).toMatchObject({ status: 'missing', detail: expect.stringContaining('fallback: espeak-ng') })
    expect(r['llm-gguf']).toMatchObject({ status: 'missing', configured: false, detail: expect.stringContaining('LLM_MODEL is not set') })
  })

  it('a valid tiny GGUF is ok; a missing LLM_MODEL file is missing', async () => {
    const file = path.join(opts.modelsDir, 'tiny.gguf')
    await makeTinyGguf(file)
    expect(byEngine(await checkModels({ ...opts, llmModel: file }))['llm-gguf']).toMatchObject({ status: 'ok', detail: expect.stringMatching(/^GGUF v3, .*not in models\.lock\.json/) })
    const gone = path.join(opts.modelsDir, 'gone.gguf')
    expect(byEngine(await checkModels({ ...opts, llmModel: gone }))['llm-gguf']).toMatchObject({ status: 'missing', configured: true, path: gone })
  })

  it('a GGUF that is not one, or of an unknown version, or empty → invalid', async () => {
    const llm = (name: string, body: Buffer | string) => {
      writeFileSync(path.join(opts.modelsDir, name), body)
      return checkModels({ ...opts, llmModel: path.join(opts.modelsDir, name) }).then((r) => byEngine(r)['llm-gguf']!)
    }
    expect(await llm('text.gguf', 'hello world, not a model')).toMatchObject({ status: 'invalid', detail: 'not a GGUF file (starts with "hello wo")' })
    const v9 = Buffer.alloc(64)
    v9.write('GGUF', 'latin1')
    v9.writeUInt32LE(9, 4)
    expect(await llm('v9.gguf', v9)).toMatchObject({ status: 'invalid', detail: 'GGUF version 9 is not supported (2 or 3)' })
    expect(await llm('empty.gguf', '')).toMatchObject({ status: 'invalid', detail: 'empty file (0 bytes)' })
  })

  it('a truncated GGUF not in the lock → invalid: the tensor table says how long it must be', async () => {
    const file = path.join(opts.modelsDir, 'cut.gguf')
    const { bytes } = await makeTinyGguf(file)
    const llm = async () => byEngine(await checkModels({ ...opts, llmModel: file }))['llm-gguf']!
    // Half: the header is whole, the tensor data is cut short.
    truncateSync(file, Math.floor(bytes / 2))
    expect(await llm()).toMatchObject({ status: 'invalid', detail: expect.stringMatching(new RegExp(`^cut\\.gguf is truncated: .* need ${(bytes / 1e3).toFixed(1)} kB \\(${bytes - Math.floor(bytes / 2)} bytes missing\\)$`)) })
    // One byte short is enough.
    await makeTinyGguf(file)
    truncateSync(file, bytes - 1)
    expect(await llm()).toMatchObject({ status: 'invalid', detail: expect.stringContaining('(1 bytes missing)') })
    // Cut inside the header (the vocabulary): also named as truncated.
    truncateSync(file, 200)
    expect(await llm()).toMatchObject({ status: 'invalid', detail: expect.stringMatching(/^cut\.gguf: truncated: header ends past the end of the file/) })
  })

  it('verifies files against the lock: truncated → size, altered → sha256', async () => {
    const file = path.join(opts.modelsDir, 'tiny.gguf')
    const { bytes } = await makeTinyGguf(file)
    await lockIt('tiny', 'tiny.gguf', 'llm-gguf')
    const llm = async (o: Partial<CheckModelsOptions> = {}) => byEngine(await checkModels({ ...opts, llmModel: file, ...o }))['llm-gguf']!
    expect(await llm()).toMatchObject({ status: 'ok', detail: expect.stringContaining('sizes and sha256 match models.lock.json') })

    const original = readFileSync(file)
    const altered = Buffer.from(original)
    altered[altered.length - 1]! ^= 0xff
    writeFileSync(file, altered)
    expect(await llm()).toMatchObject({ status: 'invalid', detail: expect.stringContaining('sha256 differs'), fix: 'mirrormesh models pull tiny --force; or point LLM_MODEL at another GGUF file' })
    expect(await llm({ verifyHashes: false })).toMatchObject({ status: 'ok', detail: expect.stringContaining('sha256 not checked') })

    truncateSync(file, 1000)
    expect(await llm()).toMatchObject({ status: 'invalid', detail: `tiny.gguf: size 1000, expected ${bytes} (truncated or replaced)` })
  })

  it('a sherpa folder listed in the lock with a truncated file → invalid before any probe', async () => {
    sherpaDir(opts.ttsDir, { 'tokens.txt': 'a 0\n', 'model.onnx': Buffer.alloc(4096, 7) })
    await lockIt('voice', 'tts', 'tts-sherpa')
    truncateSync(path.join(opts.ttsDir, 'model.onnx'), 100)
    expect(byEngine(await checkModels(opts))['tts-sherpa']).toMatchObject({ status: 'invalid', detail: 'model.onnx: size 100, expected 4096 (truncated or replaced) → fallback: espeak-ng' })
  })

  it('incomplete or empty sherpa folders → invalid', async () => {
    sherpaDir(opts.asrDir, { 'model.onnx': 'x' })
    sherpaDir(opts.ttsDir, { 'tokens.txt': 'a 0\n', 'model.onnx': '' })
    const r = byEngine(await checkModels(opts))
    expect(r['asr-sherpa']).toMatchObject({ status: 'invalid', detail: expect.stringMatching(/no tokens\.txt .*→ fallback: pocketsphinx/), fix: expect.stringContaining('--force') })
    expect(r['tts-sherpa']).toMatchObject({ status: 'invalid', detail: 'model.onnx is empty (0 bytes) → fallback: espeak-ng' })
  })

  it('wrong-kind model (Silero VAD as model.onnx) → invalid, this process alive', async () => {
    const silero = readFileSync(defaultSileroModelPath())
    sherpaDir(opts.asrDir, { 'tokens.txt': 'a 0\nb 1\n', 'model.onnx': silero })
    sherpaDir(opts.ttsDir, { 'tokens.txt': 'a 0\nb 1\n', 'model.onnx': silero })
    const r = byEngine(await checkModels(opts))
    expect(r['asr-sherpa']).toMatchObject({ status: 'invalid', detail: expect.stringMatching(/^paraformer model does not load: sherpa asr model failed to load/) })
    expect(r['tts-sherpa']).toMatchObject({ status: 'invalid', detail: expect.stringMatching(/^vits model does not load: sherpa tts model failed to load/) })
    expect(await hashFile(defaultSileroModelPath())).toMatch(/^[0-9a-f]{64}$/) // still here, still working
  }, 60_000)

  it('an unreadable lock is reported, never thrown', async () => {
    writeFileSync(path.join(opts.modelsDir, LOCK_FILE), '{ not json')
    const file = path.join(opts.modelsDir, 'tiny.gguf')
    await makeTinyGguf(file)
    expect(byEngine(await checkModels({ ...opts, llmModel: file }))['llm-gguf']).toMatchObject({ status: 'ok', detail: expect.stringContaining('models.lock.json unreadable') })
  })
})
