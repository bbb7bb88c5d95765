// One memory key's vectors held in memory for brute-force cosine search. sqlite-vec's KNN
// over a partition read the key's chunks from the page cache and cost 7–8 ms at 10k facts on
// the 2-core EPYC; a scan here costs well under 1 ms for hashed vectors. Vectors are unit
// length (embed.ts, hash-embed.ts), so cosine is the dot product.
// Layout is dimension-major (all slots' value of dimension j are contiguous): a query touches
// only its non-zero dimensions, and a hashed query has ~30 of 256.

export const KIND_FACT = 0
export const KIND_TURN = 1

export interface VectorHit { id: number; similarity: number }

export class KeyVectors {
  size = 0
  private cap: number
  private data: Float32Array
  private ids: Float64Array
  private kinds: Uint8Array
  private readonly slots = new Map<number, number>()

  constructor(readonly dim: number, capacity = 64) {
    this.cap = Math.max(16, capacity)
    this.data = new Float32Array(dim * this.cap)
    this.ids = new Float64Array(this.cap)
    this.kinds = new Uint8Array(this.cap)
  }

  /** Bytes held (what the cache budget counts). */
  get bytes(): number { return this.data.byteLength + this.ids.byteLength + this.kinds.byteLength }

  has(id: number): boolean { return this.slots.has(id) }

  add(id: number, kind: number, v: ArrayLike<number>): void {
    if (this.slots.has(id)) return
    if (this.size === this.cap) this.grow(this.cap * 2)
    const s = this.size++
    const { data, cap } = this
    for (let j = 0; j < this.dim; j++) data[j * cap + s] = v[j]!
    this.ids[s] = id
    this.kinds[s] = kind
    this.slots.set(id, s)
  }

  /**
   * Appends many vectors at once: row `rows[t]` of `src` (row-major, `dim` wide) under `ids[t]`.
   * Copied in blocks of rows so reads and writes stay in cache (one vector at a time writes
   * `dim` cache lines apart: 3x slower at 10k).
   */
  addRows(src: Float32Array, rows: readonly number[], ids: readonly number[], kinds: readonly number[]): void {
    const n = rows.length
    let need = this.cap
    while (need < this.size + n) need *= 2
    if (need !== this.cap) this.grow(need)
    const { data, cap, dim } = this
    const start = this.size
    for (let b = 0; b < n; b += 64) {
      const e = Math.min(n, b + 64)
      for (let j = 0; j < dim; j++) {
        const base = j * cap + start
        for (let t = b; t < e; t++) data[base + t] = src[rows[t]! * dim + j]!
      }
    }
    for (let t = 0; t < n; t++) {
      this.ids[start + t] = ids[t]!
      this.kinds[start + t] = kinds[t]!
      this.slots.set(ids[t]!, start + t)
    }
    this.size += n
  }

  /** Removes one vector: the last slot moves into its place. */
  remove(id: number): boolean {
    const s = this.slots.get(id)
    if (s === undefined) return false
    this.slots.delete(id)
    const last = --this.size
    if (s !== last) {
      const { data, cap } = this
      for (let j = 0; j < this.dim; j++) data[j * cap + s] = data[j * cap + last]!
      const moved = this.ids[last]!
      this.ids[s] = moved
      this.kinds[s] = this.kinds[last]!
      this.slots.set(moved, s)
    }
    return true
  }

  /**
   * Adds the `n` best (highest similarity) of this key's vectors of `kind` (any: -1) into `top`
   * (sorted best first, at most `n` long). `scores` is scratch space of at least `size`.
   */
  search(q: Float32Array, kind: number, n: number, scores: Float32Array, top: VectorHit[]): void {
    const size = this.size
    if (size === 0 || n <= 0) return
    const { data, cap } = this
    scores.fill(0, 0, size)
    for (let j = 0; j < this.dim; j++) {
      const qj = q[j]!
      if (qj === 0) continue
      const base = j * cap
      for (let s = 0; s < size; s++) scores[s]! += qj * data[base + s]!
    }
    for (let s = 0; s < size; s++) {
      if (kind >= 0 && this.kinds[s] !== kind) continue
      const sim = scores[s]!
      if (top.length === n && sim <= top[n - 1]!.similarity) continue
      if (top.length === n) top.pop()
      const hit = { id: this.ids[s]!, similarity: sim }
      let i = top.length
      top.push(hit)
      while (i > 0 && top[i - 1]!.similarity < sim) { top[i] = top[i - 1]!; i-- }
      top[i] = hit
    }
  }

  private grow(cap: number): void {
    const data = new Float32Array(this.dim * cap)
    for (let j = 0; j < this.dim; j++) data.set(this.data.subarray(j * this.cap, j * this.cap + this.size), j * cap)
    const ids = new Float64Array(cap)
    ids.set(this.ids.subarray(0, this.size))
    const kinds = new Uint8Array(cap)
    kinds.set(this.kinds.subarray(0, this.size))
    this.data = data
    this.ids = ids
    this.kinds = kinds
    this.cap = cap
  }
}
