// `mirrormesh models check` and `mirrormesh models pull`: the hub's voice models (sherpa-onnx
// ASR/TTS folders and the LLM GGUF) checked where the hub config points, or downloaded.
import path from 'node:path'
import { ConfigError } from '@mirrormesh/broker'
import type { HubConfig, ModelReport } from '@mirrormesh/hub' // types only: erased at build time
import { importHub } from './hub.js'
import { renderTable } from './table.js'

type HubModule = typeof import('@mirrormesh/hub')

interface Loaded { hub: HubModule; cfg: HubConfig; llmModel: string | undefined }

/**
 * The hub package (imported on demand: a mirror node installs without it) and its config.
 * An LLM_MODEL that does not exist is a model problem, reported by `check`, not a reason to stop.
 */
async function loadHub(modelsDir: string | undefined): Promise<Loaded | { problems: string[] }> {
  const hub = await importHub('models')
  const env: Record<string, string | undefined> = { ...process.env, ...(modelsDir ? { MIRRORMESH_MODELS_DIR: modelsDir } : {}) }
  try {
    const cfg = hub.loadHubConfig(env)
    return { hub, cfg, llmModel: cfg.llmModel }
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    if (!err.problems.every((p) => p.startsWith('LLM_MODEL:'))) return { problems: err.problems }
    return { hub, cfg: hub.loadHubConfig({ ...env, LLM_MODEL: undefined }), llmModel: env.LLM_MODEL }
  }
}

function printProblems(cmd: string, problems: string[]): number {
  process.stderr.write(`mirrormesh ${cmd}: invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}\n`)
  return 1
}

const FALLBACK: Record<string, string> = { 'asr-sherpa': 'pocketsphinx', 'tts-sherpa': 'espeak-ng' }

/** A configured model that keeps the hub from working as configured: invalid, or an LLM_MODEL file that is not there. */
const failing = (r: ModelReport) => r.status === 'invalid' || (r.engine === 'llm-gguf' && r.configured && r.status === 'missing')

export async function modelsCheckCommand(opts: { modelsDir?: string; hashes?: boolean; json?: boolean }): Promise<number> {
  const loaded = await loadHub(opts.modelsDir)
  if ('problems' in loaded) return printProblems('models check', loaded.problems)
  const { hub, cfg } = loaded
  const reports = await hub.checkModels({
    modelsDir: cfg.modelsDir,
    asrDir: path.join(cfg.modelsDir, cfg.asrSherpaModel),
    ttsDir: path.join(cfg.modelsDir, cfg.ttsSherpaModel),
    ...(loaded.llmModel ? { llmModel: loaded.llmModel } : {}),
    verifyHashes: opts.hashes ?? true,
    provider: cfg.sherpaProvider,
  })
  const ok = !reports.some(failing)
  if (opts.json) {
    process.stdout.write(JSON.stringify({ ok, modelsDir: cfg.modelsDir, lockFile: path.join(cfg.modelsDir, hub.LOCK_FILE), reports }, null, 2) + '\n')
    return ok ? 0 : 1
  }
  process.stdout.write(`models dir: ${cfg.modelsDir}\n\n`)
  process.stdout.write(renderTable(['ENGINE', 'PATH', 'STATUS', 'DETAIL'], reports.map((r) => [r.engine, r.path || '-', r.status, r.detail])))
  const fixes = reports.filter((r) => r.fix)
  if (fixes.length) process.stdout.write(`\n${fixes.map((r) => `fix ${r.engine}: ${r.fix}`).join('\n')}\n`)
  if (reports.some((r) => r.status === 'missing' && FALLBACK[r.engine])) {
    process.stdout.write(`\nmissing sherpa models are fine: the hub uses the fallback (ASR: ${FALLBACK['asr-sherpa']}, TTS: ${FALLBACK['tts-sherpa']})\n`)
  }
  process.stdout.write(`\nnote: ${hub.MANIFEST_CHECKSUM_NOTE}\n`)
  process.stdout.write(ok ? '\nOK\n' : '\nFAILED: a configured model is invalid or missing\n')
  return ok ? 0 : 1
}

export async function modelsPullCommand(ids: string[], opts: { modelsDir?: string; force?: boolean; list?: boolean }): Promise<number> {
  const loaded = await loadHub(opts.modelsDir)
  if ('problems' in loaded) return printProblems('models pull', loaded.problems)
  const { hub, cfg } = loaded
  if (opts.list) {
    process.stdout.write(renderTable(['ID', 'ENGINE', 'INSTALLS AS', 'SIZE', 'LICENSE'],
      hub.MODEL_MANIFEST.map((e) => [e.id, e.engine, e.name, `~${hub.formatBytes(e.sizeBytes)}`, e.license])))
    process.stdout.write(`\nnote: ${hub.MANIFEST_CHECKSUM_NOTE}\n`)
    return 0
  }
  const unknown = ids.filter((id) => !hub.MODEL_MANIFEST.some((e) => e.id === id))
  if (unknown.length) {
    process.stderr.write(`mirrormesh models pull: unknown model id ${unknown.join(', ')}; known: ${hub.MODEL_MANIFEST.map((e) => e.id).join(', ')}\n`)
    return 1
  }
  process.stdout.write(`models dir: ${cfg.modelsDir}\nnote: ${hub.MANIFEST_CHECKSUM_NOTE}\n`)
  let results
  try {
    results = await hub.pullModels({ modelsDir: cfg.modelsDir, ids, force: opts.force, log: (line) => process.stdout.write(`${line}\n`) })
  } catch (err) {
    process.stderr.write(`mirrormesh models pull: ${(err as Error).message}\n`)
    return 1
  }
  process.stdout.write(`\n${renderTable(['ID', 'STATUS', 'PATH', 'DETAIL'], results.map((r) => [r.id, r.status, r.path, r.detail]))}`)
  const usable = results.filter((r) => r.status !== 'failed')
  if (usable.length) {
    // The settings that make the hub use what was pulled (the defaults need none of them but the LLM).
    const env = [`MIRRORMESH_MODELS_DIR=${cfg.modelsDir}`]
    for (const r of usable) {
      const name = path.relative(cfg.modelsDir, r.path)
      if (r.engine === 'asr-sherpa' && name !== cfg.asrSherpaModel) env.push(`ASR_SHERPA_MODEL=${name}`)
      if (r.engine === 'tts-sherpa' && name !== cfg.ttsSherpaModel) env.push(`TTS_SHERPA_MODEL=${name}`)
      if (r.engine === 'llm-gguf' && path.resolve(loaded.llmModel ?? '') !== r.path) env.push(`LLM_MODEL=${r.path}`)
      if (r.engine === 'embedding-gguf' && path.resolve(cfg.embeddingModel ?? '') !== r.path) env.push(`EMBEDDING_MODEL=${r.path}`)
    }
    process.stdout.write(`\nto use them, the hub needs:\n${env.map((e) => `  ${e}`).join('\n')}\nthen: mirrormesh models check\n`)
  }
  return results.some((r) => r.status === 'failed') ? 1 : 0
}
