// Spawns the engines' child processes (pocketsphinx, espeak-ng, sox) from a worker thread.
// child_process.spawn() is synchronous in libuv: the calling thread forks the whole process
// (page tables of a ~200 MB hub) and then blocks until the child has exec'd. On a loaded
// 2-core hub that wait was 30-70 ms per spawn, on the thread that also runs the embedded
// broker: three or four spawns per turn were the largest stalls of the hub's event loop.
// Here the worker pays that wait; the main thread gets a ChildProcess look-alike whose
// stdio is relayed by message (a few KB per turn). The hub uses it; the node agent keeps
// plain spawn (one turn at a time, a small process).
import { EventEmitter } from 'node:events'
import { Readable, Writable } from 'node:stream'
import { Worker } from 'node:worker_threads'
import type { ChildProcessByStdio, SpawnOptions } from 'node:child_process'

/** The subset of child_process.spawn the speech engines use (stdio is always three pipes). */
export type SpawnFn = (file: string, args: readonly string[], opts?: Pick<SpawnOptions, 'detached' | 'env' | 'cwd'>) => ChildProcessByStdio<Writable, Readable, Readable>

const WORKER_JS = `
const { parentPort, workerData } = require('node:worker_threads')
const { spawn } = require('node:child_process')
// Linux nice values are per thread and inherited by children forked from this thread.
if (workerData.nice) { try { require('node:os').setPriority(0, workerData.nice) } catch {} }
const kids = new Map()
const post = (m) => parentPort.postMessage(m)
parentPort.on('message', (m) => {
  const c = kids.get(m.id)
  if (m.op === 'spawn') {
    let child
    try {
      child = spawn(m.file, m.args, { stdio: ['pipe', 'pipe', 'pipe'], detached: m.detached, env: m.env, cwd: m.cwd })
    } catch (e) {
      post({ op: 'error', id: m.id, message: String((e && e.message) || e), code: e && e.code })
      post({ op: 'close', id: m.id, code: null, signal: null })
      return
    }
    kids.set(m.id, child)
    if (child.pid !== undefined) post({ op: 'spawned', id: m.id, pid: child.pid })
    child.on('error', (e) => post({ op: 'error', id: m.id, message: e.message, code: e.code }))
    child.stdout.on('data', (b) => post({ op: 'data', id: m.id, fd: 1, data: b }))
    child.stderr.on('data', (b) => post({ op: 'data', id: m.id, fd: 2, data: b }))
    child.stdin.on('error', (e) => post({ op: 'stdinError', id: m.id, message: e.message, code: e.code }))
    child.on('close', (code, signal) => { kids.delete(m.id); post({ op: 'close', id: m.id, code, signal }) })
  } else if (!c) {
    return
  } else if (m.op === 'write') {
    if (c.stdin.writable) c.stdin.write(m.data)
  } else if (m.op === 'end') {
    c.stdin.end()
  } else if (m.op === 'kill') {
    try {
      if (m.group && c.pid !== undefined) process.kill(-c.pid, m.signal)
      else c.kill(m.signal)
    } catch {
      try { c.kill(m.signal) } catch {}
    }
  }
})
`

type FromWorker =
  | { op: 'spawned'; id: number; pid: number }
  | { op: 'error' | 'stdinError'; id: number; message: string; code?: string }
  | { op: 'data'; id: number; fd: 1 | 2; data: Uint8Array }
  | { op: 'close'; id: number; code: number | null; signal: NodeJS.Signals | null }

const asBuffer = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength)

function errorOf(m: { message: string; code?: string }): NodeJS.ErrnoException {
  const e: NodeJS.ErrnoException = new Error(m.message)
  if (m.code) e.code = m.code
  return e
}

/** What the engines see: a ChildProcess with piped stdio whose process lives behind the worker. */
class RemoteChild extends EventEmitter {
  pid: number | undefined
  exitCode: number | null = null
  signalCode: NodeJS.Signals | null = null
  killed = false
  readonly stdout = new Readable({ read() {} })
  readonly stderr = new Readable({ read() {} })
  readonly stdin: Writable

