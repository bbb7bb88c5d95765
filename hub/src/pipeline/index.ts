// Builds the pipeline from config: engines in fallback order, skills, and the turn
// manager that runs each turn as stages: router → listen → reply → speak (see turns.ts).
// Engines that cannot load are logged once with the reason and stand in the chain as
// Unavailable, so turns fall through to the next engine and the step is counted.
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { availableParallelism } from 'node:os'
import type { Registry } from 'prom-client'
import { Gauge } from 'prom-client'
import type { Logger } from '@mirrormesh/broker'
import type { HubConfig } from '../config.js'
import { DEFAULT_HUB_MIN_MARGIN, OfflineRecognizer, PocketsphinxAsr, grammarWords, jsgfFromPhrases, readDictionaryWords, writeGrammarDictionary } from '@mirrormesh/speech'
import { actsOn, earlyVeto } from './early-end.js'
import { SherpaAsr } from './engines/asr-sherpa.js'
import { LlamaLlm } from './engines/llm-llama.js'
import { EspeakTts } from '@mirrormesh/speech'
import { SherpaTts } from './engines/tts-sherpa.js'
import { SileroWorkerVad } from '@mirrormesh/speech'
import { FallbackChain, reasonOf } from '@mirrormesh/speech'
import { pipelineMetrics } from './metrics.js'
import { SkillMatcher, builtinSkills, numberPhrases } from './skills.js'
import { defaultSpeakerOptions } from './speaker.js'
import { TurnManager, type TurnIo } from './turns.js'
import type { AsrEngine, Engine, LlmEngine, TtsEngine, VadEngine } from '@mirrormesh/speech'
import { Unavailable, SpawnHost } from '@mirrormesh/speech'

export { TurnManager, phrasesSpoken } from './turns.js'
export { SkillMatcher, builtinSkills } from './skills.js'

export interface Pipeline {
  turns: TurnManager
  engines: Engine[]
  llmConfigured: boolean
  llm: LlmEngine
  health(): Record<string, 'ok' | 'degraded' | 'down'>
  close(): Promise<void>
}

