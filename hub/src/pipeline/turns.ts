// The turn orchestrator: the router hands it audio/in frames per turn; it admits turns
// (a bounded number run, a bounded queue waits, the rest hear "busy") and wires each one
//   input → listen → [memory] → reply → speak → sink (the node: events and audio/out)
// A text turn (textTurn: typed, from HTTP or MQTT) skips listen: its transcript is the text.
// as stages joined by frame queues. The sink turns frames into events and metrics; this
// file holds no stage logic of its own.
import type { EventBody, HubEvent, Logger, NodeEventOf, ReplyKind } from '@mirrormesh/broker'
import type { AsrEngine, FallbackChain, LlmEngine, TtsEngine, VadEngine } from '@mirrormesh/speech'
import { reasonOf } from '@mirrormesh/speech'
import { AdmissionControl } from './admission.js'
import type { Frame, InputFrame, InterruptFrame, ReplyContext, Sink, Stage } from './frames.js'
import { ListenStage, type EarlyEnd } from './listen.js'
import type { PipelineMetrics } from './metrics.js'
import { AsyncQueue } from './queue.js'
import { ReplyStage, phrasesSpoken } from './reply.js'
import { Router, type RoutedTurn } from './router.js'
import type { SkillEnv, SkillMatcher } from './skills.js'
import { SpeakStage } from './speak.js'

export { phrasesSpoken } from './reply.js'

export interface TurnOptions {
  /** Turns that run at once (MAX_CONCURRENT_SESSIONS). */
  maxConcurrent: number
  /** Turns that may wait for a slot; beyond it a turn hears "busy". */
  queueMax: number
  /** Longest utterance accepted; also ends a turn whose node stopped sending. */
  maxUtteranceMs: number
  /** A turn still running after this is aborted with `turn_error` `turn_timeout`. */
  turnTimeoutMs: number
  /** The LLM's system prompt. */
  persona: string
  /** Most tokens one LLM reply may have. */
  llmMaxTokens: number
  /** Samples per audio/out frame. */
  frameSamples: number
  /** How far ahead of real time audio/out frames may be sent. */
  leadMs: number
  /** Speech from the node this soon after an early end continues that turn (default 600). */
  earlyEndResumeMs?: number
}

export interface TurnIo {
  sendAudio(nodeId: string, frame: Buffer): void
  sendEvent(nodeId: string, event: EventBody<HubEvent>): void
  skillEnv(nodeId: string): SkillEnv
  room(nodeId: string): string | null
  /** The hub ended this turn early (a whole command): the node stops streaming it (nodes/{id}/turn/end). */
  endTurn?(nodeId: string, turnId: number): void
}

export interface TurnEngines {
  vad?: VadEngine
  asr: FallbackChain<AsrEngine>
  tts: FallbackChain<TtsEngine>
  llm: FallbackChain<LlmEngine>
  /** Online early end of turn (listen.ts); unset: turns end on the VAD, the end flag or the limit. */
  early?: EarlyEnd
}

/** How a text turn ended, for the caller that typed it. */
export interface TextTurnResult {
  turnId: number
  /** ok, busy, error, turn_timeout, hub_stopping, … (as mirrormesh_turns_total counts it). */
  outcome: string
  kind: ReplyKind
  transcript: string
  reply: string
  /** Hub-side time to first audio (the text arrived → first audio/out frame); null: no audio. */
  ttfaMs: number | null
}

/** Text turns are numbered by the hub, far above the small numbers nodes give audio turns. */
let nextTextTurnId = 0x8000_0000 + Math.floor(Math.random() * 0x1000_0000)

/** One utterance and its reply: the router's view of it plus what the sink gathers. */
class Turn implements RoutedTurn {
  readonly ctl = new AbortController()
  readonly input = new AsyncQueue<Frame>()
  readonly t: Record<string, number> = { start: Date.now() }
  readonly engines: Record<string, string> = {}
  busy = false
  finished = false
  /** Waiting for a session slot. */
  queued = true
  bargeInAt: number | undefined
  error: unknown
  failed = false
  kind: ReplyKind = 'none'
  transcript = ''
  readonly spoken: string[] = []
  replied = false
  frames = 0
  firstFrameAt: number | undefined
  lastFrameAt: number | undefined
  ttsEngine: string | undefined
  ttsFirstChunkMs: number | undefined
  /** A text turn: its transcript, the caller's memory key, and who waits for its end. */
  text: string | undefined
  memoryKey: string | undefined
  settle: ((r: TextTurnResult) => void) | undefined
  /** Audio of an early-ended turn the speaker went on from: heard first (listen.ts). */
  prefix: Int16Array[] | undefined
  /** Ended early: when, on what, the whole utterance (for a resumed turn). */
  early: { at: number; heard: string; audio: Int16Array[] } | undefined
  /** The speaker went on after the early end: its held effects never happen. */
  withdrawn = false
  /** Skill effects (house actions, events, timers) held until the resume window has passed; null once it has. */
  held: Array<() => void> | null = []

