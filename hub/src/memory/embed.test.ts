// Embedding plumbing: node-llama-cpp's embedding context on a tiny random GGUF (its vectors mean
// nothing; the test checks size, normalisation, threads), and the fallback when embedding fails.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createLogger } from '@mirrormesh/broker'
import { Registry } from 'prom-client'
import { afterAll, describe, expect, it } from 'vitest'
import { makeTinyGguf } from '../../../test/support/tiny-gguf.js'
import { HashedEmbedder, LlamaEmbedder, type Embedder } from './embed.js'
import { Memory, defaultMemoryOptions, memoryMetrics } from './service.js'
import { SqliteMemoryStore } from './sqlite.js'

const dir = mkdtempSync(join(tmpdir(), 'mm-embed-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('memory embeddings', () => {
  it('loads a GGUF embedding model with one thread and returns unit vectors of its size', async () => {
    const model = join(dir, 'tiny.gguf')
    await makeTinyGguf(model, 7, { nEmbd: 64 })
    const e = await LlamaEmbedder.load({ modelPath: model, maxThreads: 1, timeoutMs: 10_000 })
    try {
      expect(e.dim).toBe(64)
      const [a, b] = await Promise.all([e.embed('the keys are in the drawer'), e.embed('where are my keys')])
      expect(a.length).toBe(64)
      expect(Math.hypot(...a)).toBeCloseTo(1, 4)
      expect(Math.hypot(...b)).toBeCloseTo(1, 4)
    } finally { await e.close() }
  }, 60_000)

  it('falls back to keyword search when the embedder fails, and counts it', async () => {
    const registry = new Registry()
    const store = new SqliteMemoryStore(join(dir, 'fallback.db'), { dim: 256 })
    const hashed = new HashedEmbedder()
    let broken = false
    const flaky: Embedder = { mode: 'model', name: 'flaky', dim: 256, embed: async (t) => { if (broken) throw Object.assign(new Error('model crashed'), { code: 'crashed' }); return hashed.embed(t) } }
    const memory = new Memory(store, flaky, defaultMemoryOptions, memoryMetrics(registry, () => store.stats()), createLogger({ name: 'test', level: 'silent' }))
    await memory.remember('room:kitchen', 'the keys are in the drawer')
    broken = true
    const hits = await memory.recall('room:kitchen', 'where are my keys')
    expect(hits[0]).toMatchObject({ text: 'the keys are in the drawer', keyword: true })
    expect(hits[0]!.similarity).toBeUndefined()
    const text = await registry.metrics()
    expect(text).toContain('mirrormesh_memory_embedding_fallbacks_total{reason="crashed"} 1')
    expect(text).toMatch(/mirrormesh_memory_recall_seconds_count 1/)
    await memory.close()
  })
})
