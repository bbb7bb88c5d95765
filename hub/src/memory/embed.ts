// Embeddings for memory: node-llama-cpp's embedding context on a configured GGUF embedding
// model, or, with none, the model-free hashed character n-grams (hash-embed.ts). Which one runs
// is the memory's "mode" (/readyz, health/memory, `mirrormesh status`).
import { availableParallelism } from 'node:os'
import type { LlamaEmbeddingContext, LlamaModel } from 'node-llama-cpp'
import { sharedLlama } from '../pipeline/engines/llm-llama.js'
import { HASHED_DIM, hashedVector } from './hash-embed.js'

export interface Embedder {
  /** 'model': an embedding model; 'hashed': character n-grams, no model. */
  readonly mode: 'model' | 'hashed'
  /** Shown in /readyz and status: the model file's name, or "hashed-ngrams". */
  readonly name: string
  readonly dim: number
  /** Rejects when the model fails; the caller falls back to keyword search and counts it. */
  embed(text: string, signal?: AbortSignal): Promise<Float32Array>
  close?(): Promise<void>
}

export class HashedEmbedder implements Embedder {
  readonly mode = 'hashed' as const
  readonly name = 'hashed-ngrams'
  readonly dim = HASHED_DIM
  async embed(text: string): Promise<Float32Array> { return hashedVector(text, this.dim) }
}

export interface LlamaEmbedderOptions {
  modelPath: string
  /** CPU threads for embedding; the library's default takes every core, starving the broker. */
  maxThreads: number
  /** An embedding that takes longer is abandoned (the turn falls back to keywords). */
  timeoutMs: number
}

export class LlamaEmbedder implements Embedder {
  readonly mode = 'model' as const
  /** One at a time: the context has one sequence, and a queue keeps turns in order. */
  private chain: Promise<unknown> = Promise.resolve()

  private constructor(readonly name: string, readonly dim: number, private readonly model: LlamaModel, private readonly ctx: LlamaEmbeddingContext, private readonly timeoutMs: number) {}

  static async load(opts: LlamaEmbedderOptions): Promise<LlamaEmbedder> {
    const threads = opts.maxThreads || Math.max(1, availableParallelism() - 1)
    const llama = await sharedLlama(false, threads)
    const model = await llama.loadModel({ modelPath: opts.modelPath, gpuLayers: 0 })
    try {
      const ctx = await model.createEmbeddingContext({ contextSize: Math.min(512, model.trainContextSize), threads })
      const name = opts.modelPath.split('/').pop() ?? opts.modelPath
      return new LlamaEmbedder(name, model.embeddingVectorSize, model, ctx, opts.timeoutMs)
    } catch (err) {
      await model.dispose()
      throw err
    }
  }

  embed(text: string): Promise<Float32Array> {
    const run = this.chain.then(async () => {
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(Object.assign(new Error(`embedding took over ${this.timeoutMs} ms`), { code: 'timeout' })), this.timeoutMs) })
      try {
        const e = await Promise.race([this.ctx.getEmbeddingFor(text), timeout])
        const v = Float32Array.from(e.vector)
        let n = 0
        for (const x of v) n += x * x
        n = Math.sqrt(n)
        if (!(n > 0)) throw Object.assign(new Error('embedding model returned a zero vector'), { code: 'bad_vector' })
        for (let i = 0; i < v.length; i++) v[i]! /= n
        return v
      } finally { clearTimeout(timer) }
    })
    this.chain = run.catch(() => undefined)
    return run
  }

  async close(): Promise<void> {
    await this.chain
    await this.ctx.dispose()
    await this.model.dispose()
  }
}
