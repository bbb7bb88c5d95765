// Turns reply sentences into paced audio/out frames. Frames go out at most `leadMs`
// ahead of real time, so a barge-in still has frames left to not send.
import { AudioFlags, encodeAudioFrame } from '@mirrormesh/broker'
import type { FallbackChain } from '@mirrormesh/speech'
import type { Sink } from './frames.js'
import { sleep } from './queue.js'
import type { TtsEngine } from '@mirrormesh/speech'

export interface SpeakerOptions {
  /** Samples per audio/out frame (320 = 20 ms at 16 kHz). */
  frameSamples: number
  /** How far ahead of real time frames may be sent. */
  leadMs: number
}

export const defaultSpeakerOptions: SpeakerOptions = { frameSamples: 320, leadMs: 300 }

export class Speaker {
  seq = 0
  framesSent = 0
  /** The end frame has gone out. */
  ended = false
  firstFrameAt: number | undefined
  lastFrameAt: number | undefined
  ttsEngine: string | undefined
  ttsFirstChunkMs: number | undefined
  private startedAt = 0
  private pending = new Int16Array(0)

  constructor(
    private readonly turnId: number,
    /** Gets `audio_out` frames and a `tts_started` frame per sentence. */
    private readonly out: Sink,
    private readonly tts: FallbackChain<TtsEngine>,
    private readonly opts: SpeakerOptions,
    private readonly signal: AbortSignal,
  ) {}

  /** Speak one sentence; returns false when no TTS engine could (caller falls back to text). */
  async say(text: string): Promise<boolean> {
    const started = Date.now()
    try {
      await this.tts.run(async (engine) => {
        let got = false
        for await (const chunk of engine.synthesize(text, this.signal)) {
          if (!got) {
            got = true
            this.ttsEngine = engine.name
            this.ttsFirstChunkMs ??= Date.now() - started
            this.out({ type: 'tts_started', engine: engine.name, firstChunkMs: Date.now() - started })
          }
          await this.push(chunk)
        }
        if (!got) throw new Error(`${engine.name} produced no audio`)
      }, this.signal)
      return true
    } catch (err) {
      if (this.signal.aborted) throw err
      return false
    }
  }

  /** Send what is buffered and the end frame. */
  async finish(): Promise<void> {
    if (this.pending.length) await this.frame(this.pending, 0)
    this.pending = new Int16Array(0)
    if (this.framesSent > 0) {
      this.sendFrame(new Int16Array(0), AudioFlags.end)
      this.ended = true
    }
  }

  /** Tell the node to stop playing this turn. */
  cancel(): void {
    this.sendFrame(new Int16Array(0), AudioFlags.cancel)
  }

  private async push(chunk: Int16Array): Promise<void> {
    const merged = new Int16Array(this.pending.length + chunk.length)
    merged.set(this.pending)
    merged.set(chunk, this.pending.length)
    let off = 0
    for (; off + this.opts.frameSamples <= merged.length; off += this.opts.frameSamples) {
      await this.frame(merged.subarray(off, off + this.opts.frameSamples), 0)
    }
    this.pending = merged.slice(off)
  }

  private async frame(samples: Int16Array, flags: number): Promise<void> {
    if (this.framesSent === 0) this.startedAt = Date.now()
    const audioMs = (this.framesSent * this.opts.frameSamples) / 16
    const wait = this.startedAt + audioMs - this.opts.leadMs - Date.now()
    if (wait > 0) await sleep(wait, this.signal)
    if (this.signal.aborted) throw this.signal.reason
    this.sendFrame(samples, flags)
  }

  private sendFrame(samples: Int16Array, flags: number): void {
    if (this.framesSent === 0) flags |= AudioFlags.start
    const seq = this.seq++
    this.out({ type: 'audio_out', seq, flags, samples: samples.length, payload: encodeAudioFrame({ flags, turnId: this.turnId, seq, samples }) })
    const now = Date.now()
    this.firstFrameAt ??= now
    this.lastFrameAt = now
    this.framesSent++
  }
}
