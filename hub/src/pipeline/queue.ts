// A small push/pull queue: MQTT frames and LLM text arrive as events, stages consume them
// with `for await`. end() finishes the iteration; fail() makes it throw.
export class AsyncQueue<T> implements AsyncIterable<T> {
  private items: T[] = []
  private done = false
  private error: unknown
  private wake: (() => void) | undefined

  push(item: T): void {
    if (this.done) return
    this.items.push(item)
    this.wake?.()
  }

  end(): void {
    this.done = true
    this.wake?.()
  }

  fail(err: unknown): void {
    this.error = err
    this.end()
  }

  get ended(): boolean {
    return this.done
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      while (this.items.length > 0) yield this.items.shift()!
      if (this.error !== undefined) throw this.error
      if (this.done) return
      await new Promise<void>((r) => { this.wake = r })
      this.wake = undefined
    }
  }
}

/** Resolves after `ms`, or rejects at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve() }, ms)
    const onAbort = () => { clearTimeout(t); reject(signal!.reason) }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
