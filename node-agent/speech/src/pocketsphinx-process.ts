// One `pocketsphinx_continuous` child decoding one utterance from PCM on stdin: the process
// part shared by the hub's ASR stage (PocketsphinxAsr) and the node's offline recogniser
// (which runs two of these for its early endpoint and reads the backtrace from the log).
// It spawns the decoder, writes 16 kHz PCM16 to it, collects stdout (one line per utterance,
// the last flushed at EOF) and stderr, and kills it on abort, on a finish() timeout, or when a
// session is left open past SESSION_LIMIT_MS.
import { spawn, type ChildProcessByStdio } from 'node:child_process'
import type { SpawnFn } from './spawn-host.js'
import type { Readable, Writable } from 'node:stream'
import { EngineError } from './types.js'
import { abortReason, killGroup, TailBuffer } from './proc.js'

/** A session nobody finishes or aborts must not leave a decoder waiting on stdin forever. */
const SESSION_LIMIT_MS = 120_000

export interface PocketsphinxProcessOptions {
  /** Absolute path of pocketsphinx_continuous (see which()). */
  bin: string
  /** Its arguments: `-infile /dev/stdin` and the model, grammar and dictionary. */
  args: readonly string[]
  /** Kills the decoder; finish() then rejects with the abort reason. */
  signal: AbortSignal
  /** Limit from finish() to the decoder's exit (EngineError 'timeout'). */
  timeoutMs: number
  /** Keep the whole stderr log for the result (the `-backtrace yes` tables are in it); otherwise only its tail, for errors. */
  keepLog?: boolean
  /** How to start the decoder (default child_process.spawn; the hub passes SpawnHost.spawn so no spawn blocks its event loop). */
  spawn?: SpawnFn
}

export interface PocketsphinxOutput {
  /** Non-empty stdout lines, trimmed: one hypothesis per utterance the decoder found. */
  lines: string[]
  /** The whole stderr log when keepLog was set. */
  log?: string
}

export class PocketsphinxProcess {
  private readonly child: ChildProcessByStdio<Writable, Readable, Readable>
  private readonly result: Promise<PocketsphinxOutput>
  private finishing: Promise<PocketsphinxOutput> | undefined
  private timer: NodeJS.Timeout | undefined
  private failure: EngineError | undefined
  private exited = false
  private readonly timeoutMs: number

  constructor(opts: PocketsphinxProcessOptions) {
    const { signal } = opts
    this.timeoutMs = opts.timeoutMs
    // `-infile /dev/stdin` needs a real pipe, but Node's child stdin is a socketpair (open()
    // fails with ENXIO), so `sh` puts `cat |` in front. Arguments are passed as "$@", never
    // interpolated. Detached: the group (sh, cat, pocketsphinx) is killed together.
    const args = ['-c', 'cat | "$@"', 'sh', opts.bin, ...opts.args]
    const child = opts.spawn
      ? opts.spawn('/bin/sh', args, { detached: true })
      : spawn('/bin/sh', args, { stdio: ['pipe', 'pipe', 'pipe'], detached: true })
    this.child = child
    const out: string[] = []
    const log: string[] = []
    const tail = new TailBuffer()
    child.stdout.setEncoding('utf8').on('data', (s: string) => out.push(s))
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      if (opts.keepLog) log.push(s) // a few kB per utterance
      tail.push(s)
    })
    // EPIPE after the child died; the exit code reports the real problem.
    child.stdin.on('error', () => {})
    const onAbort = (): void => this.kill()
    signal.addEventListener('abort', onAbort, { once: true })
    if (signal.aborted) this.kill()
    const lifetime = setTimeout(() => this.kill(), SESSION_LIMIT_MS).unref()

    this.result = new Promise<PocketsphinxOutput>((resolve, reject) => {
      child.on('error', (e) => {
        this.exited = true
        clearTimeout(this.timer)
        clearTimeout(lifetime)
        reject(new EngineError('not_installed', `pocketsphinx failed to start: ${e.message}`))
      })
      child.on('close', (code, sig) => {
        this.exited = true
        clearTimeout(this.timer)
        clearTimeout(lifetime)
        signal.removeEventListener('abort', onAbort)
        if (signal.aborted) return reject(abortReason(signal))
        if (this.failure) return reject(this.failure)
        if (code !== 0) return reject(new EngineError('crashed', `pocketsphinx exited ${code ?? sig}: ${tail.reason()}`, true))
        const lines = out.join('').split('\n').map((l) => l.trim()).filter(Boolean)
        resolve(opts.keepLog ? { lines, log: log.join('') } : { lines })
      })
    })
    // Rejections before finish() is called must not surface as unhandled.
    this.result.catch(() => {})
  }

  /** Process group of the decoder (sh, cat, pocketsphinx). */
  get pid(): number | undefined {
    return this.child.pid
  }

  write(pcm: Int16Array): void {
    if (this.finishing || this.exited || !this.child.stdin.writable) return
    // Copy: the caller may reuse its buffer before the pipe drains.
    this.child.stdin.write(Buffer.from(new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength)))
  }

  /** Ends the audio; resolves with the decoder's output once it exits. */
  finish(): Promise<PocketsphinxOutput> {
    if (this.finishing) return this.finishing
    this.child.stdin.end()
    if (!this.exited) this.timer = setTimeout(() => {
      this.failure = new EngineError('timeout', `pocketsphinx gave no transcript within ${this.timeoutMs} ms`, true)
      this.kill()
    }, this.timeoutMs)
    this.finishing = this.result
    return this.finishing
  }

  /** Stops the decoder (the whole process group); its result is no longer wanted. */
  kill(): void {
    if (!this.exited) killGroup(this.child)
  }
}
