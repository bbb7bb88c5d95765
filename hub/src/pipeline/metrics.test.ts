import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { fallbacksByStage, pipelineMetrics } from './metrics.js'

describe('fallbacksByStage (the hub heartbeat\'s `fallbacks`)', () => {
  it('sums mirrormesh_fallback_total over engines and reasons, per stage', async () => {
    const reg = new Registry()
    expect(await fallbacksByStage(reg)).toEqual({})
    const m = pipelineMetrics(reg)
    expect(await fallbacksByStage(reg)).toEqual({})
    m.fallback.inc({ stage: 'asr', from: 'sherpa', to: 'pocketsphinx', reason: 'model_missing' })
    m.fallback.inc({ stage: 'asr', from: 'sherpa', to: 'pocketsphinx', reason: 'model_missing' })
    m.fallback.inc({ stage: 'asr', from: 'pocketsphinx', to: 'none', reason: 'timeout' })
    m.fallback.inc({ stage: 'tts', from: 'sherpa', to: 'espeak', reason: 'model_missing' })
    expect(await fallbacksByStage(reg)).toEqual({ asr: 3, tts: 1 })
  })
})
