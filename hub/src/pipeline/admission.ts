// At most `maxConcurrent` turns run; up to `queueMax` wait; the rest are told "busy".
export type Admission = 'run' | 'queued' | 'busy'

export class AdmissionControl<T> {
  running = 0
  private readonly waiting: Array<{ item: T; go: () => void }> = []

  constructor(private readonly maxConcurrent: number, private readonly queueMax: number) {}

  get queued(): number {
    return this.waiting.length
  }

  /** Returns at once how the item was admitted; `go` runs when it holds a slot. */
  admit(item: T, go: () => void): Admission {
    if (this.running < this.maxConcurrent) {
      this.running++
      go()
      return 'run'
    }
    if (this.waiting.length < this.queueMax) {
      this.waiting.push({ item, go })
      return 'queued'
    }
    return 'busy'
  }

  /** A running item finished: hand its slot to the next in line. */
  release(): void {
    const next = this.waiting.shift()
    if (next) next.go()
    else this.running = Math.max(0, this.running - 1)
  }

  /** Drop a queued item (cancelled before it ran). */
  withdraw(item: T): boolean {
    const i = this.waiting.findIndex((w) => w.item === item)
    if (i < 0) return false
    this.waiting.splice(i, 1)
    return true
  }
}