export async function createPipeline(config: HubConfig, io: TurnIo, registry: Registry, log: Logger): Promise<Pipeline> {
  const plog = log.child({ component: 'pipeline' })
  const metrics = pipelineMetrics(registry)
  const rooms = config.roomList
  const skills = new SkillMatcher(builtinSkills(), { room: rooms, number: numberPhrases })

  const tryLoad = async <E>(name: string, load: () => Promise<E>): Promise<E | Unavailable> => {
    try {
      return await load()
    } catch (err) {
      plog.warn({ engine: name, reason: reasonOf(err), err: (err as Error).message }, 'engine not available; its fallback will be used')
      return new Unavailable(name, reasonOf(err), (err as Error).message)
    }
  }

  let vad: VadEngine | undefined
  try {
    // In a worker thread: native inference stays off the thread that runs the embedded broker.
    vad = await SileroWorkerVad.load({ endSilenceMs: config.vadEndSilenceMs })
  } catch (err) {
    plog.warn({ err: (err as Error).message }, 'Silero VAD not available: turns end on the node\'s end flag or the utterance limit')
  }

  // The pocketsphinx fallback only knows a grammar: the skills' phrases plus configured extras.
  const grammarPath = join(config.stateDir, 'asr-grammar.gram')
  // A word the dictionary lacks makes pocketsphinx exit at once, so such phrases are dropped (and logged).
  let dictionary: Set<string> | undefined
  try {
    dictionary = readDictionaryWords()
  } catch {
    dictionary = undefined // pocketsphinx not installed: the engine reports itself down
  }
  const dropped: string[] = []
  const phrases = skills.phrases(config.asrGrammarExtra.split('|').filter(Boolean))
  let jsgf: string
  try {
    await mkdir(config.stateDir, { recursive: true })
    jsgf = jsgfFromPhrases(phrases, { dictionary, onDropped: (p: string) => dropped.push(p) })
    await writeFile(grammarPath, jsgf)
  } catch (err) {
    await vad?.close?.() // the voice feature fails (disk full, read-only state dir): no VAD worker left behind
    throw err
  }
  if (dropped.length) plog.warn({ dropped: dropped.slice(0, 20), count: dropped.length }, 'phrases left out of the ASR grammar: words not in the pocketsphinx dictionary')

  // pocketsphinx / espeak-ng / sox are spawned from a worker thread: a spawn blocks its thread
  // until the child has exec'd (30-70 ms on a loaded 2-core hub), and this thread runs the broker.
  const spawnHost = new SpawnHost()
  const sherpaAsrDir = join(config.modelsDir, config.asrSherpaModel)
  // A phrase that changes something (a light, a timer, the volume) needs ASR_ACTION_MIN_MARGIN.
  const acts = actsOn(skills)
  const asr: AsrEngine[] = [
    await tryLoad('sherpa', () => SherpaAsr.load({ modelDir: sherpaAsrDir, numThreads: config.sherpaThreads, provider: config.sherpaProvider, log: plog })),
    // ASR_SECOND_OPINION: a phone loop checks every grammar result; untrusted ones are decoded open-vocabulary for the LLM.
    new PocketsphinxAsr({ grammarPath, log: plog, spawn: spawnHost.spawn, secondOpinion: config.asrSecondOpinion ? { openVocabulary: true, actionMinMargin: config.asrActionMinMargin, acts } : false }),
  ]
  // Online early end of turn: the offline recogniser's endpoint on the skills' grammar (listen.ts).
  let early: { recognizer: OfflineRecognizer; answersEarly: (p: string) => boolean } | undefined
  if (config.earlyEndSilenceMs > 0) {
    // The grammar's words only: its probe decoders start in ~30 ms instead of ~150 ms. The probe
    // trusts a phrase by the hub's own margin: a stricter one only sent turns the final decode
    // answers anyway to the end flag, ~0.5 s later.
    let dictPath: string | undefined = join(config.stateDir, 'asr-grammar.dict')
    await writeGrammarDictionary([...grammarWords(jsgf)], dictPath).catch(() => { dictPath = undefined })
    early = {
      recognizer: new OfflineRecognizer({ grammarPath, ...(dictPath ? { dictPath } : {}), endpointSilenceMs: config.earlyEndSilenceMs, endpointRetrySilenceMs: config.earlyEndRetryMs, log: plog, spawn: spawnHost.spawn, secondOpinion: config.asrSecondOpinion ? { minMargin: DEFAULT_HUB_MIN_MARGIN, actionMinMargin: config.asrActionMinMargin, acts } : false }),
      answersEarly: earlyVeto(skills, phrases),
    }
  }
  const tts: TtsEngine[] = [
    await tryLoad('sherpa', () => SherpaTts.load({ modelDir: join(config.modelsDir, config.ttsSherpaModel), numThreads: config.sherpaThreads, provider: config.sherpaProvider, log: plog })),
    new EspeakTts({ voice: config.espeakVoice, speedWpm: config.espeakSpeedWpm, spawn: spawnHost.spawn }),
  ]
  let llm: LlmEngine
  if (config.llmModel) {
    const l = new LlamaLlm({ modelPath: config.llmModel, maxThreads: config.llmMaxThreads || Math.max(1, availableParallelism() - 1), gpuLayers: config.llmGpuLayers, contextSize: config.llmContextSize, timeoutMs: config.llmTimeoutMs, log: plog })
    void l.start()
    llm = l
  } else {
    llm = new Unavailable('llama', 'not_configured', 'LLM_MODEL is not set')
  }

  const turns = new TurnManager({
    vad,
    asr: new FallbackChain('asr', asr, metrics, plog),
    tts: new FallbackChain('tts', tts, metrics, plog),
    llm: new FallbackChain('llm', [llm], metrics, plog),
    ...(early ? { early } : {}),
  }, skills, io, {
    earlyEndResumeMs: config.earlyEndResumeMs,
    maxConcurrent: config.maxConcurrentSessions,
    queueMax: config.queueMax,
    maxUtteranceMs: config.maxUtteranceMs,
    turnTimeoutMs: config.turnTimeoutMs,
    persona: config.persona,
    llmMaxTokens: config.llmMaxTokens,
    ...defaultSpeakerOptions,
  }, metrics, plog)

  const engines: Engine[] = [...(vad ? [vad] : []), ...asr, ...tts, llm]
  const labelled = (e: Engine, stage: string) => `${stage}:${e.name}`
  const stageOf = new Map<Engine, string>([...asr.map((e) => [e, 'asr'] as const), ...tts.map((e) => [e, 'tts'] as const), [llm, 'llm'] as const])
  if (vad) stageOf.set(vad, 'vad')
  const value = { ok: 1, degraded: 0.5, down: 0 } as const
  metrics.setHealthSource(() => engines.map((e) => [labelled(e, stageOf.get(e) ?? '?'), value[e.health()]]))
  if (config.vramCapMb > 0 || config.llmGpuLayers !== 0) {
    new Gauge({ name: 'mirrormesh_vram_bytes', help: 'GPU memory used/total as the LLM library reports it, and the configured cap', labelNames: ['kind'], registers: [registry],
      async collect() {
        const v = (llm as { vram?: () => Promise<{ usedBytes: number; totalBytes: number } | undefined> }).vram
        const state = v ? await v.call(llm).catch(() => undefined) : undefined
        if (state) { this.set({ kind: 'used' }, state.usedBytes); this.set({ kind: 'total' }, state.totalBytes) }
        if (config.vramCapMb > 0) this.set({ kind: 'cap' }, config.vramCapMb * 1048576)
      } })
  }
  plog.info({ asr: asr.map((e) => `${e.name}:${e.health()}`), tts: tts.map((e) => `${e.name}:${e.health()}`), llm: `${llm.name}:${llm.health()}`, vad: vad ? 'silero' : 'none', earlyEnd: early ? `${config.earlyEndSilenceMs} ms` : 'off', grammarPhrases: skills.phrases().length }, 'pipeline ready')
  return {
    turns, engines, llm,
    health: () => Object.fromEntries(engines.map((e) => [labelled(e, stageOf.get(e) ?? '?'), e.health()])), llmConfigured: Boolean(config.llmModel),
    async close() {
      turns.close()
      await Promise.all(engines.map(async (e) => e.close?.().catch(() => undefined)))
      await spawnHost.close()
    },
  }
}
