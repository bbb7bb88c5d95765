// The turn orchestrator: routes audio/in frames to turns, admits turns, and runs each
// one: listen (VAD + streaming ASR) → skills or LLM (streamed, sentence-chunked) → TTS
// → paced audio/out frames. Barge-in aborts LLM and TTS and stops the frames.
import { AudioFlags, decodeAudioFrame, type EventBody, type HubEvent, type Logger, type NodeEventOf, type ReplyKind } from '@mirrormesh/broker'
import { AdmissionControl } from './admission.js'
import { SentenceChunker } from './chunker.js'
import { FallbackChain, reasonOf } from '@mirrormesh/speech'
import type { PipelineMetrics } from './metrics.js'
import { AsyncQueue } from './queue.js'
import type { SkillEnv, SkillMatcher } from './skills.js'
import { Speaker } from './speaker.js'
import type { AsrEngine, LlmEngine, TtsEngine, VadEngine } from '@mirrormesh/speech'

export interface TurnOptions {
  maxConcurrent: number
  queueMax: number
  /** Longest utterance accepted; also ends a turn whose node stopped sending. */
  maxUtteranceMs: number
  turnTimeoutMs: number
  persona: string
  llmMaxTokens: number
  frameSamples: number
  leadMs: number
}

export interface TurnIo {
  sendAudio(nodeId: string, frame: Buffer): void
  sendEvent(nodeId: string, event: EventBody<HubEvent>): void
  skillEnv(nodeId: string): SkillEnv
  room(nodeId: string): string | null
}

export interface TurnEngines {
  vad?: VadEngine
  asr: FallbackChain<AsrEngine>
  tts: FallbackChain<TtsEngine>
  llm: FallbackChain<LlmEngine>
}

export const phrasesSpoken = {
  didntCatch: "Sorry, I didn't catch that.",
  unavailable: 'Sorry, the assistant is unavailable right now. Please try again in a little while.',
  busy: "I'm busy, try again in a moment.",
}

type Kind = ReplyKind

class Turn {
  readonly ctl = new AbortController()
  readonly audio = new AsyncQueue<Int16Array>()
  readonly key: string
  expectedSeq = 0
  phase: 'queued' | 'listening' | 'thinking' | 'speaking' | 'done' | 'busy' = 'queued'
  readonly t: Record<string, number> = { start: Date.now() }
  bargeInAt: number | undefined
  /** The LLM failed before saying anything: the reply was the canned "unavailable". */
  llmFellBack = false
  constructor(readonly nodeId: string, readonly id: number) {
    this.key = `${nodeId}:${id}`
  }
}

export class TurnManager {
  private readonly nodes = new Map<string, { current?: Turn; cancelled: number[] }>()
  private readonly admission: AdmissionControl<Turn>
  private readonly idle = new Set<() => void>()
  draining = false

  constructor(private readonly engines: TurnEngines, private readonly skills: SkillMatcher, private readonly io: TurnIo,
    private readonly opts: TurnOptions, private readonly metrics: PipelineMetrics, private readonly log: Logger) {
    this.admission = new AdmissionControl(opts.maxConcurrent, opts.queueMax)
  }

  get active(): number { return this.admission.running }
  get queued(): number { return this.admission.queued }

