// Microphone-side audio: every source is an async iterable of 20 ms frames (320 samples of
// 16 kHz mono PCM16). Frames are fresh, aligned Int16Arrays the consumer may keep.
import { spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import type { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { TailBuffer, which } from '@mirrormesh/speech'

export const SAMPLE_RATE = 16_000
export const FRAME_SAMPLES = 320
export const FRAME_MS = 20

export type AudioSource = AsyncIterable<Int16Array>

export class AudioSourceError extends Error {
  override readonly name = 'AudioSourceError'
  constructor(readonly reason: 'not_installed' | 'device_missing' | 'crashed' | 'bad_format' | 'not_found', message: string) {
    super(message)
  }
}

/** Re-chunk a byte stream into whole frames (a trailing partial frame is zero-padded). */
export async function* framesFromBytes(chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, opts: { padLast?: boolean } = {}): AsyncGenerator<Int16Array> {
  const frameBytes = FRAME_SAMPLES * 2
  let buf = Buffer.alloc(0)
  for await (const chunk of chunks) {
    buf = buf.length ? Buffer.concat([buf, chunk]) : Buffer.from(chunk)
    let off = 0
    for (; off + frameBytes <= buf.length; off += frameBytes) yield pcmFrom(buf, off, FRAME_SAMPLES)
    buf = buf.subarray(off)
  }
  if (buf.length >= 2 && opts.padLast !== false) {
    const f = new Int16Array(FRAME_SAMPLES)
    f.set(pcmFrom(buf, 0, buf.length >> 1))
    yield f
  }
}

function pcmFrom(buf: Buffer, off: number, samples: number): Int16Array {
  const out = new Int16Array(samples)
  for (let i = 0; i < samples; i++) out[i] = buf.readInt16LE(off + i * 2)
  return out
}

/** Raw PCM16LE 16 kHz mono from any readable byte stream. */
export function streamSource(readable: Readable | AsyncIterable<Uint8Array>): AudioSource {
  return framesFromBytes(readable as AsyncIterable<Uint8Array>)
}

/**
 * Raw PCM16LE 16 kHz mono on stdin (e.g. `arecord … | mirrormesh agent --audio-stdin`). The
 * agent stops by aborting `signal` and destroying stdin (an open pipe would keep the process
 * alive): the stream then reports a premature close, which is that stop, not a microphone error.
 */
export function stdinSource(signal?: AbortSignal, stdin: Readable = process.stdin): AudioSource {
  return framesFromBytes(untilAborted(stdin, signal))
}

async function* untilAborted(readable: Readable, signal: AbortSignal | undefined): AsyncGenerator<Uint8Array> {
  try {
    for await (const chunk of readable as AsyncIterable<Uint8Array>) yield chunk
  } catch (err) {
    if (signal?.aborted && (err as NodeJS.ErrnoException)?.code === 'ERR_STREAM_PREMATURE_CLOSE') return
    throw err
  }
}

export interface WavInfo {
  /** 1 = integer PCM (3 = float, …). */
  format: number
  sampleRate: number
  channels: number
  bitsPerSample: number
  /** Byte range of the sample data. */
  dataOffset: number
  dataBytes: number
}

/** Parse a RIFF/WAVE header (PCM or WAVE_FORMAT_EXTENSIBLE). Throws AudioSourceError('bad_format'). */
export function parseWav(buf: Buffer): WavInfo {
  if (buf.length < 12 || buf.toString('ascii', 0, 4) !== 'RIFF' || buf.toString('ascii', 8, 12) !== 'WAVE') {
    throw new AudioSourceError('bad_format', 'not a RIFF/WAVE file')
  }
  let off = 12
  let fmt: { format: number; channels: number; sampleRate: number; bits: number } | undefined
  while (off + 8 <= buf.length) {
    const id = buf.toString('ascii', off, off + 4)
    const size = buf.readUInt32LE(off + 4)
    const body = off + 8
    if (id === 'fmt ') {
      let format = buf.readUInt16LE(body)
      if (format === 0xfffe && size >= 26) format = buf.readUInt16LE(body + 24) // extensible: sub-format GUID starts with the tag
      fmt = { format, channels: buf.readUInt16LE(body + 2), sampleRate: buf.readUInt32LE(body + 4), bits: buf.readUInt16LE(body + 14) }
    } else if (id === 'data') {
      if (!fmt) throw new AudioSourceError('bad_format', 'WAV data chunk before fmt chunk')
      // Streams written by `arecord`/`sox -` carry 0 or 0xFFFFFFFF as a placeholder size.
      const dataBytes = size === 0 || size === 0xffffffff || body + size > buf.length ? buf.length - body : size
      return { format: fmt.format, sampleRate: fmt.sampleRate, channels: fmt.channels, bitsPerSample: fmt.bits, dataOffset: body, dataBytes: dataBytes & ~1 }
    }
    off = body + size + (size & 1)
  }
  throw new AudioSourceError('bad_format', 'WAV file has no data chunk')
}

export interface WavFileOptions {
  /** Pace frames at 20 ms each, like a microphone (default false: as fast as consumed). */
  realtime?: boolean
  signal?: AbortSignal
}

/**
 * Frames from a .wav file (must be PCM16 16 kHz mono; convert with
 * `sox in.wav -r 16000 -c 1 -b 16 out.wav`) or a headerless .pcm/.raw file of the same.
 */
export async function* wavFileSource(file: string, opts: WavFileOptions = {}): AsyncGenerator<Int16Array> {
  let buf: Buffer
  try {
    buf = await readFile(file)
  } catch (err) {
    throw new AudioSourceError('not_found', `audio file ${file}: ${(err as Error).message}`)
  }
  let data = buf
  if (buf.length >= 4 && buf.toString('ascii', 0, 4) === 'RIFF') {
    const info = parseWav(buf)
    const fmtOk = info.format === 1 && info.sampleRate === SAMPLE_RATE && info.channels === 1 && info.bitsPerSample === 16
    if (!fmtOk) {
      throw new AudioSourceError(
        'bad_format',
        `${file}: need 16-bit 16000 Hz mono PCM, got format ${info.format} ${info.bitsPerSample}-bit ${info.sampleRate} Hz ${info.channels} ch` +
          ` (convert: sox "${file}" -r 16000 -c 1 -b 16 -e signed out.wav)`,
      )
    }
    data = buf.subarray(info.dataOffset, info.dataOffset + info.dataBytes)
  } else if (!/\.(pcm|raw|s16|s16le)$/i.test(file)) {
    throw new AudioSourceError('bad_format', `${file}: not a WAV file (headerless PCM must be named .pcm or .raw)`)
  }
  const t0 = performance.now()
  let n = 0
  for await (const frame of framesFromBytes([data])) {
    if (opts.signal?.aborted) return
    if (opts.realtime) {
      const due = t0 + n * FRAME_MS - performance.now()
      if (due > 0) await sleep(due, undefined, { signal: opts.signal }).catch(() => undefined)
      if (opts.signal?.aborted) return
    }
    n++
    yield frame
  }
}

export interface ArecordOptions {
  /** ALSA device, e.g. 'default', 'plughw:1,0'. */
  device?: string
  signal?: AbortSignal
  /** Executable (default 'arecord'); tests substitute a script. */
  bin?: string
  /** First restart delay; doubles up to maxBackoffMs (defaults 200 ms, 5 s). */
  backoffMs?: number
  maxBackoffMs?: number
  /** Called before each restart with the reason and the delay. */
  onRestart?: (info: { reason: string; delayMs: number; restarts: number }) => void
}

/**
 * Live microphone through `arecord -D <device> -q -t raw -f S16_LE -r 16000 -c 1`.
 * Throws AudioSourceError at once when arecord is missing, or when the first start fails
 * before any audio (bad device: the message carries arecord's reason). After audio has
 * flowed, an exiting arecord (USB mic unplugged, xrun crash) is restarted with backoff until
 * `signal` aborts; the iterator then ends.
 */
export async function* arecordSource(opts: ArecordOptions = {}): AsyncGenerator<Int16Array> {
  const binName = opts.bin ?? 'arecord'
  const bin = which(binName)
  if (!bin) throw new AudioSourceError('not_installed', `${binName} not found (apt install alsa-utils)`)
  const device = opts.device ?? 'default'
  const args = ['-D', device, '-q', '-t', 'raw', '-f', 'S16_LE', '-r', String(SAMPLE_RATE), '-c', '1']
  let everAudio = false
  let restarts = 0
  let delay = opts.backoffMs ?? 200
  while (!opts.signal?.aborted) {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    const err = new TailBuffer()
    child.stderr.on('data', (b: Buffer) => err.push(b))
    const kill = (): void => void child.kill('SIGKILL')
    opts.signal?.addEventListener('abort', kill, { once: true })
    const exited = new Promise<string>((resolve) => {
      child.on('error', (e) => resolve(e.message))
      child.on('close', (code, sig) => resolve(`exit ${code ?? sig}`))
    })
    let got = 0
    try {
      for await (const frame of framesFromBytes(child.stdout, { padLast: false })) {
        got++
        yield frame
      }
    } finally {
      opts.signal?.removeEventListener('abort', kill)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    }
    const how = await exited
    if (opts.signal?.aborted) return
    const reason = `arecord -D ${device}: ${err.reason() || how}`
    if (got > 0) {
      everAudio = true
      delay = opts.backoffMs ?? 200
    } else if (!everAudio) {
      const missing = /no such|cannot find|audio open error|unknown pcm/i.test(reason)
      throw new AudioSourceError(missing ? 'device_missing' : 'crashed', reason)
    }
    restarts++
    opts.onRestart?.({ reason, delayMs: delay, restarts })
    await sleep(delay, undefined, { signal: opts.signal }).catch(() => undefined)
    delay = Math.min(delay * 2, opts.maxBackoffMs ?? 5000)
  }
}
