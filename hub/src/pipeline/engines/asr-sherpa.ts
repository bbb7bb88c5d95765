// Offline (whole-utterance) ASR with sherpa-onnx. The model directory is an unpacked
// sherpa-onnx release; its kind is told by file names (an `.int8.onnx` is preferred when
// both precisions are present):
//   transducer  *encoder*.onnx, *decoder*.onnx, *joiner*.onnx, *tokens.txt   (zipformer, …)
//   whisper     *encoder*.onnx, *decoder*.onnx, *tokens.txt                   (no joiner)
//   sense-voice model*.onnx, tokens.txt, directory name contains "sense-voice"/"sensevoice"
//   paraformer  model*.onnx, tokens.txt                                       (any other dir)
// Audio is buffered until finish(); decoding runs in a worker (see @mirrormesh/speech sherpa-host.ts).
import { existsSync, readdirSync, statSync } from 'node:fs'
import path from 'node:path'
import type { Logger } from '@mirrormesh/broker'
import { EngineError, type AsrEngine, type AsrSession, type EngineHealth, type Transcript } from '@mirrormesh/speech'
import { abortReason, raceAbort } from '@mirrormesh/speech'
import { probeSherpa, SherpaWorker } from '@mirrormesh/speech'

export interface SherpaAsrOptions {
  modelDir: string
  numThreads: number
  /** onnxruntime execution provider: 'cpu', 'cuda', … */
  provider: string
  log: Logger
}

/** Longest utterance kept (30 s); later audio is dropped. */
const MAX_SAMPLES = 16_000 * 30

export class SherpaAsr implements AsrEngine {
  readonly name = 'sherpa'

  private constructor(private readonly worker: SherpaWorker, readonly kind: string, private readonly log: Logger) {}

  static async load(opts: SherpaAsrOptions): Promise<SherpaAsr> {
    const { kind, modelConfig } = asrModelConfig(opts.modelDir)
    const config = {
      featConfig: { sampleRate: 16_000, featureDim: 80 },
      modelConfig: { ...modelConfig, numThreads: opts.numThreads, provider: opts.provider, debug: 0 },
      decodingMethod: 'greedy_search',
    }
    const started = performance.now()
    await probeSherpa('asr', config)
    const worker = await SherpaWorker.start('asr', config)
    opts.log.info({ engine: 'sherpa', kind, modelDir: opts.modelDir, ms: Math.round(performance.now() - started) }, 'asr model loaded')
    return new SherpaAsr(worker, kind, opts.log)
  }

  health(): EngineHealth {
    return this.worker.alive ? 'ok' : 'down'
  }

  get downReason(): string | undefined {
    return this.worker.alive ? undefined : 'crashed'
  }

  start(signal: AbortSignal): AsrSession {
    const chunks: Int16Array[] = []
    let samples = 0
    return {
      write: (pcm) => {
        if (samples + pcm.length > MAX_SAMPLES) return
        chunks.push(pcm.slice())
        samples += pcm.length
      },
      finish: async (): Promise<Transcript> => {
        if (signal.aborted) throw abortReason(signal)
        const f = new Float32Array(samples)
        let o = 0
        for (const c of chunks) for (let i = 0; i < c.length; i++) f[o++] = c[i]! / 32768
        const started = performance.now()
        // The decode itself cannot be interrupted; an abort only stops waiting for it.
        const reply = await raceAbort(this.worker.run({ samples: f }, [f.buffer]), signal)
        if (!reply.ok) throw new EngineError('failed', `sherpa asr: ${reply.error}`, true)
        this.log.debug({ engine: this.name, ms: Math.round(performance.now() - started), audioMs: samples / 16 }, 'asr decoded')
        return { text: (reply.text ?? '').trim() }
      },
    }
  }

  async close(): Promise<void> {
    await this.worker.close()
  }
}

/** Picks the model files from `dir`; EngineError('model_missing') when they are not all there. */
export function asrModelConfig(dir: string): { kind: string; modelConfig: Record<string, unknown> } {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new EngineError('model_missing', `ASR model directory not found: ${dir}`)
  const files = readdirSync(dir)
  const pick = (re: RegExp): string | undefined => {
    const found = files.filter((f) => re.test(f)).sort((a, b) => Number(b.includes('.int8.')) - Number(a.includes('.int8.')) || a.localeCompare(b))
    return found[0] && path.join(dir, found[0])
  }
  const tokens = pick(/tokens\.txt$/)
  const encoder = pick(/encoder.*\.onnx$/)
  const decoder = pick(/decoder.*\.onnx$/)
  const joiner = pick(/joiner.*\.onnx$/)
  const model = pick(/^model.*\.onnx$/)
  const missing = (what: string) => new EngineError('model_missing', `no ${what} in ASR model directory ${dir}`)
  if (!tokens) throw missing('tokens.txt')
  if (joiner) {
    if (!encoder || !decoder) throw missing('encoder/decoder .onnx for the transducer')
    return { kind: 'transducer', modelConfig: { transducer: { encoder, decoder, joiner }, tokens } }
  }
  if (encoder && decoder) return { kind: 'whisper', modelConfig: { whisper: { encoder, decoder, language: 'en', task: 'transcribe' }, tokens } }
  if (!model) throw missing('model .onnx')
  if (/sense-?voice/i.test(path.basename(dir))) {
    return { kind: 'sense-voice', modelConfig: { senseVoice: { model, language: 'auto', useInverseTextNormalization: 1 }, tokens } }
  }
  return { kind: 'paraformer', modelConfig: { paraformer: { model }, tokens } }
}
