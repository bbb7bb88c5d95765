// Reads a GGUF v2/v3 header (metadata and tensor table) to tell how long the file must be:
// a download cut short keeps a valid header, so only the tensor data extent computed from the
// table, compared with the file size, shows the truncation the loader would trip on.
import { open, type FileHandle } from 'node:fs/promises'

/** ggml type → [elements per block, bytes per block]; types not listed count as 0 bytes (a lower bound). */
const TYPE_SIZE: Record<number, [number, number]> = {
  0: [1, 4], 1: [1, 2], 2: [32, 18], 3: [32, 20], 6: [32, 22], 7: [32, 24], 8: [32, 34], 9: [32, 36],
  10: [256, 84], 11: [256, 110], 12: [256, 144], 13: [256, 176], 14: [256, 210], 15: [256, 292],
  16: [256, 66], 17: [256, 74], 18: [256, 98], 19: [256, 50], 20: [32, 18], 21: [256, 110], 22: [256, 82],
  23: [256, 136], 24: [1, 1], 25: [1, 2], 26: [1, 4], 27: [1, 8], 28: [1, 8], 29: [256, 56], 30: [1, 2],
  34: [256, 54], 35: [256, 66], 39: [32, 17],
}
/** Fixed sizes of the scalar metadata value types (8 string, 9 array are variable). */
const SCALAR: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 }
/** More than any real model has: a garbled count must not make us loop for hours. */
const MAX_COUNT = 10_000_000

export interface GgufLayout {
  version: number
  tensors: number
  /** Bytes the file must have: the end of the last tensor's data. */
  requiredBytes: number
}

class Truncated extends Error {}

/** Sequential reads through a file handle, buffered in 1 MB chunks. */
class Reader {
  pos = 0
  private buf = Buffer.alloc(0)
  private bufAt = 0
  constructor(private readonly fh: FileHandle, private readonly size: number) {}

  async bytes(n: number): Promise<Buffer> {
    if (this.pos + n > this.size) throw new Truncated(`header ends past the end of the file (needs byte ${this.pos + n}, file has ${this.size})`)
    if (this.pos < this.bufAt || this.pos + n > this.bufAt + this.buf.length) {
      const len = Math.min(Math.max(n, 1 << 20), this.size - this.pos)
      const b = Buffer.alloc(len)
      const { bytesRead } = await this.fh.read(b, 0, len, this.pos)
      this.buf = b.subarray(0, bytesRead)
      this.bufAt = this.pos
      if (bytesRead < n) throw new Truncated(`short read at byte ${this.pos}`)
    }
    const out = this.buf.subarray(this.pos - this.bufAt, this.pos - this.bufAt + n)
    this.pos += n
    return out
  }
  async u32(): Promise<number> { return (await this.bytes(4)).readUInt32LE(0) }
  async u64(): Promise<number> {
    const v = (await this.bytes(8)).readBigUInt64LE(0)
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`implausible 64-bit value ${v} at byte ${this.pos - 8}`)
    return Number(v)
  }
  async count(what: string): Promise<number> {
    const n = await this.u64()
    if (n > MAX_COUNT) throw new Error(`implausible ${what} count ${n} at byte ${this.pos - 8}`)
    return n
  }
  async string(): Promise<string> { return (await this.bytes(await this.u64())).toString('utf8') }
  skip(n: number): void { this.pos += n }
}

async function skipValue(r: Reader, type: number): Promise<void> {
  if (type in SCALAR) return void (await r.bytes(SCALAR[type]!))
  if (type === 8) return void (await r.bytes(await r.u64()))
  if (type === 9) {
    const inner = await r.u32()
    const n = await r.count('array')
    if (inner in SCALAR) return void (await r.bytes(SCALAR[inner]! * n))
    for (let i = 0; i < n; i++) await skipValue(r, inner)
    return
  }
  throw new Error(`unknown metadata value type ${type} at byte ${r.pos - 4}`)
}

/**
 * The layout of the GGUF file at `file`, or a reason it is not readable: 'truncated: …' when
 * the header itself runs past the end of the file.
 */
export async function readGgufLayout(file: string): Promise<GgufLayout | { problem: string }> {
  const fh = await open(file, 'r')
  try {
    const size = (await fh.stat()).size
    const r = new Reader(fh, size)
    if ((await r.bytes(4)).toString('latin1') !== 'GGUF') return { problem: 'not a GGUF file' }
    const version = await r.u32()
    if (version !== 2 && version !== 3) return { problem: `GGUF version ${version} is not supported (2 or 3)` }
    const tensors = await r.count('tensor')
    const kvs = await r.count('metadata')
    let alignment = 32
    for (let i = 0; i < kvs; i++) {
      const key = await r.string()
      const type = await r.u32()
      if (key === 'general.alignment' && type === 4) alignment = (await r.u32()) || 32
      else await skipValue(r, type)
    }
    let dataEnd = 0
    for (let i = 0; i < tensors; i++) {
      await r.string()
      const nDims = await r.u32()
      if (nDims > 8) throw new Error(`tensor ${i}: ${nDims} dimensions`)
      let elements = 1
      for (let d = 0; d < nDims; d++) elements *= await r.u64()
      const type = await r.u32()
      const offset = await r.u64()
      const [block, bytes] = TYPE_SIZE[type] ?? [1, 0]
      dataEnd = Math.max(dataEnd, offset + Math.ceil(elements / block) * bytes)
    }
    const dataStart = Math.ceil(r.pos / alignment) * alignment
    return { version, tensors, requiredBytes: tensors ? dataStart + dataEnd : r.pos }
  } catch (err) {
    if (err instanceof Truncated) return { problem: `truncated: ${err.message}` }
    return { problem: `unreadable GGUF header: ${(err as Error).message}` }
  } finally {
    await fh.close()
  }
}
