// `mirrormesh models check`: is each configured model there, intact and of the right kind?
// - present, with no empty model file;
// - when <models dir>/models.lock.json lists it (it came from `models pull`): sizes and
//   sha256 match what was recorded at download (trust on first use, see manifest.ts);
// - LLM: a GGUF v2/v3 header, and the file as long as its tensor table says (gguf.ts);
// - sherpa: the kind is told by file names (as the engines do), then the model is loaded and
//   run once in a child process (probeSherpa): a wrong-kind or corrupt model makes
//   onnxruntime abort that process, never this one.
// Every problem becomes a report; nothing here throws.
import { existsSync } from 'node:fs'
import { open, stat } from 'node:fs/promises'
import path from 'node:path'
import { asrModelConfig } from '../pipeline/engines/asr-sherpa.js'
import { probeSherpa } from '@mirrormesh/speech'
import { ttsModelConfig } from '../pipeline/engines/tts-sherpa.js'
import { readGgufLayout } from './gguf.js'
import { formatBytes, hashFile, LOCK_FILE, lockEntryAt, MODEL_MANIFEST, readLock, type LockEntry, type ModelEngine, type ModelsLock } from './manifest.js'

export type ModelStatus = 'ok' | 'missing' | 'invalid'

export interface ModelReport {
  engine: ModelEngine
  /** The model folder or file ('' when LLM_MODEL is unset). */
  path: string
  status: ModelStatus
  /** What was found, or what is wrong. */
  detail: string
  /** What to do, when not ok. */
  fix?: string
  /** False only for an unset LLM_MODEL (the sherpa folders always have a configured name). */
  configured: boolean
}

export interface CheckModelsOptions {
  modelsDir: string
  asrDir: string
  ttsDir: string
  llmModel?: string
  /** sha256 the files listed in the lock (default true); sizes are always compared. */
  verifyHashes?: boolean
  /** Load sherpa models in a child process (default true). */
  probe?: boolean
  /** onnxruntime provider for the probe (default 'cpu'). */
  provider?: string
  probeTimeoutMs?: number
}

const msg = (err: unknown) => (err instanceof Error ? err.message : String(err))
const ENV: Record<ModelEngine, string> = { 'asr-sherpa': 'ASR_SHERPA_MODEL', 'tts-sherpa': 'TTS_SHERPA_MODEL', 'llm-gguf': 'LLM_MODEL', 'embedding-gguf': 'EMBEDDING_MODEL' }

/** How to get a good model at `target`: pull the default one (and point the setting at it) or copy one by hand. */
function fixFor(engine: ModelEngine, target: string, ctx: Ctx): string {
  const e = (target ? lockEntryAt(ctx.lock, ctx.modelsDir, target) : undefined) ?? MODEL_MANIFEST.find((m) => m.engine === engine)
  if (!e) return `put a model at ${target}`
  const dest = path.join(ctx.modelsDir, e.name)
  const force = existsSync(target) && path.resolve(target) === path.resolve(dest) ? ' --force' : ''
  const value = engine === 'llm-gguf' || engine === 'embedding-gguf' ? dest : e.name
  const point = path.resolve(target) === path.resolve(dest) ? '' : `, then set ${ENV[engine]}=${value}`
  const byHand = engine === 'llm-gguf' ? 'or point LLM_MODEL at another GGUF file' : `or copy an unpacked sherpa-onnx model into ${target} by hand`
  return `mirrormesh models pull ${e.id}${force}${point}; ${byHand}`
}

export async function checkModels(opts: CheckModelsOptions): Promise<ModelReport[]> {
  let lock: ModelsLock = { version: 1, models: {} }
  let lockNote = ''
  try {
    lock = await readLock(opts.modelsDir)
  } catch (err) {
    lockNote = `; ${LOCK_FILE} unreadable (${msg(err)}), not used`
  }
  const ctx = { ...opts, lock, lockNote }
  const guard = async (engine: ModelEngine, p: string, run: () => Promise<ModelReport>): Promise<ModelReport> => {
    try {
      return await run()
    } catch (err) {
      return { engine, path: p, status: 'invalid', detail: `check failed: ${msg(err)}`, configured: true }
    }
  }
  return [
    await guard('asr-sherpa', opts.asrDir, () => checkSherpa('asr', opts.asrDir, ctx)),
    await guard('tts-sherpa', opts.ttsDir, () => checkSherpa('tts', opts.ttsDir, ctx)),
    await guard('llm-gguf', opts.llmModel ?? '', () => checkLlm(opts.llmModel, ctx)),
  ]
}

type Ctx = CheckModelsOptions & { lock: ModelsLock; lockNote: string }