  /** One audio/in message from a node. Never throws. */
  onAudio(nodeId: string, payload: Buffer): void {
    const f = decodeAudioFrame(payload)
    if (typeof f === 'string') return this.drop(f)
    const node = this.node(nodeId)
    let turn = node.current
    if (f.flags & (AudioFlags.bargeIn | AudioFlags.cancel)) {
      if (turn && turn.phase !== 'done' && (f.flags & AudioFlags.bargeIn || turn.id === f.turnId)) {
        if (f.flags & AudioFlags.bargeIn) turn.bargeInAt = Date.now()
        this.cancel(turn, f.flags & AudioFlags.bargeIn ? 'barge_in' : 'node_cancel')
      }
      // A control frame carries no audio and its own sequence number: done unless it also opens a turn.
      if (!(f.flags & AudioFlags.start)) return
    }
    if (f.flags & AudioFlags.start) {
      if (turn && turn.phase !== 'done' && turn.id !== f.turnId) this.cancel(turn, 'new_turn')
      if (!turn || turn.id !== f.turnId || turn.phase === 'done') turn = this.begin(nodeId, f.turnId)
    }
    if (!turn || turn.id !== f.turnId) return this.drop(node.cancelled.includes(f.turnId) ? 'cancelled_turn' : 'unknown_turn')
    if (turn.phase === 'busy' || turn.phase === 'done') return this.drop(turn.phase === 'busy' ? 'busy' : 'cancelled_turn')
    if (f.seq < turn.expectedSeq) return this.drop('reordered')
    if (f.seq > turn.expectedSeq) this.metrics.framesLost.inc(f.seq - turn.expectedSeq)
    turn.expectedSeq = f.seq + 1
    if (turn.audio.ended) return this.drop('after_end')
    if (f.samples.length) turn.audio.push(f.samples)
    if (f.flags & AudioFlags.end) {
      turn.t.eos ??= Date.now()
      turn.audio.end()
    }
  }

  /** The node's own report of TTFA (end of speech → first sample played). */
  onNodeTtfa(_nodeId: string, ev: NodeEventOf<'ttfa'>): void {
    if (ev.ms < 60_000) this.metrics.ttfa.observe({ side: 'node', kind: ev.kind }, ev.ms / 1000)
  }

  /** Resolves when no turn runs or waits (drain), or after `timeoutMs`. */
  async drain(timeoutMs: number): Promise<void> {
    this.draining = true
    if (this.active === 0 && this.queued === 0) return
    await new Promise<void>((resolve) => {
      const done = () => { clearTimeout(timer); this.idle.delete(done); resolve() }
      const timer = setTimeout(done, timeoutMs)
      this.idle.add(done)
    })
  }

  private node(nodeId: string) {
    let n = this.nodes.get(nodeId)
    if (!n) this.nodes.set(nodeId, (n = { cancelled: [] }))
    return n
  }

  private drop(reason: string): void {
    this.metrics.framesDropped.inc({ reason })
  }

  private begin(nodeId: string, turnId: number): Turn {
    const turn = new Turn(nodeId, turnId)
    this.node(nodeId).current = turn
    const how = this.draining ? 'busy' : this.admission.admit(turn, () => void this.run(turn))
    this.metrics.queueDepth.set(this.queued)
    if (how === 'busy') {
      turn.phase = 'busy'
      turn.audio.end()
      this.metrics.turns.inc({ outcome: this.draining ? 'draining' : 'busy', kind: 'busy' })
      this.io.sendEvent(nodeId, { type: 'busy', turnId })
      void this.speakOnly(turn, phrasesSpoken.busy)
    }
    return turn
  }

  private cancel(turn: Turn, reason: string): void {
    if (turn.ctl.signal.aborted) return
    const node = this.node(turn.nodeId)
    node.cancelled.push(turn.id)
    if (node.cancelled.length > 16) node.cancelled.shift()
    if (turn.phase === 'queued' && this.admission.withdraw(turn)) turn.phase = 'done'
    turn.audio.end()
    turn.ctl.abort(new Error(reason))
  }

  /** The busy reply: spoken without taking a session slot. */
  private async speakOnly(turn: Turn, text: string): Promise<void> {
    const speaker = new Speaker(turn.id, (b) => this.io.sendAudio(turn.nodeId, b), this.engines.tts, this.opts, turn.ctl.signal)
    try {
      if (await speaker.say(text)) await speaker.finish()
    } catch { /* cancelled */ }
  }

