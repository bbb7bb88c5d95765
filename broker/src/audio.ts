// Audio frames on nodes/{id}/audio/in and audio/out: a fixed 16-byte header, then
// PCM16LE mono 16 kHz samples (20–40 ms per frame; control frames may carry none).
//
//  offset size field
//  0      2    magic 0x4D 0x4D ("MM")
//  2      1    version (1)
//  3      1    flags: 1 start, 2 end, 4 cancel, 8 barge-in
//  4      4    turn id (u32 LE), chosen by the node for a new utterance
//  8      4    sequence number (u32 LE), 0 for the first frame of a turn
//  12     4    sender clock, ms modulo 2^32 (u32 LE) — for latency, never for ordering
//  16     …    samples, int16 LE

export const AUDIO_SAMPLE_RATE = 16_000
export const AUDIO_HEADER_BYTES = 16
/** 40 ms at 16 kHz, PCM16. */
export const AUDIO_MAX_SAMPLES = 640
export const AudioFlags = { start: 1, end: 2, cancel: 4, bargeIn: 8 } as const

export interface AudioFrame {
  flags: number
  turnId: number
  seq: number
  clockMs: number
  samples: Int16Array
}

export type AudioDecodeError = 'short' | 'magic' | 'version' | 'odd_length' | 'too_long' | 'bad_flags'

export function encodeAudioFrame(f: Omit<AudioFrame, 'clockMs'> & { clockMs?: number }): Buffer {
  const buf = Buffer.alloc(AUDIO_HEADER_BYTES + f.samples.length * 2)
  buf[0] = 0x4d
  buf[1] = 0x4d
  buf[2] = 1
  buf[3] = f.flags
  buf.writeUInt32LE(f.turnId >>> 0, 4)
  buf.writeUInt32LE(f.seq >>> 0, 8)
  buf.writeUInt32LE((f.clockMs ?? Date.now()) % 2 ** 32, 12)
  Buffer.from(f.samples.buffer, f.samples.byteOffset, f.samples.byteLength).copy(buf, AUDIO_HEADER_BYTES)
  return buf
}

export function decodeAudioFrame(buf: Buffer): AudioFrame | AudioDecodeError {
  if (buf.length < AUDIO_HEADER_BYTES) return 'short'
  if (buf[0] !== 0x4d || buf[1] !== 0x4d) return 'magic'
  if (buf[2] !== 1) return 'version'
  const flags = buf[3]!
  if (flags & ~0x0f) return 'bad_flags'
  const bytes = buf.length - AUDIO_HEADER_BYTES
  if (bytes % 2 !== 0) return 'odd_length'
  if (bytes / 2 > AUDIO_MAX_SAMPLES) return 'too_long'
  // Copy: the MQTT buffer may be pooled and is not aligned for Int16Array.
  const samples = new Int16Array(bytes / 2)
  for (let i = 0; i < samples.length; i++) samples[i] = buf.readInt16LE(AUDIO_HEADER_BYTES + i * 2)
  return { flags, turnId: buf.readUInt32LE(4), seq: buf.readUInt32LE(8), clockMs: buf.readUInt32LE(12), samples }
}

/** Split PCM into frames of `frameSamples` for one turn; first has start, last has end. */
export function framesFor(turnId: number, pcm: Int16Array, frameSamples = 320, firstSeq = 0): AudioFrame[] {
  const frames: AudioFrame[] = []
  const clockMs = Date.now()
  for (let off = 0, seq = firstSeq; off < pcm.length || frames.length === 0; off += frameSamples, seq++) {
    const samples = pcm.subarray(off, Math.min(pcm.length, off + frameSamples))
    frames.push({ flags: 0, turnId, seq, clockMs, samples })
    if (off + frameSamples >= pcm.length) break
  }
  frames[0]!.flags |= AudioFlags.start
  frames.at(-1)!.flags |= AudioFlags.end
  return frames
}
