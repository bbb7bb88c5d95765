import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { KeywordSpotterWake, kwsFiles } from './kws.js'

const dir = mkdtempSync(path.join(tmpdir(), 'mm-kws-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function modelDir(name: string, files: Record<string, string | Buffer>): string {
  const d = path.join(dir, name)
  mkdirSync(d, { recursive: true })
  for (const [f, body] of Object.entries(files)) {
    writeFileSync(path.join(d, f), body, { flag: 'w' })
  }
  return d
}

describe('kwsFiles', () => {
  it('names every missing file at once', () => {
    const d = modelDir('empty', {})
    expect(() => kwsFiles({ modelDir: d })).toThrow(/encoder\*\.onnx.*decoder\*\.onnx.*joiner\*\.onnx.*tokens\.txt.*keywords\.txt/)
    expect(() => kwsFiles({ modelDir: path.join(dir, 'nope') })).toThrow(/KWS_MODEL_DIR .*nope does not exist/)
  })

  it('prefers the int8 files a release ships next to fp32, and refuses an empty keyword list', () => {
    const d = modelDir('release', {
      'encoder-epoch-12-avg-2-chunk-16-left-64.onnx': 'x', 'encoder-epoch-12-avg-2-chunk-16-left-64.int8.onnx': 'x',
      'decoder-epoch-12-avg-2-chunk-16-left-64.onnx': 'x', 'joiner-epoch-12-avg-2-chunk-16-left-64.int8.onnx': 'x', 'joiner-epoch-12-avg-2-chunk-16-left-64.onnx': 'x',
      'tokens.txt': '<blk> 0\n', 'keywords.txt': '# comment only\n\n',
    })
    expect(() => kwsFiles({ modelDir: d })).toThrow(/lists no keywords/)
    writeFileSync(path.join(d, 'keywords.txt'), '▁HE LL O ▁MI RR OR @HELLO_MIRROR\n')
    const f = kwsFiles({ modelDir: d })
    expect(path.basename(f.encoder)).toBe('encoder-epoch-12-avg-2-chunk-16-left-64.int8.onnx')
    expect(path.basename(f.decoder)).toBe('decoder-epoch-12-avg-2-chunk-16-left-64.onnx')
    expect(path.basename(f.joiner)).toBe('joiner-epoch-12-avg-2-chunk-16-left-64.int8.onnx')
  })
})

describe('KeywordSpotterWake.load', () => {
  it('rejects a corrupt model with model_invalid from the probe process, and this process lives on', async () => {
    const d = modelDir('corrupt', {
      'encoder.onnx': Buffer.from('not an onnx model'), 'decoder.onnx': Buffer.from([8, 7, 0, 1]), 'joiner.onnx': Buffer.alloc(64, 0xff),
      'tokens.txt': '<blk> 0\n▁HI 1\n', 'keywords.txt': '▁HI @HI\n',
    })
    const err = await KeywordSpotterWake.load({ modelDir: d }).catch((e: unknown) => e)
    expect(err).toMatchObject({ name: 'EngineError', reason: 'model_invalid' })
    expect((err as Error).message).toMatch(/keyword spotter model in .*corrupt failed to load \((exit \d+|killed by SIG\w+)\)/)
  }, 60_000)
})
