// The memory stage, between listen and reply: it sees each transcript first. A memory intent
// ("remember that …", "where are my …", "forget that") is answered here as a skill and the
// transcript is marked answered; any other turn gets the relevant memories attached for the
// LLM's prompt (only when an LLM is configured: nothing else reads them). Every transcript is
// then stored under the turn's memory key, after the reply is on its way. A memory failure is
// counted and logged, and the turn goes on without memory.
import type { Frame, ReplyContext, Sink, Stage, TranscriptFrame } from '../pipeline/frames.js'
import { matchMemoryIntent, secondPerson } from './intents.js'
import { roomKey } from './keys.js'
import type { Memory } from './service.js'

export const memoryPhrases = {
  remembered: (fact: string) => `Okay, I'll remember that ${fact}.`,
  recalled: (fact: string) => `You told me ${fact}.`,
  unknown: (about: string) => `I don't remember anything about ${about}.`,
  forgotten: (fact: string) => `Okay, I've forgotten that ${fact}.`,
  nothingToForget: "There's nothing like that for me to forget.",
}

type Decision = { answer: { skill: string; text: string } } | { memory: string[] } | undefined

export class MemoryStage implements Stage<ReplyContext> {
  constructor(private readonly memory: Memory, private readonly llmConfigured: () => boolean, private readonly failed: (op: string, err: unknown) => void) {}

  async run(input: AsyncIterable<Frame>, out: Sink, ctx: ReplyContext): Promise<void> {
    for await (const f of input) {
      if (f.type !== 'transcript' || !f.text || ctx.signal.aborted) { out(f); continue }
      const key = ctx.memoryKey ?? roomKey(ctx.room, ctx.nodeId)
      let d: Decision
      try {
        d = await this.decide(f, key)
      } catch (err) {
        this.failed('recall', err)
        d = undefined
      }
      if (d && 'answer' in d) {
        out({ ...f, answered: true })
        out({ type: 'reply_start', kind: 'skill', skill: d.answer.skill })
        out({ type: 'sentence', text: d.answer.text })
        out({ type: 'reply_end', kind: 'skill' })
      } else {
        out(d?.memory.length ? { ...f, memory: d.memory } : f)
      }
      this.memory.recordTurn(key, f.text)
    }
  }

  private async decide(f: TranscriptFrame, key: string): Promise<Decision> {
    const intent = matchMemoryIntent(f.text)
    if (intent?.type === 'remember') {
      await this.memory.remember(key, intent.fact)
      return { answer: { skill: 'memory.remember', text: memoryPhrases.remembered(secondPerson(intent.fact)) } }
    }
    if (intent?.type === 'forget') {
      const gone = await this.memory.forget(key, intent.about)
      return { answer: { skill: 'memory.forget', text: gone ? memoryPhrases.forgotten(secondPerson(gone.text)) : memoryPhrases.nothingToForget } }
    }
    if (intent?.type === 'recall') {
      const hits = await this.memory.recall(key, intent.about)
      const top = hits[0]
      if (top && this.memory.isClear(hits)) return { answer: { skill: 'memory.recall', text: memoryPhrases.recalled(secondPerson(top.text)) } }
      // Something, but not clearly it: the LLM judges, with the candidates in its prompt.
      if (hits.length && this.llmConfigured()) return { memory: await this.memory.context(key, f.text) }
      return { answer: { skill: 'memory.recall', text: memoryPhrases.unknown(secondPerson(intent.about)) } }
    }
    if (!this.llmConfigured()) return undefined
    return { memory: await this.memory.context(key, f.text) }
  }
}
