// The node's ear: one audio source, gated by a wake word (or by speech alone, or by
// push-to-talk), cut into utterances by a local Silero VAD. While the agent plays an
// answer (`speaking = true`) speech onset is reported as barge-in and opens a new turn.
import { randomInt } from 'node:crypto'
import { EventEmitter } from 'node:events'
import type { VadEngine, VadSession } from '@mirrormesh/speech'
import { FRAME_MS, type AudioSource } from './source.js'

/** A wake word engine: openWakeWord (wakeword.ts) or sherpa-onnx's keyword spotter (kws.ts). */
export interface WakeDetector {
  /** Feed 16 kHz PCM16; resolves true when the keyword was heard in these samples. */
  push(pcm: Int16Array): Promise<boolean>
  /** Score of the latest decision, for logs. */
  readonly lastScore: number
  /** Forget buffered audio (after a detection was acted on). */
  reset(): void
  close?(): Promise<void>
}

export type Trigger = 'wake' | 'vad' | 'ptt' | 'barge-in'

export interface UtteranceStart {
  turnId: number
  trigger: Trigger
  /** Date.now() when the utterance was opened (wake word/speech/PTT detected). */
  at: number
  /** Wake word score when trigger is 'wake'. */
  score?: number
}

export interface UtteranceEnd {
  turnId: number
  /**
   * Date.now() when the utterance was ended: for 'vad' the VAD's end-of-speech decision (the
   * speech itself ended ~endSilenceMs earlier); for 'endpoint' the caller's early endpoint.
   */
  endOfSpeechAt: number
  /** 'endpoint': ended by endUtterance('endpoint'), e.g. offline mode heard a whole command (voice.ts). */
  reason: 'vad' | 'no_speech' | 'max_length' | 'manual' | 'source_ended' | 'endpoint'
  /** Frames emitted for the turn, pre-roll included. */
  frames: number
}

export interface BargeIn {
  /** The new turn opened by the interruption. */
  turnId: number
  at: number
}

export interface ListenerEvents {
  'utterance-start': [UtteranceStart]
  frame: [Int16Array]
  'utterance-end': [UtteranceEnd]
  'barge-in': [BargeIn]
  error: [Error]
}

export interface ListenerOptions {
  source: AudioSource
  vad: VadEngine
  /** With a wake word, idle speech is ignored until the keyword is heard. Without one, any speech opens an utterance. */
  wakeWord?: WakeDetector
  /** Audio kept from before the trigger (default 300 ms). */
  preRollMs?: number
  /** After a wake word/PTT, give up if no speech starts within this (default 5000 ms). */
  noSpeechTimeoutMs?: number
  /** Hard cap on an utterance (default 15000 ms). */
  maxUtteranceMs?: number
  /** What counts as barge-in while speaking: any speech ('vad', default), only the wake word ('wake'), or nothing ('off'). */
  bargeIn?: 'vad' | 'wake' | 'off'
}

interface Turn {
  turnId: number
  vad: VadSession
  frames: number
  /** Frames since the turn opened (pre-roll excluded). */
  live: number
  /** Speech seen by the VAD in this turn (for no_speech). */
  heard: boolean
}

export class Listener extends EventEmitter<ListenerEvents> {
  /** Set by the agent while an answer is playing; speech onset then means barge-in. */
  speaking = false
  private readonly preRoll: Int16Array[] = []
  private readonly preRollFrames: number
  private turn: Turn | undefined
  /** VAD watching idle audio (no wake word, or barge-in detection). */
  private idleVad: VadSession | undefined
  private pttRequested = false
  private abort = new AbortController()
  private running: Promise<void> | undefined

  constructor(private readonly opts: ListenerOptions) {
    super()
    this.preRollFrames = Math.max(0, Math.round((opts.preRollMs ?? 300) / FRAME_MS))
  }

  get inUtterance(): boolean {
    return this.turn !== undefined
  }

  get currentTurnId(): number | undefined {
    return this.turn?.turnId
  }

  /** Consume the source until it ends or stop() is called. Resolves then; errors are emitted and rethrown. */
  start(): Promise<void> {
    this.running ??= this.loop().catch((err: unknown) => {
      const e = err instanceof Error ? err : new Error(String(err))
      if (this.listenerCount('error')) this.emit('error', e)
      throw e
    })
    return this.running
  }

