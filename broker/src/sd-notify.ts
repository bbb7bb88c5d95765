// systemd's notify protocol (sd_notify(3)): READY=1, STATUS=…, STOPPING=1, WATCHDOG=1 sent as
// datagrams to $NOTIFY_SOCKET. Node has no unix datagram sockets, so each send runs Debian's
// `systemd-notify` tool as a child process. That is why the units say `NotifyAccess=all`: as a
// non-root user the tool cannot claim the main PID in its credentials, so systemd sees the child's
// PID and would drop the message under the default `NotifyAccess=main`.
// Sends never block the caller or throw: at most one child runs at a time, and what is asked
// meanwhile is merged into the next one (a slow or stuck manager never piles up spawns). Without
// $NOTIFY_SOCKET (not under systemd, tests, a shell) every call does nothing.
import { spawn } from 'node:child_process'
import type { Logger } from './log.js'

/** What one notification says; fields left out are not sent. */
export interface SdNotifyFields {
  ready?: boolean
  stopping?: boolean
  watchdog?: boolean
  /** One line; newlines are replaced (the protocol is line-based). */
  status?: string
}

export interface SdNotifierOptions {
  /** $NOTIFY_SOCKET; undefined: every send does nothing. */
  socket: string | undefined
  /** The tool to run (default `systemd-notify` on PATH). */
  command?: string
  /** A child still running after this long is killed (the tool itself waits at most 5 s). */
  childTimeoutMs?: number
  /** Sent as --pid (MAINPID=): the process systemd should treat as the service's main one. */
  mainPid?: number
  log: Logger
}

export class SdNotifier {
  /** Children started so far (tests: coalescing). */
  spawned = 0
  private busy = false
  private pending: SdNotifyFields | undefined
  private unavailable = false
  private failuresLogged = false
  private idleWaiters: (() => void)[] = []

  constructor(private readonly opts: SdNotifierOptions) {}

  /** True when there is a socket to notify (running under systemd with Type=notify). */
  get enabled(): boolean {
    return this.opts.socket !== undefined && this.opts.socket !== '' && !this.unavailable
  }

  ready(status?: string): void { this.send({ ready: true, ...(status === undefined ? {} : { status }) }) }
  status(status: string): void { this.send({ status }) }
  stopping(status?: string): void { this.send({ stopping: true, ...(status === undefined ? {} : { status }) }) }
  watchdog(): void { this.send({ watchdog: true }) }

  /** Queues a notification; merged with one waiting behind a running child. Never throws. */
  send(fields: SdNotifyFields): void {
    if (!this.enabled) return
    this.pending = merge(this.pending, fields)
    if (!this.busy) this.next()
  }

  /** Resolves once nothing is running or waiting (tests, and a clean exit after STOPPING=1). */
  idle(): Promise<void> {
    if (!this.busy && !this.pending) return Promise.resolve()
    return new Promise((r) => this.idleWaiters.push(r))
  }

  private next(): void {
    const fields = this.pending
    this.pending = undefined
    if (!fields || !this.enabled) {
      this.busy = false
      for (const w of this.idleWaiters.splice(0)) w()
      return
    }
    this.busy = true
    this.spawned++
    const args = toArgs(fields, this.opts.mainPid)
    let stderr = ''
    let done = false
    const finish = (problem?: string) => {
      if (done) return
      done = true
      clearTimeout(timer)
      if (problem && !this.failuresLogged) {
        // Logged once: the same failure every watchdog interval would flood the journal.
        this.failuresLogged = true
        this.opts.log.warn({ problem, args }, 'systemd notification failed (logged once)')
      }
      this.next()
    }
    let timer: NodeJS.Timeout | undefined
    try {
      const child = spawn(this.opts.command ?? 'systemd-notify', args, {
        stdio: ['ignore', 'ignore', 'pipe'],
        env: { NOTIFY_SOCKET: this.opts.socket, PATH: process.env.PATH },
      })
      timer = setTimeout(() => { child.kill('SIGKILL'); finish(`${this.opts.command ?? 'systemd-notify'} still running after ${this.opts.childTimeoutMs ?? 10_000} ms`) }, this.opts.childTimeoutMs ?? 10_000)
      timer.unref()
      child.stderr.setEncoding('utf8').on('data', (s: string) => { if (stderr.length < 1000) stderr += s })
      child.once('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') {
          this.unavailable = true
          this.opts.log.error({ command: this.opts.command ?? 'systemd-notify' },
            'NOTIFY_SOCKET is set but systemd-notify is missing (install systemd): systemd will not see READY=1 or watchdog pings')
          finish()
        } else finish(err.message)
      })
      child.once('close', (code, signal) => finish(code === 0 ? undefined : `exit ${code ?? signal}: ${stderr.trim()}`))
    } catch (err) {
      finish(err instanceof Error ? err.message : String(err))
    }
  }
}

function merge(a: SdNotifyFields | undefined, b: SdNotifyFields): SdNotifyFields {
  if (!a) return { ...b }
  return {
    ready: a.ready || b.ready,
    stopping: a.stopping || b.stopping,
    watchdog: a.watchdog || b.watchdog,
    status: b.status ?? a.status,
  }
}

function toArgs(f: SdNotifyFields, mainPid: number | undefined): string[] {
  const args: string[] = []
  if (mainPid !== undefined) args.push(`--pid=${mainPid}`)
  if (f.ready) args.push('--ready')
  if (f.status !== undefined) args.push(`--status=${f.status.replace(/[\r\n]+/g, ' ')}`)
  if (f.stopping) args.push('STOPPING=1')
  if (f.watchdog) args.push('WATCHDOG=1')
  return args
}

/** systemd's settings for this process, from its environment (sd_watchdog_enabled(3)). */
export interface SystemdEnv {
  notifier: SdNotifier
  /** WatchdogSec= in ms when the watchdog applies to this process; undefined: no pings. */
  watchdogMs: number | undefined
}

export function systemdFromEnv(env: Record<string, string | undefined>, log: Logger, pid = process.pid): SystemdEnv {
  const notifier = new SdNotifier({ socket: env.NOTIFY_SOCKET || undefined, mainPid: pid, log: log.child({ component: 'systemd' }) })
  const usec = Number(env.WATCHDOG_USEC)
  const forUs = env.WATCHDOG_PID === undefined || env.WATCHDOG_PID === '' || Number(env.WATCHDOG_PID) === pid
  const watchdogMs = notifier.enabled && Number.isFinite(usec) && usec > 0 && forUs ? Math.max(1, Math.floor(usec / 1000)) : undefined
  return { notifier, watchdogMs }
}
