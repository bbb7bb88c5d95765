// No sherpa model can be downloaded here, so these cover the failure paths: a bad model
// must become an EngineError while this (test) process stays alive.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { createLogger } from '@mirrormesh/broker'
import { EngineError } from '@mirrormesh/speech'
import { asrModelConfig, SherpaAsr } from './asr-sherpa.js'
import { SherpaWorker } from '@mirrormesh/speech'
import { sentences, SherpaTts, ttsModelConfig } from './tts-sherpa.js'
import { defaultSileroModelPath } from '@mirrormesh/speech'

const log = createLogger({ name: 'test', level: 'silent' })
const root = mkdtempSync(path.join(tmpdir(), 'mm-sherpa-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

/** A model dir holding tokens.txt and `model.onnx` with the given bytes. */
function modelDir(name: string, onnx: Buffer | undefined, extra: Record<string, string> = {}): string {
  const dir = path.join(root, name)
  mkdirSync(dir, { recursive: true })
  writeFileSync(path.join(dir, 'tokens.txt'), 'a 0\nb 1\n')
  if (onnx) writeFileSync(path.join(dir, 'model.onnx'), onnx)
  for (const [f, body] of Object.entries(extra)) writeFileSync(path.join(dir, f), body)
  return dir
}

const garbage = Buffer.from('this is not an onnx model at all '.repeat(100))
// A real ONNX file of the wrong kind, and a truncated one: onnxruntime aborts the process on these.
const silero = readFileSync(defaultSileroModelPath())
const opts = { numThreads: 1, provider: 'cpu', log }

async function failure(p: Promise<unknown>): Promise<EngineError> {
  const err = await p.then(() => undefined, (e: unknown) => e)
  expect(err).toBeInstanceOf(EngineError)
  return err as EngineError
}

describe('SherpaAsr', () => {
  it('missing directory or files → model_missing', async () => {
    expect((await failure(SherpaAsr.load({ modelDir: path.join(root, 'nope'), ...opts }))).reason).toBe('model_missing')
    const noModel = modelDir('asr-empty', undefined)
    expect(await failure(SherpaAsr.load({ modelDir: noModel, ...opts }))).toMatchObject({ reason: 'model_missing', message: expect.stringMatching(/model \.onnx/) })
  })

  it.each([
    ['garbage', garbage],
    ['wrong-kind', silero],
    ['truncated', silero.subarray(0, silero.length >> 1)],
  ])('%s model.onnx → model_invalid, process alive', async (name, bytes) => {
    const err = await failure(SherpaAsr.load({ modelDir: modelDir(`asr-${name}`, bytes), ...opts }))
    expect(err.reason).toBe('model_invalid')
    expect(err.message).toMatch(/sherpa asr model failed to load/)
  })

  it('tells model kinds apart by file names', () => {
    const t = modelDir('zipformer', undefined, { 'encoder-epoch-99.onnx': '', 'encoder-epoch-99.int8.onnx': '', 'decoder-epoch-99.onnx': '', 'joiner-epoch-99.onnx': '' })
    expect(asrModelConfig(t)).toMatchObject({ kind: 'transducer', modelConfig: { transducer: { encoder: path.join(t, 'encoder-epoch-99.int8.onnx') } } })
    const w = modelDir('whisper', undefined, { 'tiny.en-encoder.onnx': '', 'tiny.en-decoder.onnx': '', 'tiny.en-tokens.txt': '' })
    expect(asrModelConfig(w).kind).toBe('whisper')
    expect(asrModelConfig(modelDir('sherpa-onnx-sense-voice-small', garbage)).kind).toBe('sense-voice')
    expect(asrModelConfig(modelDir('asr-para', garbage)).kind).toBe('paraformer')
  })
})

describe('SherpaTts', () => {
  it('missing directory or files → model_missing', async () => {
    expect((await failure(SherpaTts.load({ modelDir: path.join(root, 'nope'), ...opts }))).reason).toBe('model_missing')
    expect((await failure(SherpaTts.load({ modelDir: modelDir('tts-empty', undefined), ...opts }))).reason).toBe('model_missing')
  })

  it.each([
    ['garbage', garbage],
    ['wrong-kind', silero],
  ])('%s model.onnx → model_invalid, process alive', async (name, bytes) => {
    const err = await failure(SherpaTts.load({ modelDir: modelDir(`tts-${name}`, bytes), ...opts }))
    expect(err.reason).toBe('model_invalid')
  })

  it('tells model kinds apart by file names', () => {
    const k = modelDir('kokoro', garbage, { 'voices.bin': '' })
    mkdirSync(path.join(k, 'espeak-ng-data'))
    expect(ttsModelConfig(k)).toMatchObject({ kind: 'kokoro', model: { kokoro: { dataDir: path.join(k, 'espeak-ng-data') } } })
    const m = modelDir('matcha', undefined, { 'model-steps-3.onnx': '', 'vocos-22khz-univ.onnx': '' })
    expect(ttsModelConfig(m)).toMatchObject({ kind: 'matcha', model: { matcha: { acousticModel: path.join(m, 'model-steps-3.onnx'), vocoder: path.join(m, 'vocos-22khz-univ.onnx') } } })
    expect(ttsModelConfig(modelDir('piper', garbage)).kind).toBe('vits')
  })

  it('splits text into sentences, merging short fragments', () => {
    expect(sentences('Hi. It is ten past five. The kitchen light is on!  Ok?')).toEqual(['Hi. It is ten past five.', 'The kitchen light is on! Ok?'])
    expect(sentences('Done.')).toEqual(['Done.'])
    expect(sentences('  ')).toEqual([])
  })
})

describe('SherpaWorker', () => {
  it('reports a config the native engine rejects as model_invalid and ends the worker', async () => {
    const dir = modelDir('worker', undefined)
    const config = { model: { vits: { model: path.join(dir, 'absent.onnx'), tokens: path.join(dir, 'tokens.txt'), dataDir: '' }, numThreads: 1, provider: 'cpu', debug: 0 } }
    const err = await failure(SherpaWorker.start('tts', config))
    expect(err).toMatchObject({ reason: 'model_invalid', message: expect.stringMatching(/check your config/) })
  })
})
