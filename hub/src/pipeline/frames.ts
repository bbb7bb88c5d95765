// The frames a voice turn passes between its stages (router → listen → reply → speak →
// the node), as one discriminated union on `type`. Control frames are start, end, cancel
// and barge-in; cancel and barge-in do not wait behind data: the router acts on them at
// once by aborting the turn, and every stage drops the data frames still queued once the
// turn's signal has aborted. A stage
// handles the frames it knows and passes every other frame on unchanged, so the sink at
// the end of the chain sees the whole turn in order (pipecat `frames/frames.py`).
import type { ReplyKind } from '@mirrormesh/broker'
import type { SkillEnv } from './skills.js'

// ── control: from the node, through the router ───────────────────────────────────────
// Interrupts jump the queue: the router hands them to the turn at once, which aborts, and
// every stage drops the data still queued. Start and end are ordered with the audio.
/** The node stopped this turn (cancel flag) or a new turn replaced it. */
export interface CancelFrame { type: 'cancel'; reason: 'node_cancel' | 'new_turn' }
/** New speech while the reply plays: stop the LLM, TTS and the audio/out frames. */
export interface BargeInFrame { type: 'barge_in'; at: number }
export type InterruptFrame = CancelFrame | BargeInFrame
/** A turn opened (the node's start flag): the first frame of its input. */
export interface StartFrame { type: 'start'; at: number }
/** The node's end flag: the utterance is over. */
export interface InputEndFrame { type: 'input_end'; at: number }
export type ControlFrame = InterruptFrame | StartFrame | InputEndFrame

// ── data: into listen ──────────────────────────────────────────────────────────────────
/** Utterance PCM16 16 kHz, in sequence order. */
export interface AudioInFrame { type: 'audio_in'; seq: number; pcm: Int16Array }
/** What the router queues for a turn, in order. */
export type InputFrame = StartFrame | AudioInFrame | InputEndFrame

// ── listen → reply ─────────────────────────────────────────────────────────────────────
/** End of speech (VAD, the node's end flag or the utterance limit); TTFA counts from `at`. */
export interface EndOfSpeechFrame { type: 'end_of_speech'; at: number }
/** The ASR result; `engine` 'none' and empty text when every engine failed. */
export interface TranscriptFrame {
  type: 'transcript'; text: string; engine: string; at: number
  /** The memory stage answered it (a memory intent): the reply stage passes it on untouched. */
  answered?: boolean
  /** Memories the memory stage found for the LLM's prompt. */
  memory?: string[]
  /** An open-vocabulary transcript of speech no skill phrase fits (the grammar result was not trusted): never a skill. */
  open?: boolean
}

// ── reply → speak ──────────────────────────────────────────────────────────────────────
/** The reply is decided: a skill, the LLM, the canned "unavailable", or none (nothing heard). */
export interface ReplyStartFrame { type: 'reply_start'; kind: ReplyKind; skill?: string; llm?: string }
/** One sentence to speak, in order. */
export interface SentenceFrame { type: 'sentence'; text: string }
/** The reply is complete; `kind` is final (an LLM that failed before any text → 'unavailable'). */
export interface ReplyEndFrame { type: 'reply_end'; kind: ReplyKind }

// ── speak → the node ───────────────────────────────────────────────────────────────────
/** A sentence starts being spoken (or shown, when no TTS engine could speak it). */
export interface SpokenTextFrame { type: 'spoken_text'; text: string }
/** A TTS engine produced the first audio of a sentence, `firstChunkMs` after it was asked. */
export interface TtsStartedFrame { type: 'tts_started'; engine: string; firstChunkMs: number }
/** Every TTS engine failed on a sentence: it is shown as text only. */
export interface TextOnlyFrame { type: 'text_only'; text: string }
/** One encoded audio/out frame (start/end/cancel flags and sequence number already set). */
export interface AudioOutFrame { type: 'audio_out'; seq: number; flags: number; samples: number; payload: Buffer }

export type DataFrame = AudioInFrame | EndOfSpeechFrame | TranscriptFrame | ReplyStartFrame | SentenceFrame | ReplyEndFrame
  | SpokenTextFrame | TtsStartedFrame | TextOnlyFrame | AudioOutFrame
export type Frame = ControlFrame | DataFrame
export type FrameType = Frame['type']
export type FrameOf<T extends FrameType> = Extract<Frame, { type: T }>

/** Where a stage puts its output frames. */
export type Sink = (frame: Frame) => void

/** What a stage knows of the turn it runs in. */
export interface StageContext {
  readonly nodeId: string
  readonly turnId: number
  /** Aborts on cancel, barge-in, turn timeout, or an error reported by any stage. */
  readonly signal: AbortSignal
  /**
   * Report an error upstream instead of throwing out of the stage loop: the turn is
   * aborted, counted with outcome `error` and the node gets `turn_error`.
   */
  error(stage: string, err: unknown): void
  /** Record a moment of the turn once (`llmFirst`, `firstSentence`), for the turn log. */
  mark(name: string, at?: number): void
}

/** The reply stage also needs the node's room and the skills' view of the house. */
export interface ReplyContext extends StageContext {
  readonly room: string | null
  /** A text turn's named memory key (`user:<name>`); unset: the room's. */
  readonly memoryKey?: string
  skillEnv(): SkillEnv
}

/** A stage reads frames from `input` and writes to `out`; `run` never rejects. */
export interface Stage<C extends StageContext = StageContext> {
  run(input: AsyncIterable<Frame>, out: Sink, ctx: C): Promise<void>
}
