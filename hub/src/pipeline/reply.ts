// Reply: transcript → reply_start, sentences, reply_end. A skill answers when one matches;
// otherwise the LLM streams text through the sentence chunker, so TTS starts on the first
// sentence. Nothing heard → "didn't catch that"; no LLM, or one that fails before saying
// anything → the canned "unavailable" (the step is counted); one that fails later keeps
// what it said.
import type { FallbackChain, LlmEngine } from '@mirrormesh/speech'
import { reasonOf } from '@mirrormesh/speech'
import { SentenceChunker } from './chunker.js'
import type { Frame, ReplyContext, Sink, Stage } from './frames.js'
import type { SkillMatcher } from './skills.js'

export const phrasesSpoken = {
  didntCatch: "Sorry, I didn't catch that.",
  unavailable: 'Sorry, the assistant is unavailable right now. Please try again in a little while.',
  busy: "I'm busy, try again in a moment.",
  /** Out-of-skill speech with no LLM to answer it: honest, and never a skill. */
  cantAnswer: "Sorry, I can't answer that yet.",
}

export interface ReplyOptions {
  /** The LLM's system prompt; the node's room is added to it. */
  persona: string
  /** Most tokens one LLM reply may have. */
  llmMaxTokens: number
}

export const defaultReplyOptions: ReplyOptions = {
  persona: 'You are the voice of a smart mirror in a home. Answer in one or two short, friendly sentences.',
  llmMaxTokens: 96,
}

export class ReplyStage implements Stage<ReplyContext> {
  constructor(private readonly skills: SkillMatcher, private readonly llm: FallbackChain<LlmEngine>, private readonly opts: ReplyOptions) {}

  async run(input: AsyncIterable<Frame>, out: Sink, ctx: ReplyContext): Promise<void> {
    for await (const f of input) {
      out(f)
      if (f.type !== 'transcript' || ctx.signal.aborted || f.answered) continue
      try {
        await this.reply(f.text, out, ctx, f.memory, f.open === true)
      } catch (err) {
        ctx.error('reply', err)
      }
    }
  }

  private canned(out: Sink, kind: 'none' | 'unavailable', text: string): void {
    out({ type: 'reply_start', kind })
    out({ type: 'sentence', text })
    out({ type: 'reply_end', kind })
  }

  private async reply(transcript: string, out: Sink, ctx: ReplyContext, memory?: string[], open = false): Promise<void> {
    if (!transcript) return this.canned(out, 'none', phrasesSpoken.didntCatch)
    const match = open ? undefined : this.skills.match(transcript)
    if (match) {
      const r = match.skill.handle(match.slots, ctx.skillEnv())
      out({ type: 'reply_start', kind: 'skill', skill: match.skill.id })
      if (r.text) out({ type: 'sentence', text: r.text })
      out({ type: 'reply_end', kind: 'skill' })
      return
    }
    const llm = this.llm.candidates()[0]
    if (!llm) {
      this.llm.step(this.llm.engines[0]?.name ?? 'none', 'canned', 'unhealthy')
      return this.canned(out, 'unavailable', open ? phrasesSpoken.cantAnswer : phrasesSpoken.unavailable)
    }
    out({ type: 'reply_start', kind: 'llm', llm: llm.name })
    const chunker = new SentenceChunker()
    let said = 0
    const say = (sentences: string[]) => {
      for (const text of sentences) { said++; out({ type: 'sentence', text }) }
    }
    const system = `${this.opts.persona}${ctx.room ? ` You are in the ${ctx.room}.` : ''}${memory?.length ? `\nWhat you remember (use it only when it helps):\n${memory.join('\n')}` : ''}`
    try {
      await llm.generate({ prompt: transcript, system, signal: ctx.signal, maxTokens: this.opts.llmMaxTokens, onText: (text) => {
        if (ctx.signal.aborted) return
        ctx.mark('llmFirst')
        say(chunker.push(text))
      } })
    } catch (err) {
      if (ctx.signal.aborted) return
      this.llm.step(llm.name, 'canned', reasonOf(err), err)
      if (said === 0) {
        out({ type: 'sentence', text: phrasesSpoken.unavailable })
        out({ type: 'reply_end', kind: 'unavailable' })
      } else {
        out({ type: 'reply_end', kind: 'llm' })
      }
      return
    }
    if (ctx.signal.aborted) return
    say(chunker.flush())
    if (said === 0) out({ type: 'sentence', text: phrasesSpoken.didntCatch })
    out({ type: 'reply_end', kind: 'llm' })
  }
}
