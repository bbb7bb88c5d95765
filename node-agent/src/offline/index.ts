// Offline mode of the node: the hub's reply bundle, answers and recognition from it, the
// journal of offline turns replayed on recovery, and local timers. Wired in by agent.ts.
export * from './bundle-store.js'
export * from './journal.js'
export * from './recognizer.js'
export * from './responder.js'
export * from './timers.js'
export * from './replay.js'
