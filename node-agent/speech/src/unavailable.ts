// Stands in the chain for an engine that could not load (model missing, not
// configured), so every turn counts the step past it with the reason.
import type { AsrEngine, AsrSession, EngineHealth, LlmEngine, TtsEngine } from './types.js'
import { EngineError } from './types.js'

export class Unavailable implements AsrEngine, TtsEngine, LlmEngine {
  constructor(readonly name: string, readonly downReason: string, readonly detail = '') {}
  health(): EngineHealth { return 'down' }
  start(): AsrSession { throw new EngineError(this.downReason, `${this.name}: ${this.detail || this.downReason}`) }
  // eslint-disable-next-line require-yield
  async *synthesize(): AsyncIterable<Int16Array> { throw new EngineError(this.downReason, `${this.name}: ${this.detail || this.downReason}`) }
  async generate(): Promise<string> { throw new EngineError(this.downReason, `${this.name}: ${this.detail || this.downReason}`) }
}
