// Local LLM through node-llama-cpp (llama.cpp; bad GGUF files fail with an error, not a crash).
// One context and one sequence; generations are serialized (on CPU parallel sequences only
// split the same cores). Each turn gets a fresh chat session on the shared sequence, so turns
// never accumulate history while the system prompt's KV cache is reused. After 3 consecutive
// failures the engine goes 'down' and reloads the model in the background with backoff.
import { existsSync } from 'node:fs'
import { getLlama, LlamaChatSession, LlamaLogLevel, type Llama, type LlamaContext, type LlamaContextSequence, type LlamaModel } from 'node-llama-cpp'
import { Backoff, type BackoffOptions, type Logger } from '@mirrormesh/broker'
import { EngineError, type EngineHealth, type LlmEngine, type LlmRequest } from '@mirrormesh/speech'
import { abortReason } from '@mirrormesh/speech'

export interface LlamaLlmOptions {
  modelPath: string
  maxThreads: number
  /** 0 = CPU only; 'auto' (default) offloads what fits when a GPU backend is available. */
  gpuLayers?: number | 'auto'
  /** Tokens; capped at the model's training context (default 2048). */
  contextSize?: number
  /** Limit for one generation, from when it starts running. */
  timeoutMs: number
  /** Default for requests without maxTokens (256). */
  maxTokens?: number
  reloadBackoff?: BackoffOptions
  log: Logger
}

const MAX_FAILURES = 3
// Chat-template tokens around system and user text ([INST] <<SYS>> … and the like).
const TEMPLATE_OVERHEAD = 64

// One Llama (native binding) per process: a second instance cannot take over llama.cpp's
// log callback, so its errors would bypass our logger. Engines subscribe to its log lines.
const llamas = new Map<string, Promise<Llama>>()
const logSinks = new Set<(level: LlamaLogLevel, message: string) => void>()

export function sharedLlama(gpu: boolean, maxThreads: number): Promise<Llama> {
  const key = gpu ? 'auto' : 'cpu'
  let p = llamas.get(key)
  if (!p) {
    p = getLlama({
      gpu: gpu ? 'auto' : false,
      build: 'never',
      maxThreads,
      logLevel: LlamaLogLevel.warn,
      logger: (level, message) => logSinks.forEach((sink) => sink(level, message)),
    })
    p.catch(() => llamas.delete(key))
    llamas.set(key, p)
  }
  return p
}

interface Loaded { model: LlamaModel; context: LlamaContext; sequence: LlamaContextSequence }

export class LlamaLlm implements LlmEngine {
  readonly name = 'llama'
  private reloadCount = 0
  private llama: Llama | undefined
  private loaded: Loaded | undefined
  /** Short code while down (also the fallback metric label); `detail` says more. */
  private reason: string | undefined = 'loading'
  private detail = 'model not loaded yet'
  private failures = 0
  private queue: Promise<unknown> = Promise.resolve()
  private readonly backoff: Backoff
  private retryTimer: NodeJS.Timeout | undefined
  private nativeError = ''
  private closed = false

  constructor(private readonly opts: LlamaLlmOptions) {
    this.backoff = new Backoff(opts.reloadBackoff ?? { initialMs: 1000, maxMs: 60_000, minMs: 500 })
    logSinks.add(this.onNativeLog)
  }

  /** Loads in the background; the promise settles (never rejects) once loaded or failed. */
  start(): Promise<void> {
    return this.exclusive(() => this.load())
  }

  /** Background reloads started (after repeated failures or a failed load). */
  get reloads(): number {
    return this.reloadCount
  }

  health(): EngineHealth {
    if (!this.loaded || this.reason) return 'down'
    return this.failures > 0 ? 'degraded' : 'ok'
  }

  /** Why health() is 'down' as a short code: loading, model_missing, load_failed, failing. */
  get downReason(): string | undefined {
    return this.reason
  }

  /** Human-readable cause while down. */
  get downDetail(): string | undefined {
    return this.reason ? this.detail : undefined
  }

  /** GPU memory as llama.cpp reports it; undefined on CPU-only builds. */
  async vram(): Promise<{ usedBytes: number; totalBytes: number } | undefined> {
    const llama = this.llama
    if (!llama || llama.gpu === false) return undefined
    const s = await llama.getVramState()
    return { usedBytes: s.used, totalBytes: s.total }
  }

  async generate(req: LlmRequest): Promise<string> {
    if (req.signal.aborted) throw abortReason(req.signal)
    if (this.reason) throw new EngineError('not_ready', `llama: ${this.detail}`, true)
    return this.exclusive(() => this.run(req))
  }

  async close(): Promise<void> {
    this.closed = true
    clearTimeout(this.retryTimer)
    logSinks.delete(this.onNativeLog)
    await this.exclusive(() => this.unload())
  }

  private readonly onNativeLog = (level: LlamaLogLevel, message: string): void => {
    // The first error of a load names the cause; later ones just say "failed to load model".
    if ((level === LlamaLogLevel.error || level === LlamaLogLevel.fatal) && !this.nativeError) this.nativeError = message.trim()
    this.opts.log.debug({ engine: this.name, level, native: message.trim() }, 'llama.cpp log')
  }

