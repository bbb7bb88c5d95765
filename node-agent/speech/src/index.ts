// Speech stages shared by hub and node: the stage interfaces, EngineError, FallbackChain,
// and the engines light enough for a mirror Pi (Silero VAD, pocketsphinx, espeak-ng) plus
// the child-process probe and worker host that load sherpa-onnx models safely. The hub adds
// its heavy engines (sherpa ASR/TTS models, the LLM) on top; nothing here loads them.
export * from './types.js'
export * from './vad-silero.js'
export * from './asr-pocketsphinx.js'
export * from './second-opinion.js'
export { PocketsphinxProcess, type PocketsphinxProcessOptions, type PocketsphinxOutput } from './pocketsphinx-process.js'
export * from './tts-espeak.js'
export { FallbackChain, reasonOf } from './fallback.js'
export { Unavailable } from './unavailable.js'
export { SherpaWorker, probeSherpa, type SherpaKind } from './sherpa-host.js'
export { which, abortReason, raceAbort, killGroup, TailBuffer } from './proc.js'
export { probeInChild, sherpaPath } from './child-probe.js'
export { SpawnHost, type SpawnFn, type SpawnHostOptions } from './spawn-host.js'
export * from './grammar-recognizer.js'
