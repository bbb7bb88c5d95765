// `mirrormesh models pull`: download manifest models into the models dir.
// Each model is streamed to a temp folder inside the models dir while its sha256 and size
// are computed; checked against the manifest sha256 when there is one; unpacked there
// (tar.bz2 with the system `tar -xjf`, which needs bzip2 installed); checked by file names
// (sherpa) or header (GGUF); then renamed into place, so a failed or refused pull leaves
// nothing behind. The lock (models.lock.json) then records the download's and every
// installed file's sha256 and size: trust on first use, see manifest.ts.
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { createWriteStream, existsSync } from 'node:fs'
import { mkdir, mkdtemp, open, readdir, rename, rm, stat } from 'node:fs/promises'
import path from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { ReadableStream } from 'node:stream/web'
import { promisify } from 'node:util'
import { asrModelConfig } from '../pipeline/engines/asr-sherpa.js'
import { ttsModelConfig } from '../pipeline/engines/tts-sherpa.js'
import { digestTree, formatBytes, MODEL_MANIFEST, readLock, writeLock, type FileDigest, type ManifestEntry, type ModelEngine, type ModelsLock } from './manifest.js'

export interface PullOptions {
  modelsDir: string
  /** Manifest ids to pull (default: all). */
  ids?: string[]
  /** Replaces the built-in manifest (tests, local mirrors). */
  manifest?: readonly ManifestEntry[]
  fetchImpl?: typeof fetch
  /** Replace a model that is already installed. */
  force?: boolean
  /** A download that sends nothing for this long is abandoned (default 60 s). */
  idleTimeoutMs?: number
  log: (line: string) => void
}

export interface PullResult {
  id: string
  engine: ModelEngine
  /** Where the model is (or would have been) installed. */
  path: string
  status: 'installed' | 'present' | 'failed'
  detail: string
}

const msg = (err: unknown) => (err instanceof Error ? err.message : String(err))

/** Pulls each model in turn; a failure is reported in its result and the others still run. Throws on an unknown id. */
export async function pullModels(opts: PullOptions): Promise<PullResult[]> {
  const manifest = opts.manifest ?? MODEL_MANIFEST
  const unknown = (opts.ids ?? []).filter((id) => !manifest.some((e) => e.id === id))
  if (unknown.length) throw new Error(`unknown model id ${unknown.join(', ')}; known: ${manifest.map((e) => e.id).join(', ')}`)
  const entries = opts.ids?.length ? manifest.filter((e) => opts.ids!.includes(e.id)) : manifest
  await mkdir(opts.modelsDir, { recursive: true })
  const results: PullResult[] = []
  for (const entry of entries) results.push(await pullOne(entry, opts))
  return results
}

async function pullOne(entry: ManifestEntry, opts: PullOptions): Promise<PullResult> {
  const target = path.join(opts.modelsDir, entry.name)
  const result = (status: PullResult['status'], detail: string): PullResult => ({ id: entry.id, engine: entry.engine, path: target, status, detail })
  if (existsSync(target) && !opts.force) {
    const lock = await readLock(opts.modelsDir).catch(() => undefined)
    return result('present', lock?.models[entry.id] ? 'already installed' : 'already there (not from pull); --force replaces it')
  }
  let tmp: string
  try {
    tmp = await mkdtemp(path.join(opts.modelsDir, `.pull-${entry.id}-`))
  } catch (err) {
    return result('failed', `cannot write in ${opts.modelsDir}: ${msg(err)}`)
  }
  try {
    const file = path.join(tmp, 'download')
    const download = await fetchTo(entry, file, target, opts)
    if (entry.sha256 && download.sha256 !== entry.sha256.toLowerCase()) {
      throw new Error(`sha256 mismatch: got ${download.sha256}, the manifest expects ${entry.sha256}; refused, nothing was installed`)
    }
    const staged = entry.archive === 'tar.bz2' ? await unpack(file, tmp) : file
    await checkKind(entry, staged)
    const files = await digestTree(staged)
    // Into place: renames within one file system; a replaced model waits in tmp until the new one is there.
    const previous = path.join(tmp, 'previous')
    if (existsSync(target)) await rename(target, previous)
    try {
      await rename(staged, target)
    } catch (err) {
      if (existsSync(previous)) await rename(previous, target)
      throw err
    }
    const lock = await readLock(opts.modelsDir).catch((err): ModelsLock => {
      opts.log(`models.lock.json is unreadable (${msg(err)}): starting a new one`)
      return { version: 1, models: {} }
    })
    lock.models[entry.id] = { id: entry.id, engine: entry.engine, name: entry.name, url: entry.url, downloadedAt: new Date().toISOString(), download, files }
    await writeLock(opts.modelsDir, lock)
    opts.log(`${entry.id}: installed ${target} (sha256 ${download.sha256}${entry.sha256 ? ', matches the manifest' : ', recorded in models.lock.json'})`)
    return result('installed', `${formatBytes(download.size)} downloaded, sha256 ${download.sha256}`)
  } catch (err) {
    opts.log(`${entry.id}: FAILED: ${msg(err)}`)
    return result('failed', msg(err))
  } finally {
    await rm(tmp, { recursive: true, force: true })
  }
}