  private async run(req: LlmRequest): Promise<string> {
    if (req.signal.aborted) throw abortReason(req.signal)
    const loaded = this.loaded
    if (!loaded || this.reason) throw new EngineError('not_ready', `llama: ${this.detail}`, true)
    const timeout = new AbortController()
    const timer = setTimeout(() => timeout.abort(), this.opts.timeoutMs)
    const signal = AbortSignal.any([req.signal, timeout.signal])
    const fit = this.fit(loaded, req)
    const session = new LlamaChatSession({ contextSequence: loaded.sequence, systemPrompt: fit.system, autoDisposeSequence: false })
    const started = performance.now()
    let tokens = 0
    try {
      const text = await session.prompt(fit.prompt, {
        maxTokens: fit.maxTokens,
        signal,
        stopOnAbortSignal: true,
        onTextChunk: (t) => {
          tokens++
          if (!signal.aborted) req.onText(t)
        },
      })
      if (req.signal.aborted) throw abortReason(req.signal)
      if (timeout.signal.aborted) throw new EngineError('timeout', `llama: no answer within ${this.opts.timeoutMs} ms`, true)
      this.failures = 0
      this.opts.log.debug({ engine: this.name, chunks: tokens, ms: Math.round(performance.now() - started) }, 'llm generated')
      return text
    } catch (e) {
      if (req.signal.aborted) throw abortReason(req.signal)
      // Our own timer may abort the prompt before it streams (node-llama-cpp then rejects
      // with an AbortError instead of resolving): that is a timeout, not a failure of the model.
      const err = e instanceof EngineError ? e
        : timeout.signal.aborted ? new EngineError('timeout', `llama: no answer within ${this.opts.timeoutMs} ms`, true)
          : new EngineError('failed', `llama: ${(e as Error).message}`, true)
      this.failed(err)
      throw err
    } finally {
      clearTimeout(timer)
      session.dispose({ disposeSequence: false })
    }
  }

  /** Keeps system + prompt + answer inside the context: trims the system prompt's tail, then the prompt's head. */
  private fit({ model, context }: Loaded, req: LlmRequest): { system: string; prompt: string; maxTokens: number } {
    const size = context.contextSize
    const maxTokens = Math.max(1, Math.min(req.maxTokens ?? this.opts.maxTokens ?? 256, Math.floor(size / 2)))
    let budget = size - maxTokens - TEMPLATE_OVERHEAD
    const sys = model.tokenize(req.system)
    const sysKeep = Math.min(sys.length, Math.floor(budget / 2))
    budget -= sysKeep
    const prompt = model.tokenize(req.prompt)
    return {
      system: sysKeep < sys.length ? model.detokenize(sys.slice(0, sysKeep)) : req.system,
      prompt: prompt.length > budget ? model.detokenize(prompt.slice(prompt.length - budget)) : req.prompt,
      maxTokens,
    }
  }

  private failed(err: EngineError): void {
    this.failures++
    this.opts.log.warn({ engine: this.name, failures: this.failures, reason: err.reason, err: err.message }, 'llm generation failed')
    if (this.failures < MAX_FAILURES) return
    this.reason = 'failing'
    this.detail = `${this.failures} consecutive failures, last: ${err.message}`
    this.scheduleReload()
  }

  private scheduleReload(): void {
    if (this.closed) return
    clearTimeout(this.retryTimer)
    const delay = this.backoff.next()
    this.retryTimer = setTimeout(() => {
      this.reloadCount++
      this.opts.log.info({ engine: this.name, reloads: this.reloadCount }, 'llm reloading model')
      void this.exclusive(() => this.load())
    }, delay)
  }

  private async load(): Promise<void> {
    if (this.closed) return
    const { modelPath, maxThreads, log } = this.opts
    const started = performance.now()
    await this.unload()
    try {
      if (!existsSync(modelPath)) throw new EngineError('model_missing', `model file not found: ${modelPath}`)
      const gpuLayers = this.opts.gpuLayers ?? 'auto'
      this.llama ??= await sharedLlama(gpuLayers !== 0, maxThreads)
      this.nativeError = ''
      const model = await this.llama.loadModel({ modelPath, gpuLayers })
      const contextSize = Math.min(this.opts.contextSize ?? 2048, model.trainContextSize)
      const context = await model.createContext({ contextSize, threads: maxThreads })
      this.loaded = { model, context, sequence: context.getSequence() }
      this.reason = undefined
      this.failures = 0
      this.backoff.reset()
      log.info({ engine: this.name, ms: Math.round(performance.now() - started), contextSize, gpu: this.llama.gpu }, 'llm model loaded')
    } catch (e) {
      // llama.cpp's log lines (the useful cause) arrive just after the rejection.
      if (!(e instanceof EngineError)) await new Promise((r) => setTimeout(r, 50))
      const detail = this.nativeError ? ` (${this.nativeError})` : ''
      this.reason = e instanceof EngineError ? e.reason : 'load_failed'
      this.detail = `load failed: ${(e as Error).message}${detail}`
      log.error({ engine: this.name, modelPath, reason: this.reason, err: this.detail }, 'llm model load failed')
      // A missing file will not appear by waiting; anything else may be transient (memory, GPU).
      if (!(e instanceof EngineError && e.reason === 'model_missing')) this.scheduleReload()
    }
  }

  private async unload(): Promise<void> {
    const l = this.loaded
    this.loaded = undefined
    if (!l) return
    await l.context.dispose().catch(() => {})
    await l.model.dispose().catch(() => {})
  }

  /** Runs `fn` after everything queued before it (generations and loads never overlap). */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(() => fn())
    this.queue = next.catch(() => {})
    return next
  }
}
