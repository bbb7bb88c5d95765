// Listen: audio_in frames → end_of_speech → transcript. The first ASR engine decodes
// while the node still streams; the VAD (or the node's end flag, or the utterance limit)
// ends the utterance. If that engine fails, the next ones get the buffered audio and each
// step is counted. Every engine failing gives an empty transcript, never an exception.
//
// Early end of turn (README "End of turn"): while pocketsphinx streams, the grammar recogniser
// the offline mode uses (@mirrormesh/speech grammar-recognizer.ts) probes at each short pause;
// a whole, confident phrase followed by EARLY_END_SILENCE_MS of quiet ends the utterance
// there, as the node's end flag or the VAD would. The transcript still comes from the
// streaming session's finish(): the same decoder on the same segment, however the turn ends.
import type { AsrEngine, AsrSession, FallbackChain, OfflineRecognizer, VadEngine } from '@mirrormesh/speech'
import { reasonOf } from '@mirrormesh/speech'
import type { Histogram } from 'prom-client'
import type { Frame, Sink, Stage, StageContext } from './frames.js'
import type { AsyncQueue } from './queue.js'

export interface ListenOptions {
  /** Longest utterance accepted; also ends a turn whose node stopped sending. */
  maxUtteranceMs: number
}

/** The early end of turn: the detector and the skills' veto (a longer phrase meaning something else). */
export interface EarlyEnd {
  recognizer: OfflineRecognizer
  answersEarly(phrase: string): boolean
}

/** Per turn: audio heard before it that belongs to it (speech resumed after an early end), and who hears of an early end. */
export interface ListenHooks {
  prefix?: Int16Array[]
  /** The utterance was ended early at `at` on `heard`; `audio` is the whole utterance. */
  onEarlyEnd?(e: { at: number; heard: string; audio: Int16Array[] }): void
}

export const defaultListenOptions: ListenOptions = { maxUtteranceMs: 15_000 }

/** A VAD session may answer now or (run off the event loop) later. */
const settle = async <T>(v: T | Promise<T>): Promise<T> => v

export class ListenStage implements Stage {
  constructor(
    private readonly vad: VadEngine | undefined,
    private readonly asr: FallbackChain<AsrEngine>,
    private readonly opts: ListenOptions,
    private readonly metrics: { stage: Histogram<'stage' | 'engine'> },
    private readonly early?: EarlyEnd,
  ) {}

  /** `input` is the turn's own queue: listen ends it once the utterance is over. */
  async run(input: AsyncQueue<Frame>, out: Sink, ctx: StageContext, hooks: ListenHooks = {}): Promise<void> {
    const { signal } = ctx
    const asrList = this.asr.candidates()
    const buffered: Int16Array[] = []
    let session: AsrSession | undefined
    let firstErr: unknown
    try {
      session = asrList[0]?.start(signal)
    } catch (err) {
      firstErr = err
    }
    let eos: number | undefined
    let received = 0
    // Only on the grammar decoder: its phrases are what the early end judges.
    let early: { at: number; heard: string } | undefined
    const detector = this.early && asrList[0]?.name === 'pocketsphinx' && session
      ? this.early.recognizer.start(signal, {
        prefix: hooks.prefix,
        // The audio so far did not convince the second opinion: the final decode will likely
        // not either, so its open-vocabulary decode starts now instead of after the end.
        onProbe: (r) => { if (r.trusted === false) session?.expectUntrusted?.() },
        onEndpoint: (r) => {
          if (input.ended || !this.early!.answersEarly(r.text)) return false
          early = { at: Date.now(), heard: r.text }
          eos ??= early.at
          input.end()
          return true
        },
      })
      : undefined
    for (const pcm of hooks.prefix ?? []) {
      buffered.push(pcm)
      received += pcm.length
      try { session?.write(pcm) } catch (err) { firstErr = err; session = undefined }
    }
    const limit = setTimeout(() => { eos ??= Date.now(); input.end() }, this.opts.maxUtteranceMs)
    // A worker-backed VAD decides off this thread: end the input the moment it finds the end of speech.
    const vad = this.vad?.start()
    void vad?.ended?.then(() => { eos ??= Date.now(); input.end() })
    try {
      for await (const f of input) {
        if (f.type === 'input_end') {
          eos ??= f.at
          break
        }
        if (f.type !== 'audio_in') { out(f); continue }
        buffered.push(f.pcm)
        received += f.pcm.length
        if (session) {
          try { session.write(f.pcm) } catch (err) { firstErr = err; session = undefined }
        }
        detector?.write(f.pcm)
        if (early) break
        if (vad && (await settle(vad.push(f.pcm)))) break
        if (received > this.opts.maxUtteranceMs * 16) break
      }
    } catch (err) {
      ctx.error('listen', err)
      return
    } finally {
      clearTimeout(limit)
      vad?.release?.() // frees a worker VAD's native state now, not at garbage collection
      input.end() // frames after this are dropped as `after_end`
      detector?.kill()
    }
    eos ??= Date.now()
    if (signal.aborted) return
    if (early) hooks.onEarlyEnd?.({ ...early, audio: buffered })
    out({ type: 'end_of_speech', at: eos })

    // ASR: the streaming session first, then the others on the buffered audio.
    for (let i = 0; i < asrList.length; i++) {
      const engine = asrList[i]!
      try {
        let s: AsrSession
        if (i === 0) {
          if (!session) throw firstErr
          s = session
        } else {
          s = engine.start(signal)
          for (const pcm of buffered) s.write(pcm)
        }
        const { text, rejected } = await s.finish()
        const at = Date.now()
        this.metrics.stage.observe({ stage: 'asr', engine: engine.name }, (at - eos) / 1000)
        // A grammar result the second opinion did not trust: its open transcript (if any) is never a skill.
        out({ type: 'transcript', text: text.trim(), engine: engine.name, at, ...(rejected ? { open: true } : {}) })
        return
      } catch (err) {
        if (signal.aborted) return
        this.asr.step(engine.name, asrList[i + 1]?.name ?? 'none', reasonOf(err), err)
      }
    }
    out({ type: 'transcript', text: '', engine: 'none', at: Date.now() })
  }
}