  constructor(private readonly id: number, private readonly detached: boolean, private readonly post: (m: object) => void) {
    super()
    this.stdin = new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        post({ op: 'write', id, data: chunk })
        cb()
      },
      final: (cb) => {
        post({ op: 'end', id })
        cb()
      },
    })
  }

  /** A detached child is signalled as a process group (sh and its pipeline), as killGroup would. */
  kill(signal: NodeJS.Signals = 'SIGTERM'): boolean {
    if (this.exitCode !== null || this.signalCode !== null) return false
    this.killed = true
    this.post({ op: 'kill', id: this.id, signal, group: this.detached })
    return true
  }

  onMessage(m: FromWorker): boolean {
    switch (m.op) {
      case 'spawned':
        this.pid = m.pid
        this.emit('spawn')
        return false
      case 'data':
        ;(m.fd === 1 ? this.stdout : this.stderr).push(asBuffer(m.data))
        return false
      case 'stdinError':
        this.stdin.destroy(errorOf(m))
        return false
      case 'error':
        this.emit('error', errorOf(m))
        return false
      case 'close':
        this.exitCode = m.code
        this.signalCode = m.signal
        this.stdout.push(null)
        this.stderr.push(null)
        if (!this.stdin.destroyed) this.stdin.destroy()
        this.emit('exit', m.code, m.signal)
        // After any 'data' already pushed has reached its listeners, as with a real child.
        setImmediate(() => this.emit('close', m.code, m.signal))
        return true
    }
  }
}

export interface SpawnHostOptions {
  /** Nice value for the worker thread, inherited by every child it spawns (default 0). */
  nice?: number
}

/** One worker thread that spawns and relays child processes; `spawn` has spawn()'s shape. */
export class SpawnHost {
  private worker: Worker | undefined
  private readonly children = new Map<number, RemoteChild>()
  private nextId = 1
  private closed = false

  constructor(private readonly opts: SpawnHostOptions = {}) {
    this.ensure()
  }

  readonly spawn: SpawnFn = (file, args, opts = {}) => {
    const id = this.nextId++
    const child = new RemoteChild(id, opts.detached === true, (m) => this.worker?.postMessage(m))
    if (this.closed) {
      setImmediate(() => {
        child.onMessage({ op: 'error', id, message: 'spawn host closed', code: 'ECANCELED' })
        child.onMessage({ op: 'close', id, code: null, signal: null })
      })
    } else {
      this.children.set(id, child)
      this.ensure().postMessage({ op: 'spawn', id, file, args: [...args], detached: opts.detached === true, env: opts.env, cwd: opts.cwd })
    }
    return child as unknown as ChildProcessByStdio<Writable, Readable, Readable>
  }

  /** Kills what is still running and stops the worker. */
  async close(): Promise<void> {
    this.closed = true
    for (const c of this.children.values()) c.kill('SIGKILL')
    const w = this.worker
    this.worker = undefined
    if (w) {
      // Let the kills reach the worker before it stops.
      await new Promise((r) => setTimeout(r, 20))
      await w.terminate()
    }
    this.fail('spawn host closed')
  }

  private ensure(): Worker {
    if (this.worker) return this.worker
    const w = new Worker(WORKER_JS, { eval: true, workerData: { nice: this.opts.nice ?? 0 } })
    w.unref()
    w.on('message', (m: FromWorker) => {
      const c = this.children.get(m.id)
      if (c?.onMessage(m)) this.children.delete(m.id)
    })
    const dead = (why: string) => {
      if (this.worker === w) this.worker = undefined
      this.fail(why)
    }
    w.on('error', (e) => dead(`spawn worker error: ${e.message}`))
    w.on('exit', (code) => dead(`spawn worker exited ${code}`))
    this.worker = w
    return w
  }

  /** Children whose worker is gone: their processes were never started or cannot be reached. */
  private fail(why: string): void {
    const orphans = [...this.children.entries()]
    this.children.clear()
    for (const [id, c] of orphans) {
      c.onMessage({ op: 'error', id, message: why, code: 'ECHILD' })
      c.onMessage({ op: 'close', id, code: null, signal: 'SIGKILL' })
    }
  }
}
