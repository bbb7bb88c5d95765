// The node's audio I/O: microphone sources, speaker sinks, wake word, and the listener
// that turns them into utterances.
export * from './source.js'
export * from './sink.js'
export * from './wakeword.js'
export * from './kws.js'
export * from './listener.js'
