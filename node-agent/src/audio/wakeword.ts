// openWakeWord on onnxruntime-node, following the reference Python streaming pipeline
// (openwakeword/utils.py AudioFeatures): for every 1280 new samples (80 ms) the mel model
// runs on those samples plus 480 of overlap (int16-scaled floats) and gives 8 mel frames,
// normalised x/10+2; the embedding model turns the last 76 mel frames into one 96-d
// embedding; the keyword model scores the last 16 embeddings. ~1–3 ms per 80 ms on one core.
// The models (CC BY-NC-SA) are loaded from a directory, never bundled.
import { existsSync } from 'node:fs'
import path from 'node:path'
import * as ort from 'onnxruntime-node'

export const WAKE_CHUNK = 1280
const OVERLAP = 480
const MEL_BINS = 32
const MEL_WINDOW = 76

const EMBED = 96

export interface WakeWordOptions {
  /** Holds melspectrogram.onnx, embedding_model.onnx and the keyword model. */
  modelDir: string
  /** Keyword name ('hey_jarvis' → hey_jarvis_v0.1.onnx) or a model file name ending in .onnx. */
  keyword: string
  /** Score at or above which push() reports a detection (default 0.5). */
  threshold?: number
  /** After a detection, further ones are suppressed for this long (default 1500 ms of audio). */
  refractoryMs?: number
}

export interface WakeScore {
  score: number
  /** Audio position (ms since load/reset) of the end of the chunk the score belongs to. */
  atMs: number
}

export class WakeWord {
  readonly threshold: number
  /** The latest score and the highest since reset(), for logs and tests. */
  lastScore = 0
  maxScore = 0
  /** Scores in order, one per 80 ms chunk; kept only when `recordScores` is set. */
  scores: WakeScore[] | undefined
  private readonly raw = new Float32Array(WAKE_CHUNK + OVERLAP)
  private pending = new Int16Array(WAKE_CHUNK)
  private pendingLen = 0
  private mel: Float32Array[] = []
  private embeddings: Float32Array[] = []
  private chunks = 0
  private refractoryUntil = -1
  private readonly windowSize: number
  private queue: Promise<unknown> = Promise.resolve()

  private constructor(
    private readonly melModel: ort.InferenceSession,
    private readonly embedModel: ort.InferenceSession,
    private readonly kwModel: ort.InferenceSession,
    private readonly opts: WakeWordOptions,
    private readonly initialEmbeddings: Float32Array[],
  ) {
    this.threshold = opts.threshold ?? 0.5
    const meta = kwModel.inputMetadata as unknown as Array<{ shape?: unknown[] }> | Record<string, { shape?: unknown[] }>
    const m0 = Array.isArray(meta) ? meta[0] : meta[kwModel.inputNames[0]!]
    const dim = m0?.shape?.[1]
    this.windowSize = typeof dim === 'number' ? dim : 16
    this.resetState()
  }

  static keywordFile(keyword: string): string {
    return keyword.endsWith('.onnx') ? keyword : `${keyword}_v0.1.onnx`
  }

  static async load(opts: WakeWordOptions): Promise<WakeWord> {
    const files = ['melspectrogram.onnx', 'embedding_model.onnx', WakeWord.keywordFile(opts.keyword)].map((f) => path.join(opts.modelDir, f))
    const missing = files.filter((f) => !existsSync(f))
    if (missing.length) throw new Error(`wake word model missing: ${missing.join(', ')}`)
    const so: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all' }
    const [mel, emb, kw] = await Promise.all(files.map((f) => ort.InferenceSession.create(f, so)))
    // Like the reference, the embedding history starts from low noise, not from nothing.
    const w = new WakeWord(mel!, emb!, kw!, opts, [])
    const noise = new Int16Array(16_000 * 2)
    let seed = 12345
    for (let i = 0; i < noise.length; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0
      noise[i] = ((seed >>> 16) % 2000) - 1000
    }
    await w.push(noise)
    w.initialEmbeddings.push(...w.embeddings.map((e) => e.slice()))
    w.reset()
    return w
  }

  /** Forget all audio (call between sessions, e.g. after a detection was acted on). */
  reset(): void {
    this.resetState()
    this.maxScore = 0
    this.lastScore = 0
    if (this.scores) this.scores = []
  }