  private async run(turn: Turn): Promise<void> {
    this.metrics.activeSessions.set(this.active)
    this.metrics.queueDepth.set(this.queued)
    const { signal } = turn.ctl
    const timeout = setTimeout(() => turn.ctl.abort(new Error('turn_timeout')), this.opts.turnTimeoutMs)
    const speaker = new Speaker(turn.id, (b) => this.io.sendAudio(turn.nodeId, b), this.engines.tts, this.opts, signal)
    const engines: Record<string, string> = {}
    let kind: Kind = 'none'
    let transcript = ''
    let replyText = ''
    let outcome = 'ok'
    try {
      turn.phase = 'listening'
      transcript = await this.listen(turn, engines)
      turn.phase = 'thinking'
      this.io.sendEvent(turn.nodeId, { type: 'transcript', turnId: turn.id, text: transcript })
      const sentences = new AsyncQueue<string>()
      kind = this.reply(turn, transcript, sentences, engines)
      const spoken: string[] = []
      for await (const sentence of sentences) {
        turn.t.firstSentence ??= Date.now()
        turn.phase = 'speaking'
        spoken.push(sentence)
        // The text so far, as it starts being spoken: the mirror shows the reply while it talks
        // (`reply` itself only follows once all the audio has gone out).
        this.io.sendEvent(turn.nodeId, { type: 'reply_partial', turnId: turn.id, text: spoken.join(' ') })
        if (!(await speaker.say(sentence))) {
          this.engines.tts.step(this.engines.tts.engines.at(-1)?.name ?? 'none', 'text', 'all_failed')
          engines.tts = 'text'
        }
      }
      replyText = spoken.join(' ')
      if (turn.llmFellBack) kind = 'unavailable'
      await speaker.finish()
      this.io.sendEvent(turn.nodeId, { type: 'reply', turnId: turn.id, text: replyText, kind, audio: speaker.framesSent > 0 })
    } catch (err) {
      outcome = signal.aborted ? String((signal.reason as Error)?.message ?? 'cancelled') : 'error'
      if (speaker.framesSent > 0) speaker.cancel()
      if (turn.bargeInAt !== undefined) this.metrics.bargeIn.observe(((speaker.lastFrameAt ?? Date.now()) - turn.bargeInAt) / 1000)
      if (!signal.aborted || outcome === 'turn_timeout') {
        this.log.error({ err, turnId: turn.id, nodeId: turn.nodeId }, 'turn failed')
        this.io.sendEvent(turn.nodeId, { type: 'turn_error', turnId: turn.id, reason: outcome === 'error' ? reasonOf(err) : outcome })
      }
    } finally {
      clearTimeout(timeout)
      turn.phase = 'done'
      turn.audio.end()
      if (!signal.aborted) turn.ctl.abort(new Error('turn_done')) // stop any LLM still streaming
      this.finishTurn(turn, kind, outcome, speaker, engines, transcript, replyText)
    }
  }

  private async listen(turn: Turn, engines: Record<string, string>): Promise<string> {
    const { signal } = turn.ctl
    const vad = this.engines.vad?.start()
    const asrList = this.engines.asr.candidates()
    const buffered: Int16Array[] = []
    const session = asrList[0]?.start(signal)
    let received = 0
    const idle = setTimeout(() => { turn.t.eos ??= Date.now(); turn.audio.end() }, this.opts.maxUtteranceMs)
    try {
      for await (const pcm of turn.audio) {
        buffered.push(pcm)
        received += pcm.length
        session?.write(pcm)
        if (vad?.push(pcm)) {
          turn.t.eos ??= Date.now()
          break
        }
        if (received > this.opts.maxUtteranceMs * 16) break
      }
    } finally {
      clearTimeout(idle)
    }
    turn.t.eos ??= Date.now()
    turn.audio.end()
    if (signal.aborted) throw signal.reason
    // ASR: the streaming session first, then the others on the buffered audio.
    for (let i = 0; i < asrList.length; i++) {
      const engine = asrList[i]!
      const started = Date.now()
      try {
        const s = i === 0 ? session! : engine.start(signal)
        if (i > 0) for (const pcm of buffered) s.write(pcm)
        const { text } = await s.finish()
        this.metrics.stage.observe({ stage: 'asr', engine: engine.name }, (Date.now() - turn.t.eos) / 1000)
        turn.t.asr = Date.now()
        engines.asr = engine.name
        void started
        return text.trim()
      } catch (err) {
        if (signal.aborted) throw err
        this.engines.asr.step(engine.name, asrList[i + 1]?.name ?? 'none', reasonOf(err), err)
      }
    }
    turn.t.asr = Date.now()
    engines.asr = 'none'
    return ''
  }