/** Streams the URL to `file`, logging progress every 5 %; returns its size and sha256. */
async function fetchTo(entry: ManifestEntry, file: string, target: string, opts: PullOptions): Promise<FileDigest> {
  const url = new URL(entry.url)
  const idle = new AbortController()
  const idleMs = opts.idleTimeoutMs ?? 60_000
  let timer = setTimeout(() => idle.abort(), idleMs)
  const touch = () => { clearTimeout(timer); timer = setTimeout(() => idle.abort(), idleMs) }
  try {
    let res: Response
    try {
      res = await (opts.fetchImpl ?? fetch)(url, { signal: idle.signal })
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause
      throw new Error(`cannot reach ${url.host} (${cause?.code ?? cause?.message ?? msg(err)}): are you online? models can also be copied by hand into ${target}`)
    }
    if (!res.ok || !res.body) throw new Error(`download of ${entry.url} failed: HTTP ${res.status} ${res.statusText}`)
    const length = Number(res.headers.get('content-length')) || 0
    const total = length || entry.sizeBytes
    const hash = createHash('sha256')
    let size = 0
    let shown = 0
    opts.log(`${entry.id}: downloading ${entry.url} (${length ? '' : '~'}${formatBytes(total)})`)
    try {
      await pipeline(Readable.fromWeb(res.body as ReadableStream<Uint8Array>), async function* (chunks: AsyncIterable<Buffer>) {
        for await (const chunk of chunks) {
          touch()
          hash.update(chunk)
          size += chunk.length
          const pct = Math.min(99, Math.floor((size * 100) / total / 5) * 5)
          if (pct > shown) {
            shown = pct
            opts.log(`${entry.id}: ${pct}% (${formatBytes(size)} of ${length ? '' : '~'}${formatBytes(total)})`)
          }
          yield chunk
        }
      }, createWriteStream(file))
    } catch (err) {
      throw new Error(`download of ${entry.url} broke off after ${formatBytes(size)}: ${idle.signal.aborted ? `nothing received for ${idleMs / 1000} s` : msg(err)}`)
    }
    if (length && size !== length) throw new Error(`download of ${entry.url} is truncated: ${size} of ${length} bytes`)
    return { size, sha256: hash.digest('hex') }
  } finally {
    clearTimeout(timer)
  }
}

/** Unpacks a .tar.bz2 into tmp/unpacked; a single top-level folder is stripped. */
async function unpack(file: string, tmp: string): Promise<string> {
  const out = path.join(tmp, 'unpacked')
  await mkdir(out)
  try {
    await promisify(execFile)('tar', ['-xjf', file, '-C', out, '--no-same-owner'], { maxBuffer: 1 << 20 })
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string }
    if (e.code === 'ENOENT') throw new Error('`tar` was not found: install tar and bzip2 (apt install tar bzip2)')
    throw new Error(`tar -xjf failed (${(e.stderr ?? e.message).trim().split('\n').slice(-2).join(' ')}); is bzip2 installed? (apt install bzip2)`)
  }
  const top = await readdir(out)
  if (top.length === 1 && (await stat(path.join(out, top[0]!))).isDirectory()) return path.join(out, top[0]!)
  return out
}

/** Refuses a download that is not what its engine loads (by file names or GGUF magic). */
async function checkKind(entry: ManifestEntry, staged: string): Promise<void> {
  if (entry.engine !== 'llm-gguf') {
    try {
      if (entry.engine === 'asr-sherpa') asrModelConfig(staged)
      else ttsModelConfig(staged)
    } catch (err) {
      throw new Error(`the archive is not a usable sherpa-onnx model (${msg(err).replace(staged, '<archive>')}); refused, nothing was installed`)
    }
  } else {
    const head = Buffer.alloc(4)
    const fh = await open(staged, 'r')
    await fh.read(head, 0, 4, 0).finally(() => fh.close())
    if (head.toString('latin1') !== 'GGUF') throw new Error(`${entry.url} is not a GGUF file; refused, nothing was installed`)
  }
}
