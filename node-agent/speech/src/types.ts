// Stage interfaces for the voice pipeline. Each engine is one implementation; a
// FallbackChain (fallback.ts) tries them in order. No stage knows about MQTT.
// All audio is PCM16 mono at 16 kHz (the wire format). Durations are in ms.

export type EngineHealth = 'ok' | 'degraded' | 'down'

export interface Engine {
  /** Short stable name used in metrics and logs: 'sherpa', 'pocketsphinx', 'espeak', 'llama'. */
  readonly name: string
  /** Whether the engine can take work now (model present and loaded). */
  health(): EngineHealth
  close?(): Promise<void>
}

/** Thrown by an engine that cannot do this piece of work; `reason` labels the fallback metric. */
export class EngineError extends Error {
  constructor(readonly reason: string, message: string, readonly retryable = false) {
    super(message)
    this.name = 'EngineError'
  }
}

export interface Transcript {
  text: string
  confidence?: number
  /** Why a grammar hypothesis was not trusted (text is then ''): 'second_opinion'. */
  rejected?: string
  /** The grammar hypothesis that was not trusted (for logs and the accuracy bench; PII). */
  heard?: string
  /** Second-opinion margin per frame (see second-opinion.ts), when it ran. */
  margin?: number
}

/**
 * Speech to text. A session receives audio as it arrives so decoding overlaps speech;
 * `finish()` resolves with the transcript once the utterance has ended.
 */
export interface AsrEngine extends Engine {
  start(signal: AbortSignal): AsrSession
}
export interface AsrSession {
  write(pcm: Int16Array): void
  finish(): Promise<Transcript>
  /**
   * A hint that the result will likely not be trusted (the hub's early-end probe refused the
   * audio so far): start now what an untrusted result needs, while the turn waits for its end.
   */
  expectUntrusted?(): void
}

/** Text to speech: PCM16 16 kHz chunks as soon as they are ready. */
export interface TtsEngine extends Engine {
  synthesize(text: string, signal: AbortSignal): AsyncIterable<Int16Array>
}

export interface LlmRequest {
  prompt: string
  system: string
  signal: AbortSignal
  /** Each generated text piece, in order. */
  onText: (text: string) => void
  maxTokens?: number
}
export interface LlmEngine extends Engine {
  generate(req: LlmRequest): Promise<string>
}

/** End-of-speech detection over a stream of PCM. */
export interface VadSession {
  /** Feed audio; returns true once speech has started and then ended (enough trailing silence). */
  push(pcm: Int16Array): boolean
  readonly speechDetected: boolean
  /**
   * Engines that decide off the caller's thread (SileroWorkerVad): resolves as soon as the end
   * of speech is found, which push() only reports on its next call. Race it to end the turn then.
   */
  readonly ended?: Promise<void>
  /** Frees the session's native state early when it is abandoned before it ended. */
  release?(): void
}
export interface VadEngine extends Engine {
  start(): VadSession
}