  /** Decide the reply and start producing its sentences into `out`. */
  private reply(turn: Turn, transcript: string, out: AsyncQueue<string>, engines: Record<string, string>): Kind {
    if (!transcript) {
      out.push(phrasesSpoken.didntCatch)
      out.end()
      return 'none'
    }
    const match = this.skills.match(transcript)
    if (match) {
      const r = match.skill.handle(match.slots, this.io.skillEnv(turn.nodeId))
      engines.skill = match.skill.id
      if (r.text) out.push(r.text)
      out.end()
      return 'skill'
    }
    const llms = this.engines.llm.candidates()
    const llm = llms[0]
    if (!llm) {
      this.engines.llm.step(this.engines.llm.engines[0]?.name ?? 'none', 'canned', 'unhealthy')
      out.push(phrasesSpoken.unavailable)
      out.end()
      return 'unavailable'
    }
    engines.llm = llm.name
    const chunker = new SentenceChunker()
    let said = 0
    const room = this.io.room(turn.nodeId)
    const system = `${this.opts.persona}${room ? ` You are in the ${room}.` : ''}`
    llm.generate({ prompt: transcript, system, signal: turn.ctl.signal, maxTokens: this.opts.llmMaxTokens, onText: (text) => {
      turn.t.llmFirst ??= Date.now()
      for (const s of chunker.push(text)) { said++; out.push(s) }
    } }).then(() => {
      for (const s of chunker.flush()) { said++; out.push(s) }
      if (said === 0) out.push(phrasesSpoken.didntCatch)
      out.end()
    }, (err: unknown) => {
      if (turn.ctl.signal.aborted) return out.end()
      this.engines.llm.step(llm.name, 'canned', reasonOf(err), err)
      if (said === 0) {
        turn.llmFellBack = true
        out.push(phrasesSpoken.unavailable)
      }
      out.end()
    })
    return 'llm'
  }

  private finishTurn(turn: Turn, kind: Kind, outcome: string, speaker: Speaker, engines: Record<string, string>, transcript: string, reply: string): void {
    const t = turn.t
    const eos = t.eos
    if (eos !== undefined && speaker.firstFrameAt !== undefined) this.metrics.ttfa.observe({ side: 'hub', kind }, (speaker.firstFrameAt - eos) / 1000)
    if (eos !== undefined && t.llmFirst !== undefined) this.metrics.stage.observe({ stage: 'llm_first_token', engine: engines.llm ?? 'none' }, (t.llmFirst - eos) / 1000)
    if (speaker.ttsFirstChunkMs !== undefined) this.metrics.stage.observe({ stage: 'tts_first_chunk', engine: speaker.ttsEngine ?? 'none' }, speaker.ttsFirstChunkMs / 1000)
    this.metrics.turns.inc({ outcome, kind })
    const rel = (v: number | undefined) => (v === undefined || eos === undefined ? undefined : v - eos)
    this.log.info({
      turnId: turn.id, nodeId: turn.nodeId, kind, outcome, engines,
      timings: { listenMs: eos !== undefined ? eos - t.start! : undefined, asrMs: rel(t.asr), llmFirstMs: rel(t.llmFirst), firstSentenceMs: rel(t.firstSentence), ttsFirstChunkMs: speaker.ttsFirstChunkMs, ttfaMs: rel(speaker.firstFrameAt), totalMs: Date.now() - t.start! },
      frames: speaker.framesSent,
      pii: { transcript, reply },
    }, 'turn finished')
    this.admission.release()
    this.metrics.activeSessions.set(this.active)
    this.metrics.queueDepth.set(this.queued)
    if (this.active === 0 && this.queued === 0) for (const f of [...this.idle]) f()
  }
}
