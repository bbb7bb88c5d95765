// The default model set `mirrormesh models pull` downloads, and the lock file that records
// what was downloaded.
//
// Checksums: every sha256 below is null. This project was written on a machine that could
// not reach GitHub or Hugging Face, so the real checksums could not be computed, and an
// invented one would be worse than none. Instead `pull` hashes what it downloads and
// records sha256 + size of the download and of every installed file in
// <models dir>/models.lock.json (trust on first use); `check` verifies against that lock.
// Whoever can fetch the files once may fill in `sha256` here: `pull` then refuses a download
// that does not match.
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { lstat, readdir, readFile } from 'node:fs/promises'
import path from 'node:path'
import { writeAtomic } from '@mirrormesh/broker'

export type ModelEngine = 'asr-sherpa' | 'tts-sherpa' | 'llm-gguf' | 'embedding-gguf'

export interface ManifestEntry {
  id: string
  engine: ModelEngine
  /** Folder (archives) or file name inside the models dir. */
  name: string
  url: string
  /** Approximate download size, for progress when the server sends no length. */
  sizeBytes: number
  /** Expected sha256 of the download; null: recorded on first download (see above). */
  sha256: string | null
  /** 'tar.bz2' is unpacked with the system `tar -xjf` (needs bzip2); a single top folder is stripped. */
  archive: 'tar.bz2' | 'none'
  license: string
  note: string
}

export const MANIFEST_CHECKSUM_NOTE =
  'checksums are recorded on first download (models.lock.json); the manifest has none because they could not be fetched when it was written, and an invented one would be worse than none'

export const MODEL_MANIFEST: readonly ManifestEntry[] = [
  {
    id: 'whisper-tiny.en',
    engine: 'asr-sherpa',
    name: 'asr', // the default ASR_SHERPA_MODEL
    url: 'https://github.com/k2-fsa/sherpa-onnx/releases/download/asr-models/sherpa-onnx-whisper-tiny.en.tar.bz2',
    sizeBytes: 113_000_000,
    sha256: null,
    archive: 'tar.bz2',
    license: 'MIT (OpenAI Whisper)',
    note: 'English Whisper tiny for sherpa-onnx (offline); the int8 encoder/decoder are used',
  },
  {
    id: 'piper-en_US-amy-low',
    engine: 'tts-sherpa',
    name: 'tts', // the default TTS_SHERPA_MODEL
    url: 'https://github.com/k2-fsa/sherpa-onnx/releases/download/tts-models/vits-piper-en_US-amy-low.tar.bz2',
    sizeBytes: 64_000_000,
    sha256: null,
    archive: 'tar.bz2',
    license: 'MIT (rhasspy/piper-voices); see MODEL_CARD in the folder for the voice data',
    note: 'English Piper VITS voice, 16 kHz, with espeak-ng-data',
  },
  {
    id: 'qwen2.5-0.5b-instruct',
    engine: 'llm-gguf',
    name: 'qwen2.5-0.5b-instruct-q4_k_m.gguf',
    url: 'https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/main/qwen2.5-0.5b-instruct-q4_k_m.gguf',
    sizeBytes: 491_000_000,
    sha256: null,
    archive: 'none',
    license: 'Apache-2.0',
    note: 'small instruct LLM, Q4_K_M; set LLM_MODEL to its path',
  },
  {
    id: 'bge-small-en-v1.5',
    engine: 'embedding-gguf',
    name: 'bge-small-en-v1.5-q8_0.gguf',
    url: 'https://huggingface.co/CompendiumLabs/bge-small-en-v1.5-gguf/resolve/main/bge-small-en-v1.5-q8_0.gguf',
    sizeBytes: 36_800_000,
    sha256: null,
    archive: 'none',
    license: 'MIT',
    note: 'English embedding model (384 dims) for memory recall by meaning; set EMBEDDING_MODEL to its path',
  },
]

// ---------- lock file ----------

export const LOCK_FILE = 'models.lock.json'

export interface FileDigest { size: number; sha256: string }

export interface LockEntry {
  id: string
  engine: ModelEngine
  /** Folder or file name inside the models dir. */
  name: string
  url: string
  downloadedAt: string
  download: FileDigest
  /** Installed files, by path relative to `name` ('' for a single file). */
  files: Record<string, FileDigest>
}

export interface ModelsLock { version: 1; models: Record<string, LockEntry> }

/** The lock, or an empty one when there is none; throws on an unreadable or malformed file. */
export async function readLock(modelsDir: string): Promise<ModelsLock> {
  let text: string
  try {
    text = await readFile(path.join(modelsDir, LOCK_FILE), 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, models: {} }
    throw err
  }
  const lock = JSON.parse(text) as ModelsLock
  if (lock?.version !== 1 || typeof lock.models !== 'object' || lock.models === null) throw new Error(`${LOCK_FILE} is not a version 1 lock file`)
  return lock
}

/** Writes the lock atomically and durably (temp file, fsync, rename). */
export async function writeLock(modelsDir: string, lock: ModelsLock): Promise<void> {
  await writeAtomic(path.join(modelsDir, LOCK_FILE), JSON.stringify(lock, null, 2) + '\n')
}

/** The lock entry installed at `target` (a folder or file path), if any. */
export function lockEntryAt(lock: ModelsLock, modelsDir: string, target: string): LockEntry | undefined {
  const want = path.resolve(target)
  return Object.values(lock.models).find((e) => path.resolve(modelsDir, e.name) === want)
}

export async function hashFile(file: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/** Size and sha256 of a file, or of every regular file under a folder (relative paths, '/'-separated). */
export async function digestTree(target: string): Promise<Record<string, FileDigest>> {
  const out: Record<string, FileDigest> = {}
  const walk = async (abs: string, rel: string): Promise<void> => {
    const st = await lstat(abs) // links are neither followed nor recorded
    if (st.isDirectory()) {
      for (const name of (await readdir(abs)).sort()) await walk(path.join(abs, name), rel ? `${rel}/${name}` : name)
    } else if (st.isFile()) {
      out[rel] = { size: st.size, sha256: await hashFile(abs) }
    }
  }
  await walk(target, '')
  return out
}

export function formatBytes(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} kB` : `${n} B`
}
