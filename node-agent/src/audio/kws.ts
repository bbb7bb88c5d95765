// Wake word through sherpa-onnx's keyword spotter: a small streaming transducer (e.g.
// sherpa-onnx-kws-zipformer-gigaspeech-3.3M) decoding only the phrases in keywords.txt,
// so the keyword is any phrase the user writes, no training. The model is probed in a
// child process first: a wrong one aborts the process that loads it.
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { probeInChild, sherpaPath } from '@mirrormesh/speech'
import { EngineError } from '@mirrormesh/speech'
import type { WakeDetector } from './listener.js'

export interface KwsOptions {
  /** Holds encoder*.onnx, decoder*.onnx, joiner*.onnx and tokens.txt (a sherpa-onnx KWS release). */
  modelDir: string
  /** Keyword lines in the model's tokens (sherpa's text2token output); default modelDir/keywords.txt. */
  keywordsFile?: string
  /** sherpa keywords_threshold: lower fires more easily (default 0.25). */
  threshold?: number
  /** sherpa keywords_score: boost for keyword tokens (default 1.0). */
  score?: number
  numThreads?: number
}

export interface KwsFiles { encoder: string; decoder: string; joiner: string; tokens: string; keywords: string }

/** Finds the model files; throws one EngineError('model_missing') listing everything absent. */
export function kwsFiles(opts: KwsOptions): KwsFiles {
  const dir = opts.modelDir
  if (!existsSync(dir)) throw new EngineError('model_missing', `KWS_MODEL_DIR ${dir} does not exist`)
  const names = readdirSync(dir)
  // The releases ship fp32 and int8 files side by side; int8 is the one a Pi can afford.
  const pick = (part: string): string | undefined => {
    const found = names.filter((n) => n.startsWith(part) && n.endsWith('.onnx')).sort()
    const chosen = found.find((n) => n.includes('int8')) ?? found[0]
    return chosen && path.join(dir, chosen)
  }
  const files = {
    encoder: pick('encoder'),
    decoder: pick('decoder'),
    joiner: pick('joiner'),
    tokens: path.join(dir, 'tokens.txt'),
    keywords: opts.keywordsFile ?? path.join(dir, 'keywords.txt'),
  }
  const missing = Object.entries(files).filter(([, f]) => !f || !existsSync(f)).map(([k, f]) => (f ? f : `${k}*.onnx in ${dir}`))
  if (missing.length) throw new EngineError('model_missing', `keyword spotter files missing: ${missing.join(', ')}`)
  const keywords = readFileSync(files.keywords, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))
  if (!keywords.length) throw new EngineError('model_missing', `${files.keywords} lists no keywords`)
  return files as KwsFiles
}

function spotterConfig(files: KwsFiles, opts: KwsOptions): object {
  return {
    featConfig: { sampleRate: 16000, featureDim: 80 },
    modelConfig: {
      transducer: { encoder: files.encoder, decoder: files.decoder, joiner: files.joiner },
      tokens: files.tokens,
      numThreads: opts.numThreads ?? 1,
      provider: 'cpu',
      debug: 0,
    },
    maxActivePaths: 4,
    numTrailingBlanks: 1,
    keywordsScore: opts.score ?? 1.0,
    keywordsThreshold: opts.threshold ?? 0.25,
    keywordsFile: files.keywords,
  }
}

// Loads the spotter and decodes half a second of silence: what the real load will do first.
const PROBE_JS = `
const sherpa = require(SHERPA_PATH)
const kws = new sherpa.KeywordSpotter(JSON.parse(process.argv[1]))
const stream = kws.createStream()
stream.acceptWaveform({ samples: new Float32Array(8000), sampleRate: 16000 })
while (kws.isReady(stream)) { kws.decode(stream); kws.getResult(stream) }
process.stdout.write('ok')
`

interface Spotter {
  createStream(): SpotterStream
  isReady(s: SpotterStream): boolean
  decode(s: SpotterStream): void
  reset(s: SpotterStream): void
  getResult(s: SpotterStream): { keyword: string }
}
interface SpotterStream { acceptWaveform(w: { samples: Float32Array; sampleRate: number }): void }

export class KeywordSpotterWake implements WakeDetector {
  lastScore = 0
  /** The phrase of the latest detection (keywords.txt's @label or its tokens). */
  lastKeyword = ''
  private stream: SpotterStream

  private constructor(private readonly kws: Spotter) {
    this.stream = kws.createStream()
  }

  /** Checks the files and loads the model in a child process; resolves with the config that loaded. */
  static async probe(opts: KwsOptions): Promise<object> {
    const config = spotterConfig(kwsFiles(opts), opts)
    await probeInChild(`keyword spotter model in ${opts.modelDir}`, PROBE_JS, [JSON.stringify(config)])
    return config
  }

  static async load(opts: KwsOptions): Promise<KeywordSpotterWake> {
    const config = await KeywordSpotterWake.probe(opts)
    const sherpa = createRequire(import.meta.url)(sherpaPath()) as { KeywordSpotter: new (c: object) => Spotter }
    return new KeywordSpotterWake(new sherpa.KeywordSpotter(config))
  }

  // Decoding is synchronous and small (a 3 M-parameter model: ~1 ms per 40 ms frame on one core).
  push(pcm: Int16Array): Promise<boolean> {
    const samples = new Float32Array(pcm.length)
    for (let i = 0; i < pcm.length; i++) samples[i] = pcm[i]! / 32768
    this.stream.acceptWaveform({ samples, sampleRate: 16000 })
    let heard = false
    this.lastScore = 0
    while (this.kws.isReady(this.stream)) {
      this.kws.decode(this.stream)
      const r = this.kws.getResult(this.stream)
      if (r.keyword) {
        heard = true
        this.lastScore = 1
        this.lastKeyword = r.keyword
        this.kws.reset(this.stream) // sherpa requires a reset after each detection
      }
    }
    return Promise.resolve(heard)
  }

  reset(): void {
    this.stream = this.kws.createStream()
  }
}