  async stop(): Promise<void> {
    this.abort.abort()
    await this.running?.catch(() => undefined)
  }

  /** Open an utterance now (button press), pre-roll included; it ends on VAD end of speech or endUtterance(). Returns the turn id. */
  pushToTalk(): number {
    if (this.turn) return this.turn.turnId
    this.pttRequested = true
    const turnId = this.open('ptt')
    this.pttRequested = false
    return turnId
  }

  /**
   * End the running utterance now (button released, the agent cancels, or an early endpoint).
   * Audio after it is idle audio again: while an answer plays, speech there is barge-in.
   */
  endUtterance(reason: UtteranceEnd['reason'] = 'manual'): void {
    if (this.turn) this.close(reason)
  }

  private async loop(): Promise<void> {
    const signal = this.abort.signal
    const ww = this.opts.wakeWord
    const maxFrames = (this.opts.maxUtteranceMs ?? 15_000) / FRAME_MS
    const noSpeechFrames = (this.opts.noSpeechTimeoutMs ?? 5000) / FRAME_MS
    const bargeMode = this.opts.bargeIn ?? 'vad'
    for await (const frame of this.opts.source) {
      if (signal.aborted) break
      const turn = this.turn
      if (turn) {
        this.emit('frame', frame)
        turn.frames++
        turn.live++
        const ended = turn.vad.push(frame)
        if (turn.vad.speechDetected) turn.heard = true
        if (ended) this.close('vad')
        else if (turn.live >= maxFrames) this.close('max_length')
        else if (!turn.heard && turn.live >= noSpeechFrames) this.close('no_speech')
        // The wake word model still hears the command: keep its buffers current, ignore its verdict.
        if (ww) await ww.push(frame)
        continue
      }
      this.remember(frame)
      let trigger: Trigger | undefined
      let score: number | undefined
      if (ww && (await ww.push(frame))) {
        trigger = this.speaking && bargeMode !== 'off' ? 'barge-in' : 'wake'
        score = ww.lastScore
      }
      const useIdleVad = this.speaking ? bargeMode === 'vad' : !ww
      if (!trigger && useIdleVad) {
        this.idleVad ??= this.opts.vad.start()
        const ended = this.idleVad.push(frame)
        if (this.idleVad.speechDetected && !ended) trigger = this.speaking ? 'barge-in' : 'vad'
        if (ended || trigger) this.dropIdleVad() // ended: a blip too short to act on
      } else if (!useIdleVad && this.idleVad) {
        this.dropIdleVad()
      }
      if (trigger) {
        if (ww) ww.reset()
        this.open(trigger, score)
      }
    }
    if (this.turn) this.close('source_ended')
    this.dropIdleVad()
  }

  private remember(frame: Int16Array): void {
    this.preRoll.push(frame)
    if (this.preRoll.length > this.preRollFrames) this.preRoll.shift()
  }

  private dropIdleVad(): void {
    const v = this.idleVad as (VadSession & { release?: () => void }) | undefined
    this.idleVad = undefined
    v?.release?.()
  }

  private open(trigger: Trigger, score?: number): number {
    const turnId = randomInt(1, 2 ** 32 - 1) >>> 0
    const at = Date.now()
    if (trigger === 'barge-in') this.emit('barge-in', { turnId, at })
    // With VAD triggering, speech has already started: the turn's VAD must count it as speech.
    const turn: Turn = { turnId, vad: this.opts.vad.start(), frames: 0, live: 0, heard: trigger === 'vad' || trigger === 'barge-in' }
    this.turn = turn
    this.emit('utterance-start', { turnId, trigger, at, ...(score === undefined ? {} : { score }) })
    for (const f of this.preRoll) {
      this.emit('frame', f)
      turn.frames++
      // Speech-triggered turns: let the VAD see the onset so it can find its end.
      if (trigger !== 'wake' && !this.pttRequested) turn.vad.push(f)
    }
    this.preRoll.length = 0
    return turnId
  }

  private close(reason: UtteranceEnd['reason']): void {
    const turn = this.turn
    if (!turn) return
    this.turn = undefined
    ;(turn.vad as VadSession & { release?: () => void }).release?.()
    this.emit('utterance-end', { turnId: turn.turnId, endOfSpeechAt: Date.now(), reason, frames: turn.frames })
  }
}
