// Small numeric helpers shared by the registry, the CLI and the benchmarks.

/** Quantile (0..1) of an unsorted sample, nearest-rank. */
export function quantile(values: ArrayLike<number>, q: number): number {
  if (values.length === 0) return NaN
  const sorted = Float64Array.from(values).sort()
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[idx]!
}

/** Fixed-size ring of recent samples, for p50/p99 without unbounded memory. */
export class SampleRing {
  private readonly buf: Float64Array
  private count = 0
  constructor(size: number) {
    this.buf = new Float64Array(size)
  }

  push(v: number): void {
    this.buf[this.count % this.buf.length] = v
    this.count++
  }

  values(): Float64Array {
    return this.buf.subarray(0, Math.min(this.count, this.buf.length))
  }

  get total(): number {
    return this.count
  }

  clear(): void {
    this.count = 0
  }
}
