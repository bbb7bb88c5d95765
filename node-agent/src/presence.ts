// Presence (someone in front of the mirror): PIR/radar sensors read from a sysfs/gpio value
// file or from `gpiomon` edges, plus `set()` for HTTP/MQTT inputs. Raw inputs are
// debounced into one state; 'change' fires with {present, since, source}.
import { execFile, spawn, type ChildProcessByStdio } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { readFile } from 'node:fs/promises'
import type { Readable } from 'node:stream'
import { which } from '@mirrormesh/speech'

export interface PresenceState {
  present: boolean
  /** Date.now() when this state began (the raw edge that the debounce confirmed). */
  since: number
  /** Which input caused it ('file:/sys/…', 'gpiomon:gpiochip0/17', 'http', 'mqtt', …). */
  source: string
}

export interface PresenceInput {
  readonly name: string
  /** Begin reporting raw values; errors are reported, the input keeps trying. */
  start(onValue: (present: boolean) => void, onError: (err: Error) => void): void
  stop(): void
}

export interface PresenceOptions {
  /** A raw value must hold this long before it is believed (default 200 ms). */
  debounceMs?: number
  /** Extra time absence must hold (PIR sensors drop out while people stand still; default 0). */
  holdAbsentMs?: number
  initial?: boolean
}

export interface PresenceEvents {
  change: [PresenceState]
  error: [Error, string]
}

export class Presence extends EventEmitter<PresenceEvents> {
  private current: PresenceState
  private pending: { present: boolean; at: number; source: string; timer: NodeJS.Timeout } | undefined
  private readonly inputs: PresenceInput[] = []

  constructor(private readonly opts: PresenceOptions = {}) {
    super()
    this.current = { present: opts.initial ?? false, since: Date.now(), source: 'initial' }
  }

  get state(): PresenceState {
    return { ...this.current }
  }

  get present(): boolean {
    return this.current.present
  }

  /** A raw reading from any source; the HTTP route / MQTT handler calls this. */
  set(present: boolean, source: string): void {
    const at = Date.now()
    if (present === this.current.present) {
      // Bounced back before the change was confirmed: forget it.
      if (this.pending) clearTimeout(this.pending.timer)
      this.pending = undefined
      return
    }
    if (this.pending?.present === present) return // already waiting on this change
    if (this.pending) clearTimeout(this.pending.timer)
    const wait = (this.opts.debounceMs ?? 200) + (present ? 0 : this.opts.holdAbsentMs ?? 0)
    const timer = setTimeout(() => {
      this.pending = undefined
      this.current = { present, since: at, source }
      this.emit('change', this.state)
    }, wait)
    timer.unref()
    this.pending = { present, at, source, timer }
  }

  add(input: PresenceInput): this {
    this.inputs.push(input)
    input.start(
      (v) => this.set(v, input.name),
      (err) => {
        if (this.listenerCount('error')) this.emit('error', err, input.name)
      },
    )
    return this
  }

  close(): void {
    if (this.pending) clearTimeout(this.pending.timer)
    this.pending = undefined
    for (const i of this.inputs.splice(0)) i.stop()
  }
}

export interface FileSourceOptions {
  /** '1' means present (default true); false for active-low sensors. */
  activeHigh?: boolean
  /** Poll period (default 100 ms). */
  intervalMs?: number
}

/** Poll a value file (e.g. /sys/class/gpio/gpio17/value, or a file another program writes). */
export function fileSource(path: string, opts: FileSourceOptions = {}): PresenceInput {
  let timer: NodeJS.Timeout | undefined
  let lastErr = ''
  let last: boolean | undefined
  const activeHigh = opts.activeHigh ?? true
  return {
    name: `file:${path}`,
    start(onValue, onError) {
      const poll = async (): Promise<void> => {
        try {
          const text = (await readFile(path, 'utf8')).trim()
          lastErr = ''
          if (text !== '0' && text !== '1') throw new Error(`${path}: expected 0 or 1, got ${JSON.stringify(text.slice(0, 20))}`)
          const v = (text === '1') === activeHigh
          // Edges only, like gpiomon: a steady 0 must not overrule an HTTP/MQTT "present" every poll.
          if (v !== last) onValue(v)
          last = v
        } catch (err) {
          const msg = (err as Error).message
          if (msg !== lastErr) onError(err as Error) // report each distinct failure once
          lastErr = msg
        }
      }
      void poll()
      timer = setInterval(() => void poll(), opts.intervalMs ?? 100)
      timer.unref()
    },
    stop() {
      if (timer) clearInterval(timer)
      timer = undefined
      last = undefined
    },
  }
}

export interface GpiomonOptions {
  chip: string
  line: number
  activeHigh?: boolean
  /** Executable (default 'gpiomon'); tests substitute a script. */
  bin?: string
  /** Restart delay after gpiomon exits (default 1000 ms). */
  restartMs?: number
}

/**
 * Edges from libgpiod's `gpiomon --num-events=0 <chip> <line>` (v2: `gpiomon -c <chip> <line>`; v1 output
 * "event:  RISING EDGE offset: 17 …"; v2 lines containing "rising"/"falling" also parse).
 */
export function gpiomonSource(opts: GpiomonOptions): PresenceInput {
  const activeHigh = opts.activeHigh ?? true
  let child: ChildProcessByStdio<null, Readable, Readable> | undefined
  let stopped = false
  let restart: NodeJS.Timeout | undefined
  return {
    name: `gpiomon:${opts.chip}/${opts.line}`,
    start(onValue, onError) {
      const bin = which(opts.bin ?? 'gpiomon')
      if (!bin) {
        onError(new Error(`${opts.bin ?? 'gpiomon'} not found (apt install gpiod)`))
        return
      }
      let args: string[] = []
      const run = (): void => {
        if (stopped) return
        const c = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] })
        child = c
        let rest = ''
        let err = ''
        c.stdout.setEncoding('utf8').on('data', (s: string) => {
          const lines = (rest + s).split('\n')
          rest = lines.pop() ?? ''
          for (const line of lines) {
            const edge = parseGpiomonLine(line)
            if (edge !== undefined) onValue(edge === 'rising' ? activeHigh : !activeHigh)
          }
        })
        c.stderr.setEncoding('utf8').on('data', (s: string) => (err = (err + s).slice(-300)))
        c.on('error', (e) => onError(e))
        c.on('close', (code, sig) => {
          if (stopped) return
          onError(new Error(`gpiomon ${opts.chip} ${opts.line} exited ${code ?? sig}: ${err.trim()}`))
          restart = setTimeout(run, opts.restartMs ?? 1000)
          restart.unref()
        })
      }
      // libgpiod v2 (Debian 13, Pi OS trixie) takes `-c CHIP LINE`; v1 `CHIP LINE` (and would read -c as a chip).
      execFile(bin, ['--version'], { timeout: 5000 }, (_err, stdout) => {
        args = /\bv?2\.\d/.test(String(stdout)) ? ['-c', opts.chip, String(opts.line)] : ['--num-events=0', opts.chip, String(opts.line)]
        run()
      })
    },
    stop() {
      stopped = true
      if (restart) clearTimeout(restart)
      child?.kill('SIGTERM')
      child = undefined
    },
  }
}

export function parseGpiomonLine(line: string): 'rising' | 'falling' | undefined {
  if (/\brising\b/i.test(line)) return 'rising'
  if (/\bfalling\b/i.test(line)) return 'falling'
  return undefined
}