  constructor(readonly nodeId: string, readonly turnId: number, private readonly onInterrupt: (turn: Turn, f: InterruptFrame) => void) {}

  get state(): RoutedTurn['state'] {
    if (this.finished || this.ctl.signal.aborted) return 'done'
    return this.busy ? 'busy' : 'open'
  }

  get inputEnded(): boolean { return this.input.ended }

  push(frame: InputFrame): void { this.input.push(frame) }

  interrupt(frame: InterruptFrame): void { this.onInterrupt(this, frame) }

  abort(reason: string): void {
    if (this.ctl.signal.aborted) return
    this.input.end() // listen stops at once; queued audio is dropped
    this.ctl.abort(new Error(reason))
  }
}

export class TurnManager {
  private readonly router: Router
  private readonly admission: AdmissionControl<Turn>
  private readonly idle = new Set<() => void>()
  private readonly listen: ListenStage
  private readonly reply: ReplyStage
  private readonly speak: SpeakStage
  draining = false
  /** The memory stage (features/memory.ts sets it once the store is open); unset: no memory. */
  memory: Stage<ReplyContext> | undefined
  /** Turns admitted (running or queued) and busy replies being spoken: what close() aborts. */
  private readonly live = new Set<Turn>()
  /** node → its last early-ended turn, while speech may still resume it. */
  private readonly lastEarly = new Map<string, Turn>()

  constructor(engines: TurnEngines, skills: SkillMatcher, private readonly io: TurnIo,
    private readonly opts: TurnOptions, private readonly metrics: PipelineMetrics, private readonly log: Logger) {
    this.admission = new AdmissionControl(opts.maxConcurrent, opts.queueMax)
    this.router = new Router({ open: (nodeId, turnId) => this.begin(nodeId, turnId) }, {
      dropped: (reason) => metrics.framesDropped.inc({ reason }),
      lost: (n) => metrics.framesLost.inc(n),
    })
    this.listen = new ListenStage(engines.vad, engines.asr, opts, metrics, engines.early)
    this.reply = new ReplyStage(skills, engines.llm, opts)
    this.speak = new SpeakStage(engines.tts, opts)
  }

  get active(): number { return this.admission.running }
  get queued(): number { return this.admission.queued }

  /** Whether a turn of this node is admitted, running or being answered "busy" (a hand-over waits for it). */
  busy(nodeId: string): boolean {
    for (const t of this.live) if (t.nodeId === nodeId) return true
    return false
  }

  /** One audio/in message from a node. Never throws. */
  onAudio(nodeId: string, payload: Buffer): void {
    this.router.route(nodeId, payload)
  }

  /**
   * A typed turn for `nodeId`: the same pipeline after ASR (memory, skills, LLM, TTS to that
   * node). Resolves when the turn ends, however it ends.
   */
  textTurn(nodeId: string, text: string, memoryKey?: string): Promise<TextTurnResult> {
    return new Promise((resolve) => {
      this.begin(nodeId, nextTextTurnId++ % 0x1_0000_0000, { text, memoryKey, settle: resolve })
    })
  }

  /** The node's own report of TTFA (end of speech → first sample played). */
  onNodeTtfa(_nodeId: string, ev: NodeEventOf<'ttfa'>): void {
    if (ev.ms < 60_000) this.metrics.ttfa.observe({ side: 'node', kind: ev.kind }, ev.ms / 1000)
  }

