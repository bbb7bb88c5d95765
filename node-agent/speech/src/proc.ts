// Small helpers for engines that run external programs.
import { accessSync, constants, existsSync } from 'node:fs'
import path from 'node:path'

/** Absolute path of an executable (a bare name is looked up on PATH), or undefined. */
export function which(bin: string): string | undefined {
  const candidates = bin.includes('/')
    ? [bin]
    : (process.env.PATH ?? '').split(path.delimiter).filter(Boolean).map((dir) => path.join(dir, bin))
  return candidates.find((p) => {
    if (!existsSync(p)) return false
    try {
      accessSync(p, constants.X_OK)
      return true
    } catch {
      return false
    }
  })
}

/** Keeps the last `max` characters of a stream, for error messages from a crashed child. */
export class TailBuffer {
  private text = ''
  constructor(private readonly max = 2000) {}
  push(chunk: Buffer | string): void {
    this.text = (this.text + chunk.toString()).slice(-this.max)
  }
  /** Last non-empty line, preferring one that mentions an error. */
  reason(): string {
    const lines = this.text.split('\n').map((l) => l.trim()).filter(Boolean)
    return lines.filter((l) => /error|fatal/i.test(l)).pop() ?? lines.pop() ?? ''
  }
}

/** The rejection value for work cancelled through `signal`. */
export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('aborted', 'AbortError')
}

/** Settles with `p`, or rejects with the abort reason as soon as `signal` fires. */
export function raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(abortReason(signal))
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortReason(signal))
    signal.addEventListener('abort', onAbort, { once: true })
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
  })
}

/** SIGKILL a detached child's whole process group (the `sh -c 'cat | …'` pipe and its decoder). */
export function killGroup(child: { pid?: number; kill(sig: NodeJS.Signals): boolean }): void {
  if (child.pid === undefined) {
    // Not started (yet): a SpawnHost child still being spawned kills its group itself.
    child.kill('SIGKILL')
    return
  }
  try {
    process.kill(-child.pid, 'SIGKILL')
  } catch {
    child.kill('SIGKILL')
  }
}