async function checkSherpa(stage: 'asr' | 'tts', dir: string, ctx: Ctx): Promise<ModelReport> {
  const engine: ModelEngine = stage === 'asr' ? 'asr-sherpa' : 'tts-sherpa'
  const fallback = stage === 'asr' ? 'pocketsphinx' : 'espeak-ng'
  const entry = lockEntryAt(ctx.lock, ctx.modelsDir, dir)
  const fix = fixFor(engine, dir, ctx)
  const report = (status: ModelStatus, detail: string): ModelReport =>
    ({ engine, path: dir, status, detail: status === 'ok' ? detail : `${detail} → fallback: ${fallback}`, ...(status === 'ok' ? {} : { fix }), configured: true })

  if (!existsSync(dir)) return report('missing', 'no model folder')
  let picked: { kind: string; config: Record<string, unknown> }
  try {
    if (stage === 'asr') {
      const { kind, modelConfig } = asrModelConfig(dir)
      picked = { kind, config: modelConfig }
    } else {
      const { kind, model } = ttsModelConfig(dir)
      picked = { kind, config: model }
    }
  } catch (err) {
    return report('invalid', msg(err))
  }
  for (const file of pathsIn(picked.config, dir)) {
    const st = await stat(file)
    if (st.isFile() && st.size === 0) return report('invalid', `${path.relative(dir, file)} is empty (0 bytes)`)
  }
  const locked = entry ? await verifyLocked(entry, dir, ctx.verifyHashes ?? true) : undefined
  if (locked?.problem) return report('invalid', locked.problem)

  if (ctx.probe ?? true) {
    // The same settings the engines load with (asr-sherpa.ts / tts-sherpa.ts), one thread.
    const common = { numThreads: 1, provider: ctx.provider ?? 'cpu', debug: 0 }
    const config = stage === 'asr'
      ? { featConfig: { sampleRate: 16_000, featureDim: 80 }, modelConfig: { ...picked.config, ...common }, decodingMethod: 'greedy_search' }
      : { model: { ...picked.config, ...common }, maxNumSentences: 1 }
    try {
      await probeSherpa(stage, config, ctx.probeTimeoutMs)
    } catch (err) {
      return report('invalid', `${picked.kind} model does not load: ${msg(err)}`)
    }
  }
  return report('ok', `${picked.kind}${ctx.probe ?? true ? ', loads and runs' : ''}; ${lockSummary(locked)}${ctx.lockNote}`)
}

async function checkLlm(file: string | undefined, ctx: Ctx): Promise<ModelReport> {
  const engine: ModelEngine = 'llm-gguf'
  if (!file) {
    return { engine, path: '', status: 'missing', configured: false, detail: 'LLM_MODEL is not set: non-skill turns hear "unavailable"', fix: fixFor(engine, '', ctx) }
  }
  const entry = lockEntryAt(ctx.lock, ctx.modelsDir, file)
  const fix = fixFor(engine, file, ctx)
  const report = (status: ModelStatus, detail: string): ModelReport =>
    ({ engine, path: file, status, detail, ...(status === 'ok' ? {} : { fix }), configured: true })

  let size: number
  try {
    const st = await stat(file)
    if (!st.isFile()) return report('invalid', 'not a file')
    size = st.size
  } catch {
    return report('missing', 'LLM_MODEL points at a file that does not exist: the hub will not start')
  }
  if (size === 0) return report('invalid', 'empty file (0 bytes)')
  const head = Buffer.alloc(8)
  const fh = await open(file, 'r')
  const { bytesRead } = await fh.read(head, 0, 8, 0).finally(() => fh.close())
  if (bytesRead < 8 || head.toString('latin1', 0, 4) !== 'GGUF') {
    return report('invalid', `not a GGUF file (starts with "${head.subarray(0, bytesRead).toString('latin1').replace(/[^\x20-\x7e]/g, '.')}")`)
  }
  const version = head.readUInt32LE(4)
  if (version !== 2 && version !== 3) return report('invalid', `GGUF version ${version} is not supported (2 or 3)`)
  const locked = entry ? await verifyLocked(entry, file, ctx.verifyHashes ?? true) : undefined
  if (locked?.problem) return report('invalid', locked.problem)
  // A cut-short download keeps a good header: only the tensor table tells how long the file must be.
  const layout = await readGgufLayout(file)
  if ('problem' in layout) return report('invalid', `${path.basename(file)}: ${layout.problem}`)
  if (size < layout.requiredBytes) {
    return report('invalid', `${path.basename(file)} is truncated: ${formatBytes(size)}, its ${layout.tensors} tensors need ${formatBytes(layout.requiredBytes)} (${layout.requiredBytes - size} bytes missing)`)
  }
  return report('ok', `GGUF v${version}, ${formatBytes(size)}; ${lockSummary(locked)}${ctx.lockNote}`)
}

/** Compares the files a lock entry lists with what is on disk now. */
async function verifyLocked(entry: LockEntry, target: string, hashes: boolean): Promise<{ problem?: string; hashed: boolean }> {
  for (const [rel, want] of Object.entries(entry.files)) {
    const file = rel ? path.join(target, rel) : target
    const name = rel || path.basename(target)
    let size: number
    try {
      size = (await stat(file)).size
    } catch {
      return { problem: `${name} is missing (listed in ${LOCK_FILE})`, hashed: false }
    }
    if (size !== want.size) return { problem: `${name}: size ${size}, expected ${want.size} (truncated or replaced)`, hashed: false }
    if (hashes && (await hashFile(file)) !== want.sha256) {
      return { problem: `${name}: sha256 differs from ${LOCK_FILE} (corrupted or replaced)`, hashed: true }
    }
  }
  return { hashed: hashes }
}

function lockSummary(locked: { hashed: boolean } | undefined): string {
  if (!locked) return `not in ${LOCK_FILE}: sizes and checksums not verified`
  return locked.hashed ? `sizes and sha256 match ${LOCK_FILE}` : `sizes match ${LOCK_FILE} (sha256 not checked)`
}

/** Every string in a model config that is a path inside `dir`. */
function pathsIn(config: unknown, dir: string): string[] {
  if (typeof config === 'string') return config.startsWith(dir + path.sep) ? [config] : []
  if (config && typeof config === 'object') return Object.values(config).flatMap((v) => pathsIn(v, dir))
  return []
}