  /**
   * The hub is stopping (after a drain, or without one): every turn still running or queued
   * is aborted, so none keeps a timer or an engine busy past the hub's stop.
   */
  close(): void {
    this.draining = true
    for (const turn of this.live) {
      if (turn.queued) { this.admission.withdraw(turn); this.settle(turn, 'hub_stopping') }
      turn.input.end()
      turn.abort('hub_stopping')
    }
    this.live.clear()
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

  private begin(nodeId: string, turnId: number, typed?: { text: string; memoryKey: string | undefined; settle: (r: TextTurnResult) => void }): Turn {
    const turn = new Turn(nodeId, turnId, (t, f) => this.interrupt(t, f))
    if (typed) {
      turn.text = typed.text
      turn.memoryKey = typed.memoryKey
      turn.settle = typed.settle
      turn.input.end()
    } else this.resume(turn)
    this.live.add(turn)
    const how = this.draining ? 'busy' : this.admission.admit(turn, () => void this.run(turn))
    this.metrics.queueDepth.set(this.queued)
    if (how === 'busy') {
      turn.busy = true
      turn.input.end()
      this.metrics.turns.inc({ outcome: this.draining ? 'draining' : 'busy', kind: 'busy' })
      this.io.sendEvent(nodeId, { type: 'busy', turnId })
      this.settle(turn, this.draining ? 'draining' : 'busy', 'busy', phrasesSpoken.busy)
      void this.speakOnly(turn, phrasesSpoken.busy).finally(() => this.live.delete(turn))
    }
    return turn
  }

  /**
   * The node reopens the turn the hub ended early moments ago, under the same id: the speaker had
   * not finished ("turn on the kitchen … light"; the node sends speech alone this way, never a wake
   * word or a button press — voice.ts). As offline (offline-mode.ts): the early turn is withdrawn —
   * the router already cancelled its reply, its held effects are dropped — and the new turn hears
   * the early turn's audio first, so the whole sentence is answered once. Any other new turn leaves
   * the early one standing.
   */
  private resume(turn: Turn): void {
    const prev = this.lastEarly.get(turn.nodeId)
    if (!prev?.early || prev.turnId !== turn.turnId) return
    this.lastEarly.delete(turn.nodeId)
    if (Date.now() - prev.early.at > (this.opts.earlyEndResumeMs ?? 600)) return
    prev.withdrawn = true
    prev.held = []
    prev.abort('resumed')
    turn.prefix = prev.early.audio
    this.metrics.earlyEnds.inc({ outcome: 'resumed' })
    this.log.info({ nodeId: turn.nodeId, turnId: turn.turnId, withdrawn: prev.turnId, afterMs: Date.now() - prev.early.at, pii: { heard: prev.early.heard } }, 'speech resumed after an early end of turn: withdrawn, heard with the new turn')
  }

  /** listen.ts ended the turn early: tell the node to stop sending, hold its effects for the resume window. */
  private earlyEnded(turn: Turn, e: { at: number; heard: string; audio: Int16Array[] }): void {
    turn.early = e
    this.lastEarly.set(turn.nodeId, turn)
    this.io.endTurn?.(turn.nodeId, turn.turnId)
    this.log.debug({ nodeId: turn.nodeId, turnId: turn.turnId, pii: { heard: e.heard } }, 'early end of turn')
    setTimeout(() => {
      if (this.lastEarly.get(turn.nodeId) === turn) this.lastEarly.delete(turn.nodeId)
      if (turn.withdrawn) return
      this.metrics.earlyEnds.inc({ outcome: 'answered' })
      const held = turn.held ?? []
      turn.held = null
      for (const f of held) f()
    }, this.opts.earlyEndResumeMs ?? 600).unref()
  }

  /** The skills' view of the house; for an early-ended turn its effects wait for the resume window. */
  private skillEnv(turn: Turn): SkillEnv {
    const env = this.io.skillEnv(turn.nodeId)
    if (!turn.early) return env
    const hold = (f: () => void): void => {
      if (turn.withdrawn) return
      if (turn.held) turn.held.push(f)
      else f()
    }
    return {
      ...env,
      act: (c, a) => hold(() => env.act(c, a)),
      notify: (ev) => hold(() => env.notify(ev)),
      setTimer: (ms, label) => hold(() => env.setTimer(ms, label)),
      ...(env.cancelTimers ? { cancelTimers: () => { hold(() => env.cancelTimers!()); return env.listTimers?.().length ?? 0 } } : {}),
    }
  }

  /** Cancel or barge-in, at once: a queued turn leaves the queue, a running one aborts. */
  private interrupt(turn: Turn, f: InterruptFrame): void {
    if (turn.state === 'done') return
    if (f.type === 'barge_in') turn.bargeInAt = f.at
    if (turn.queued && this.admission.withdraw(turn)) {
      turn.finished = true
      this.live.delete(turn)
      this.settle(turn, f.type === 'barge_in' ? 'barge_in' : f.reason)
      this.metrics.queueDepth.set(this.queued)
      this.notifyIfIdle() // a drain waiting on this queued turn ends now, not at its timeout
    }
    turn.abort(f.type === 'barge_in' ? 'barge_in' : f.reason)
  }

  private notifyIfIdle(): void {
    if (this.active === 0 && this.queued === 0) for (const f of [...this.idle]) f()
  }

  /** The busy reply: spoken without taking a session slot. */
  private async speakOnly(turn: Turn, text: string): Promise<void> {
    const source = new AsyncQueue<Frame>()
    source.push({ type: 'sentence', text })
    source.push({ type: 'reply_end', kind: 'busy' })
    source.end()
    const ctx = this.context(turn)
    await this.speak.run(source, (f) => { if (f.type === 'audio_out') this.io.sendAudio(turn.nodeId, f.payload) }, ctx)
      .catch((err: unknown) => this.log.warn({ err, turnId: turn.turnId, nodeId: turn.nodeId }, 'busy reply failed'))
  }

  private context(turn: Turn): ReplyContext {
    return {
      nodeId: turn.nodeId,
      turnId: turn.turnId,
      signal: turn.ctl.signal,
      room: this.io.room(turn.nodeId),
      ...(turn.memoryKey ? { memoryKey: turn.memoryKey } : {}),
      skillEnv: () => this.skillEnv(turn),
      error: (stage, err) => {
        if (turn.failed || turn.ctl.signal.aborted) return
        turn.failed = true
        turn.error = err
        this.log.debug({ stage, err, turnId: turn.turnId }, 'stage reported an error')
        turn.abort('error')
      },
      mark: (name, at = Date.now()) => { turn.t[name] ??= at },
    }
  }

  private async run(turn: Turn): Promise<void> {
    turn.queued = false
    this.metrics.activeSessions.set(this.active)
    this.metrics.queueDepth.set(this.queued)
    const timeout = setTimeout(() => turn.abort('turn_timeout'), this.opts.turnTimeoutMs)
    const ctx = this.context(turn)
    const toMemory = new AsyncQueue<Frame>()
    const memory = this.memory
    const toReply = memory ? new AsyncQueue<Frame>() : toMemory
    const toSpeak = new AsyncQueue<Frame>()
    // Each stage runs as its own loop; when one returns, the queue after it ends.
    const stage = (name: string, p: Promise<void>, next?: AsyncQueue<Frame>) =>
      p.catch((err: unknown) => ctx.error(name, err)).finally(() => next?.end())
    await Promise.all([
      stage('listen', turn.text !== undefined ? this.typed(turn.text, (f) => toMemory.push(f)) : this.listen.run(turn.input, (f) => toMemory.push(f), ctx, { prefix: turn.prefix, onEarlyEnd: (e) => this.earlyEnded(turn, e) }), toMemory),
      ...(memory ? [stage('memory', memory.run(toMemory, (f) => toReply.push(f), ctx), toReply)] : []),
      stage('reply', this.reply.run(toReply, (f) => toSpeak.push(f), ctx), toSpeak),
      stage('speak', this.speak.run(toSpeak, this.sink(turn), ctx)),
    ])
    clearTimeout(timeout)
    const { signal } = turn.ctl
    const outcome = turn.failed ? 'error' : turn.replied ? 'ok' : signal.aborted ? String((signal.reason as Error)?.message ?? 'cancelled') : 'error'
    if (turn.bargeInAt !== undefined && outcome !== 'ok') this.metrics.bargeIn.observe(((turn.lastFrameAt ?? Date.now()) - turn.bargeInAt) / 1000)
    if (outcome === 'error' || outcome === 'turn_timeout') {
      this.log.error({ err: turn.error ?? signal.reason, turnId: turn.turnId, nodeId: turn.nodeId }, 'turn failed')
      this.io.sendEvent(turn.nodeId, { type: 'turn_error', turnId: turn.turnId, reason: outcome === 'error' ? (turn.error === undefined ? 'error' : reasonOf(turn.error)) : outcome })
    }
    turn.finished = true
    turn.abort('turn_done') // stop any LLM still streaming
    this.live.delete(turn)
    this.finishTurn(turn, outcome)
  }

  /** A text turn's "listen": the text is the transcript, and it ends speech now (TTFA counts from here). */
  private async typed(text: string, out: Sink): Promise<void> {
    const at = Date.now()
    out({ type: 'end_of_speech', at })
    out({ type: 'transcript', text, engine: 'text', at })
  }

  private settle(turn: Turn, outcome: string, kind: ReplyKind = turn.kind, reply = turn.spoken.join(' ')): void {
    const settle = turn.settle
    turn.settle = undefined
    const ttfaMs = turn.firstFrameAt !== undefined && turn.t.eos !== undefined ? turn.firstFrameAt - turn.t.eos : null
    settle?.({ turnId: turn.turnId, outcome, kind, transcript: turn.transcript || (turn.text ?? ''), reply, ttfaMs })
  }

  /** The end of the chain: frames become events to the node, audio/out and turn facts. */
  private sink(turn: Turn): Sink {
    return (f) => {
      switch (f.type) {
        case 'end_of_speech':
          turn.t.eos ??= f.at
          break
        case 'transcript':
          turn.t.asr = f.at
          turn.engines.asr = f.engine
          turn.transcript = f.text
          this.io.sendEvent(turn.nodeId, { type: 'transcript', turnId: turn.turnId, text: f.text })
          break
        case 'reply_start':
          turn.kind = f.kind
          if (f.skill) turn.engines.skill = f.skill
          if (f.llm) turn.engines.llm = f.llm
          break
        case 'spoken_text':
          // The text so far, as it starts being spoken: the mirror shows the reply while it
          // talks (`reply` itself only follows once all the audio has gone out).
          turn.spoken.push(f.text)
          this.io.sendEvent(turn.nodeId, { type: 'reply_partial', turnId: turn.turnId, text: turn.spoken.join(' ') })
          break
        case 'tts_started':
          turn.ttsEngine = f.engine
          turn.ttsFirstChunkMs ??= f.firstChunkMs
          break
        case 'text_only':
          turn.engines.tts = 'text'
          break
        case 'audio_out': {
          this.io.sendAudio(turn.nodeId, f.payload)
          const now = Date.now()
          turn.firstFrameAt ??= now
          turn.lastFrameAt = now
          turn.frames++
          break
        }
        case 'reply_end':
          turn.kind = f.kind
          turn.replied = true
          this.io.sendEvent(turn.nodeId, { type: 'reply', turnId: turn.turnId, text: turn.spoken.join(' '), kind: f.kind, audio: turn.frames > 0 })
          break
        default:
          break
      }
    }
  }

  private finishTurn(turn: Turn, outcome: string): void {
    const { t, kind, engines } = turn
    const eos = t.eos
    if (eos !== undefined && turn.firstFrameAt !== undefined) this.metrics.ttfa.observe({ side: 'hub', kind }, (turn.firstFrameAt - eos) / 1000)
    if (eos !== undefined && t.llmFirst !== undefined) this.metrics.stage.observe({ stage: 'llm_first_token', engine: engines.llm ?? 'none' }, (t.llmFirst - eos) / 1000)
    if (turn.ttsFirstChunkMs !== undefined) this.metrics.stage.observe({ stage: 'tts_first_chunk', engine: turn.ttsEngine ?? 'none' }, turn.ttsFirstChunkMs / 1000)
    this.metrics.turns.inc({ outcome, kind })
    this.settle(turn, outcome)
    const rel = (v: number | undefined) => (v === undefined || eos === undefined ? undefined : v - eos)
    this.log.info({
      turnId: turn.turnId, nodeId: turn.nodeId, kind, outcome, engines,
      timings: { listenMs: eos !== undefined ? eos - t.start! : undefined, asrMs: rel(t.asr), llmFirstMs: rel(t.llmFirst), firstSentenceMs: rel(t.firstSentence), ttsFirstChunkMs: turn.ttsFirstChunkMs, ttfaMs: rel(turn.firstFrameAt), totalMs: Date.now() - t.start! },
      frames: turn.frames,
      pii: { transcript: turn.transcript, reply: turn.spoken.join(' ') },
    }, 'turn finished')
    this.admission.release()
    this.metrics.activeSessions.set(this.active)
    this.metrics.queueDepth.set(this.queued)
    this.notifyIfIdle()
  }
}
