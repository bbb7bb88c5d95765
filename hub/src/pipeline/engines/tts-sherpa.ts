// Neural TTS with sherpa-onnx OfflineTts. The model directory is an unpacked sherpa-onnx
// TTS release; its kind is told by file names:
//   kokoro      one *.onnx, voices.bin, tokens.txt, espeak-ng-data/
//   matcha      acoustic *.onnx + vocoder (vocos*.onnx, hifigan*.onnx or *vocoder*.onnx), tokens.txt
//   vits/piper  one *.onnx, tokens.txt, espeak-ng-data/ (piper) or lexicon.txt
// lexicon.txt and espeak-ng-data/ are passed along whenever present. Output is resampled
// to 16 kHz in the worker. Text is synthesized sentence by sentence so the first sentence
// plays while the next is generated; an abort drops the rest (a running sentence finishes
// in the worker and is discarded).
import { existsSync, readdirSync, statSync } from 'node:fs'
import path from 'node:path'
import type { Logger } from '@mirrormesh/broker'
import { EngineError, type EngineHealth, type TtsEngine } from '@mirrormesh/speech'
import { abortReason, raceAbort } from '@mirrormesh/speech'
import { probeSherpa, SherpaWorker } from '@mirrormesh/speech'

export interface SherpaTtsOptions {
  modelDir: string
  numThreads: number
  provider: string
  log: Logger
  /** Speaker id for multi-speaker models (default 0). */
  speakerId?: number
  /** Speech rate factor (default 1). */
  speed?: number
}

export class SherpaTts implements TtsEngine {
  readonly name = 'sherpa'

  private constructor(private readonly worker: SherpaWorker, readonly kind: string, private readonly opts: SherpaTtsOptions) {}

  static async load(opts: SherpaTtsOptions): Promise<SherpaTts> {
    const { kind, model } = ttsModelConfig(opts.modelDir)
    const config = { model: { ...model, numThreads: opts.numThreads, provider: opts.provider, debug: 0 }, maxNumSentences: 1 }
    const started = performance.now()
    await probeSherpa('tts', config)
    const worker = await SherpaWorker.start('tts', config)
    opts.log.info({ engine: 'sherpa', kind, modelDir: opts.modelDir, ms: Math.round(performance.now() - started) }, 'tts model loaded')
    return new SherpaTts(worker, kind, opts)
  }

  health(): EngineHealth {
    return this.worker.alive ? 'ok' : 'down'
  }

  get downReason(): string | undefined {
    return this.worker.alive ? undefined : 'crashed'
  }

  async *synthesize(text: string, signal: AbortSignal): AsyncIterable<Int16Array> {
    for (const sentence of sentences(text)) {
      if (signal.aborted) throw abortReason(signal)
      const job = this.worker.run({ text: sentence, sid: this.opts.speakerId ?? 0, speed: this.opts.speed ?? 1 })
      const reply = await raceAbort(job, signal)
      if (!reply.ok) throw new EngineError('failed', `sherpa tts: ${reply.error}`, true)
      if (reply.pcm && reply.pcm.length > 0) yield reply.pcm
    }
  }

  async close(): Promise<void> {
    await this.worker.close()
  }
}

/** Splits after . ! ? ; : followed by space; fragments under 20 characters join a neighbour. */
export function sentences(text: string): string[] {
  const parts = text.replace(/\s+/g, ' ').trim().split(/(?<=[.!?;:])\s+/)
  const out: string[] = []
  let carry = ''
  for (const p of parts) {
    carry = carry ? `${carry} ${p}` : p
    if (carry.length >= 20) {
      out.push(carry)
      carry = ''
    }
  }
  if (carry && out.length > 0) out[out.length - 1] += ` ${carry}`
  else if (carry) out.push(carry)
  return out
}

/** Picks the model files from `dir`; EngineError('model_missing') when they are not all there. */
export function ttsModelConfig(dir: string): { kind: string; model: Record<string, unknown> } {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new EngineError('model_missing', `TTS model directory not found: ${dir}`)
  const files = readdirSync(dir)
  const at = (f: string) => path.join(dir, f)
  const has = (f: string) => files.includes(f)
  const onnx = files.filter((f) => f.endsWith('.onnx')).sort()
  const vocoder = onnx.find((f) => /^(vocos|hifigan)|vocoder/.test(f))
  const acoustic = onnx.filter((f) => f !== vocoder)
  const missing = (what: string) => new EngineError('model_missing', `no ${what} in TTS model directory ${dir}`)
  if (!has('tokens.txt')) throw missing('tokens.txt')
  if (acoustic.length === 0) throw missing('model .onnx')
  const common = {
    tokens: at('tokens.txt'),
    dataDir: has('espeak-ng-data') ? at('espeak-ng-data') : '',
    lexicon: has('lexicon.txt') ? at('lexicon.txt') : '',
  }
  if (has('voices.bin')) return { kind: 'kokoro', model: { kokoro: { model: at(acoustic[0]!), voices: at('voices.bin'), ...common } } }
  if (vocoder) return { kind: 'matcha', model: { matcha: { acousticModel: at(acoustic[0]!), vocoder: at(vocoder), ...common } } }
  return { kind: 'vits', model: { vits: { model: at(acoustic[0]!), ...common } } }
}
