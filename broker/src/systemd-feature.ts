// The systemd feature of a process root (hub, node agent): READY=1 when the root says start-up is
// complete, STATUS= with the root's one-line summary whenever it changes, STOPPING=1 on drain/stop,
// and — when systemd set WATCHDOG_USEC — WATCHDOG=1 at half the interval, only while healthy.
// Healthy means: the event loop runs (the ping timer is the check: a hung or stopped loop fires no
// timer, so no ping, and systemd kills and restarts the process after WatchdogSec), and the root's
// own check (`problem`) has not been failing for longer than `graceMs`.
import type { Feature } from './features.js'
import type { Logger } from './log.js'
import type { SdNotifier } from './sd-notify.js'

export interface SystemdFeatureOptions {
  notifier: SdNotifier
  /** WatchdogSec= in ms (from WATCHDOG_USEC); undefined: no pings. */
  watchdogMs: number | undefined
  /** Why the process is unhealthy, or null. Called on every ping; must be cheap. */
  problem?: () => string | null
  /** A problem withholds pings only once it has lasted this long (a broker blip must not kill the process). */
  graceMs?: number
  /** The root's one-line summary for STATUS= (e.g. "ready: 2 nodes online, 0 sessions"). */
  status: () => string
  /** How often the summary is compared with the last one sent. */
  statusIntervalMs?: number
  log: Logger
}

export const defaultSystemdFeatureOptions = { graceMs: 0, statusIntervalMs: 5_000 }

export class SystemdFeature implements Feature {
  readonly name = 'systemd'
  /** Pings sent so far (tests). */
  pings = 0
  private pingTimer: NodeJS.Timeout | undefined
  private statusTimer: NodeJS.Timeout | undefined
  private lastStatus: string | undefined
  private problemSince: number | undefined
  private withholding = false
  private stoppingSent = false
  private readySent = false

  constructor(private readonly opts: SystemdFeatureOptions) {}

  get pingIntervalMs(): number | undefined {
    return this.opts.watchdogMs === undefined ? undefined : Math.max(1, Math.floor(this.opts.watchdogMs / 2))
  }

  start(): void {
    if (!this.opts.notifier.enabled) return
    const every = this.opts.statusIntervalMs ?? defaultSystemdFeatureOptions.statusIntervalMs
    this.statusTimer = setInterval(() => this.refreshStatus(), every)
    this.statusTimer.unref()
    const interval = this.pingIntervalMs
    if (interval !== undefined) {
      this.opts.log.info({ watchdogMs: this.opts.watchdogMs, pingMs: interval, graceMs: this.opts.graceMs ?? 0 }, 'systemd watchdog on')
      this.schedulePing(interval)
    }
  }

  stop(): void {
    clearTimeout(this.pingTimer)
    clearInterval(this.statusTimer)
    this.pingTimer = this.statusTimer = undefined
  }

  /** Start-up is complete: READY=1 with the current summary (once; later calls do nothing). */
  ready(): void {
    if (this.readySent) return
    this.readySent = true
    this.lastStatus = this.summary()
    this.opts.notifier.ready(this.lastStatus)
  }

  /** Drain or stop began: STOPPING=1 (once) with the current summary. */
  stopping(): void {
    if (this.stoppingSent) return
    this.stoppingSent = true
    this.lastStatus = this.summary()
    this.opts.notifier.stopping(this.lastStatus)
  }

  /** Sends STATUS= if the summary changed since the last one sent. */
  refreshStatus(): void {
    if (!this.opts.notifier.enabled) return
    const now = this.summary()
    if (now === this.lastStatus) return
    this.lastStatus = now
    this.opts.notifier.status(now)
  }

  private summary(): string {
    const problem = this.opts.problem?.() ?? null
    return problem ? `${this.opts.status()}; unhealthy: ${problem}` : this.opts.status()
  }

  private schedulePing(interval: number): void {
    const due = Date.now() + interval
    this.pingTimer = setTimeout(() => {
      // A late timer means the loop was blocked; it runs again now, so this ping is honest.
      const lateMs = Date.now() - due
      if (lateMs > interval) this.opts.log.warn({ lateMs }, 'event loop was blocked; watchdog ping late')
      this.tick()
      if (this.pingTimer) this.schedulePing(interval)
    }, interval)
    this.pingTimer.unref()
  }

  private tick(): void {
    const problem = this.opts.problem?.() ?? null
    const now = Date.now()
    if (problem === null) {
      if (this.withholding) this.opts.log.info('healthy again; watchdog pings resume')
      this.problemSince = undefined
      this.withholding = false
    } else {
      this.problemSince ??= now
      if (now - this.problemSince >= (this.opts.graceMs ?? 0)) {
        if (!this.withholding) this.opts.log.error({ problem, forMs: now - this.problemSince }, 'unhealthy past the grace period; watchdog pings withheld (systemd restarts the process after WatchdogSec)')
        this.withholding = true
      }
    }
    this.refreshStatus()
    if (this.withholding) return
    this.pings++
    this.opts.notifier.watchdog()
  }
}
