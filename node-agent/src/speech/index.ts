// Speech engines light enough for a mirror Pi, shared with the hub (which adds the
// heavy ones: sherpa ASR/TTS models, the LLM).
export * from './types.js'
export * from './vad-silero.js'
export * from './asr-pocketsphinx.js'
export * from './tts-espeak.js'
export { which, abortReason, raceAbort, TailBuffer } from './proc.js'
export { probeInChild, sherpaPath } from './child-probe.js'
