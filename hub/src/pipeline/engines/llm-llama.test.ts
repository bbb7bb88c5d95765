import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createLogger } from '@mirrormesh/broker'
import { makeTinyGguf } from '../../../../test/support/tiny-gguf.js'
import { EngineError } from '@mirrormesh/speech'
import { LlamaLlm, type LlamaLlmOptions } from './llm-llama.js'

const log = createLogger({ name: 'test', level: 'silent' })
const dir = mkdtempSync(path.join(tmpdir(), 'mm-llama-'))
const modelPath = path.join(dir, 'tiny.gguf')
const engines: LlamaLlm[] = []

beforeAll(async () => {
  await makeTinyGguf(modelPath, 7)
})
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.close()))
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function engine(opts: Partial<LlamaLlmOptions> = {}): LlamaLlm {
  const e = new LlamaLlm({ modelPath, maxThreads: 2, gpuLayers: 0, contextSize: 512, timeoutMs: 20_000, log, ...opts })
  engines.push(e)
  return e
}

const req = (prompt: string, extra: { maxTokens?: number; signal?: AbortSignal; onText?: (t: string) => void } = {}) => ({
  prompt,
  system: 'You are a terse home assistant.',
  signal: extra.signal ?? new AbortController().signal,
  onText: extra.onText ?? (() => {}),
  maxTokens: extra.maxTokens ?? 8,
})

describe('LlamaLlm', () => {
  it('is down until loaded, then streams text chunks', async () => {
    const llm = engine()
    expect(llm.health()).toBe('down')
    expect(llm.downReason).toBe('loading')
    await llm.start()
    expect(llm.health()).toBe('ok')
    expect(await llm.vram()).toBeUndefined()
    const chunks: string[] = []
    const text = await llm.generate(req('turn on the kitchen light', { onText: (t) => chunks.push(t) }))
    expect(chunks.length).toBeGreaterThanOrEqual(1)
    expect(chunks.join('')).toBe(text)
    // Turns do not accumulate: an oversized prompt is trimmed to fit the 512-token context, twice.
    const long = 'what time is it in the kitchen '.repeat(60)
    await expect(llm.generate(req(long))).resolves.toEqual(expect.any(String))
    await expect(llm.generate(req(long))).resolves.toEqual(expect.any(String))
    expect(llm.health()).toBe('ok')
  })

  it('stops quickly when aborted, without counting a failure', async () => {
    const llm = engine()
    await llm.start()
    const ac = new AbortController()
    let chunks = 0
    let abortedAt = 0
    const err = await llm.generate(req('what time is it', {
      maxTokens: 400,
      signal: ac.signal,
      onText: () => {
        if (++chunks === 3) {
          abortedAt = performance.now()
          ac.abort()
        }
      },
    })).catch((e: unknown) => e)
    expect(err).toMatchObject({ name: 'AbortError' })
    expect(performance.now() - abortedAt).toBeLessThan(1000)
    expect(chunks).toBeLessThan(10)
    expect(llm.health()).toBe('ok')
  })

  it('times out, goes down after 3 failures and reloads in the background', async () => {
    const llm = engine({ timeoutMs: 100, reloadBackoff: { initialMs: 50, maxMs: 100 } })
    await llm.start()
    for (let i = 0; i < 3; i++) {
      const err = await llm.generate(req('what time is it', { maxTokens: 250 })).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(EngineError)
      expect(err).toMatchObject({ reason: 'timeout' })
      expect(llm.health()).toBe(i < 2 ? 'degraded' : 'down')
    }
    expect(llm.downReason).toBe('failing')
    expect(llm.downDetail).toMatch(/3 consecutive failures, last: .*no answer within 100 ms/)
    await expect(llm.generate(req('stop'))).rejects.toMatchObject({ reason: 'not_ready' })
    await expect.poll(() => llm.health(), { timeout: 10_000 }).toBe('ok')
    expect(llm.reloads).toBe(1)
  })

  it('reports a missing or corrupt model as down with a reason, and the process lives on', async () => {
    const missing = engine({ modelPath: path.join(dir, 'nope.gguf') })
    await missing.start()
    expect(missing.health()).toBe('down')
    expect(missing.downReason).toBe('model_missing')
    expect(missing.downDetail).toMatch(/model file not found: .*nope\.gguf/)
    await expect(missing.generate(req('stop'))).rejects.toMatchObject({ reason: 'not_ready' })

    const truncated = path.join(dir, 'truncated.gguf')
    writeFileSync(truncated, readFileSync(modelPath).subarray(0, 60_000))
    const corrupt = engine({ modelPath: truncated, reloadBackoff: { initialMs: 60_000, maxMs: 60_000, minMs: 60_000 } })
    await corrupt.start()
    expect(corrupt.health()).toBe('down')
    expect(corrupt.downReason).toBe('load_failed')
    expect(corrupt.downDetail).toMatch(/load failed: .*(corrupt|incomplete|bounds)/)
  })
})
