// One health per pipeline stage (asr, tts, llm, vad) from its engines in fallback order:
// the first engine up: ok; a later one up: degraded (the fallback answers); none: down.
import type { Pipeline } from '../pipeline/index.js'
import type { ComponentHealth } from './health.js'

export const stages = ['asr', 'tts', 'llm', 'vad'] as const

export function stageHealth(p: Pipeline): Record<string, ComponentHealth> {
  // pipeline.health() is keyed `stage:engine`, in the order of pipeline.engines.
  const entries = Object.entries(p.health())
  const byStage = new Map<string, { name: string; state: ComponentHealth['state']; why?: string }[]>()
  entries.forEach(([key, state], i) => {
    const [stage = '?', name = key] = key.split(':')
    const engine = p.engines[i] as { downReason?: string; downDetail?: string; detail?: string } | undefined
    const list = byStage.get(stage) ?? []
    list.push({ name, state, why: engine?.downReason })
    byStage.set(stage, list)
  })
  const out: Record<string, ComponentHealth> = {}
  for (const stage of stages) {
    const list = byStage.get(stage)
    if (!list?.length) {
      out[stage] = stage === 'vad'
        ? { state: 'degraded', reason: 'Silero VAD not loaded: turns end on the node\'s end flag or the utterance limit' }
        : { state: 'down', reason: 'no engine' }
      continue
    }
    const down = list.filter((e) => e.state === 'down').map((e) => `${e.name}: ${e.why ?? 'down'}`)
    const first = list[0]!
    const up = list.find((e) => e.state !== 'down')
    if (first.state === 'ok') out[stage] = { state: 'ok' }
    else if (up) out[stage] = { state: 'degraded', reason: `${down.join(', ') || `${first.name}: degraded`}; ${up.name} answers` }
    else out[stage] = { state: 'down', reason: down.join(', ') }
  }
  return out
}
