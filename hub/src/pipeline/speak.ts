// Speak: sentences → spoken_text, then paced, numbered audio_out frames; reply_end is
// passed on once the end frame has gone out. When every TTS engine fails on a sentence it
// is shown as text only (the step to `text` is counted). When the turn aborts (barge-in,
// cancel, timeout, an error upstream) the queued sentences are dropped, no more audio is
// sent, and a node that has heard something gets a cancel frame.
import type { FallbackChain, TtsEngine } from '@mirrormesh/speech'
import type { Frame, Sink, Stage, StageContext } from './frames.js'
import { Speaker, type SpeakerOptions } from './speaker.js'

export class SpeakStage implements Stage {
  constructor(private readonly tts: FallbackChain<TtsEngine>, private readonly opts: SpeakerOptions) {}

  async run(input: AsyncIterable<Frame>, out: Sink, ctx: StageContext): Promise<void> {
    const { signal } = ctx
    const speaker = new Speaker(ctx.turnId, out, this.tts, this.opts, signal)
    try {
      for await (const f of input) {
        if (signal.aborted) {
          if (f.type === 'sentence' || f.type === 'reply_end') continue // dropped on interrupt
          out(f)
          continue
        }
        if (f.type === 'sentence') {
          ctx.mark('firstSentence')
          out({ type: 'spoken_text', text: f.text })
          if (!(await speaker.say(f.text))) {
            this.tts.step(this.tts.engines.at(-1)?.name ?? 'none', 'text', 'all_failed')
            out({ type: 'text_only', text: f.text })
          }
        } else if (f.type === 'reply_end') {
          await speaker.finish()
          if (!signal.aborted) out(f)
        } else {
          out(f)
        }
      }
    } catch (err) {
      if (!signal.aborted) ctx.error('speak', err)
    }
    // Stopped part-way: tell the node to stop playing what it has.
    if (signal.aborted && speaker.framesSent > 0 && !speaker.ended) speaker.cancel()
  }
}