  private resetState(): void {
    this.raw.fill(0)
    this.pendingLen = 0
    this.mel = Array.from({ length: MEL_WINDOW }, () => new Float32Array(MEL_BINS).fill(1))
    this.embeddings = this.initialEmbeddings.length
      ? this.initialEmbeddings.slice(-this.windowSize).map((e) => e.slice())
      : Array.from({ length: this.windowSize }, () => new Float32Array(EMBED))
    this.chunks = 0
    this.refractoryUntil = -1
  }

  /**
   * Feed any number of samples (16 kHz mono PCM16). Resolves true when a chunk completed by
   * these samples scored at or above the threshold. Calls are serialised internally, so
   * callers may fire-and-forget in order.
   */
  push(pcm: Int16Array): Promise<boolean> {
    const run = this.queue.then(() => this.pushNow(pcm))
    this.queue = run.catch(() => undefined)
    return run
  }

  private async pushNow(pcm: Int16Array): Promise<boolean> {
    let detected = false
    let off = 0
    while (off < pcm.length) {
      const n = Math.min(WAKE_CHUNK - this.pendingLen, pcm.length - off)
      this.pending.set(pcm.subarray(off, off + n), this.pendingLen)
      this.pendingLen += n
      off += n
      if (this.pendingLen < WAKE_CHUNK) break
      this.pendingLen = 0
      if (await this.processChunk(this.pending)) detected = true
    }
    return detected
  }

  private async processChunk(chunk: Int16Array): Promise<boolean> {
    // Slide the raw buffer: keep the last 480 samples, append the chunk (int16-scaled floats).
    this.raw.copyWithin(0, WAKE_CHUNK)
    for (let i = 0; i < WAKE_CHUNK; i++) this.raw[OVERLAP + i] = chunk[i]!
    const melOut = await this.melModel.run({ [this.melModel.inputNames[0]!]: new ort.Tensor('float32', this.raw.slice(), [1, this.raw.length]) })
    const melData = melOut[this.melModel.outputNames[0]!]!.data as Float32Array
    const frames = melData.length / MEL_BINS
    for (let f = 0; f < frames; f++) {
      const row = new Float32Array(MEL_BINS)
      for (let b = 0; b < MEL_BINS; b++) row[b] = melData[f * MEL_BINS + b]! / 10 + 2
      this.mel.push(row)
    }
    if (this.mel.length > 970) this.mel.splice(0, this.mel.length - 970)
    const window = new Float32Array(MEL_WINDOW * MEL_BINS)
    const last = this.mel.slice(-MEL_WINDOW)
    for (let f = 0; f < MEL_WINDOW; f++) window.set(last[f]!, f * MEL_BINS)
    const embOut = await this.embedModel.run({ [this.embedModel.inputNames[0]!]: new ort.Tensor('float32', window, [1, MEL_WINDOW, MEL_BINS, 1]) })
    this.embeddings.push(new Float32Array(embOut[this.embedModel.outputNames[0]!]!.data as Float32Array))
    if (this.embeddings.length > this.windowSize) this.embeddings.splice(0, this.embeddings.length - this.windowSize)
    const feats = new Float32Array(this.windowSize * EMBED)
    this.embeddings.forEach((e, i) => feats.set(e, i * EMBED))
    const kwOut = await this.kwModel.run({ [this.kwModel.inputNames[0]!]: new ort.Tensor('float32', feats, [1, this.windowSize, EMBED]) })
    this.chunks++
    // The reference zeroes the first 5 predictions while the buffers fill.
    const score = this.chunks <= 5 ? 0 : (kwOut[this.kwModel.outputNames[0]!]!.data as Float32Array)[0]!
    const atMs = (this.chunks * WAKE_CHUNK) / 16
    this.lastScore = score
    if (score > this.maxScore) this.maxScore = score
    this.scores?.push({ score, atMs })

    if (score >= this.threshold && atMs >= this.refractoryUntil) {
      this.refractoryUntil = atMs + (this.opts.refractoryMs ?? 1500)
      return true
    }
    return false
  }

  async close(): Promise<void> {
    await Promise.all([this.melModel.release(), this.embedModel.release(), this.kwModel.release()])
  }
}
