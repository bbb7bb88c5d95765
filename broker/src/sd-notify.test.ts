import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createLogger, type Logger } from './log.js'
import { SdNotifier, systemdFromEnv } from './sd-notify.js'
import { SystemdFeature } from './systemd-feature.js'

const silent = (): Logger => createLogger({ name: 'test', level: 'silent' })

let dir: string
beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'mm-sdn-')) })
afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

/** A stand-in for systemd-notify that records its arguments (one line per run) and takes 150 ms. */
async function recorder(): Promise<{ command: string; runs: () => Promise<string[]> }> {
  const command = join(dir, 'fake-notify')
  const out = join(dir, 'runs')
  await writeFile(command, `#!/bin/sh\necho "$NOTIFY_SOCKET $*" >> '${out}'\nsleep 0.15\n`)
  await chmod(command, 0o755)
  return { command, runs: async () => (await readFile(out, 'utf8').catch(() => '')).split('\n').filter(Boolean) }
}

describe('SdNotifier', () => {
  it('does nothing without NOTIFY_SOCKET', async () => {
    const n = new SdNotifier({ socket: undefined, command: '/nonexistent', log: silent() })
    n.ready('x'); n.watchdog(); n.stopping()
    await n.idle()
    expect(n.enabled).toBe(false)
    expect(n.spawned).toBe(0)
  })

  it('runs the tool with the socket, --pid and the fields', async () => {
    const r = await recorder()
    const n = new SdNotifier({ socket: '/run/x.sock', command: r.command, mainPid: 42, log: silent() })
    n.ready('ready: 1 node\nonline')
    await n.idle()
    expect(await r.runs()).toEqual(['/run/x.sock --pid=42 --ready --status=ready: 1 node online'])
  })

  it('merges what is asked while a child runs into one next child (no pile-up)', async () => {
    const r = await recorder()
    const n = new SdNotifier({ socket: '/run/x.sock', command: r.command, log: silent() })
    n.watchdog()
    for (let i = 0; i < 50; i++) n.watchdog()
    n.status('a'); n.status('b'); n.stopping()
    await n.idle()
    expect(n.spawned).toBe(2)
    expect(await r.runs()).toEqual(['/run/x.sock WATCHDOG=1', '/run/x.sock --status=b STOPPING=1 WATCHDOG=1'])
  })

  it('a missing tool is logged once and never throws', async () => {
    const log = silent()
    const error = vi.spyOn(log, 'error')
    const n = new SdNotifier({ socket: '/run/x.sock', command: join(dir, 'missing'), log })
    n.ready()
    await n.idle()
    n.watchdog(); n.watchdog()
    await n.idle()
    expect(error).toHaveBeenCalledTimes(1)
    expect(n.spawned).toBe(1)
    expect(n.enabled).toBe(false)
  })
})

describe('systemdFromEnv', () => {
  it('reads WATCHDOG_USEC only with a socket and for this PID', () => {
    const log = silent()
    expect(systemdFromEnv({ NOTIFY_SOCKET: '/s', WATCHDOG_USEC: '30000000' }, log, 7).watchdogMs).toBe(30_000)
    expect(systemdFromEnv({ NOTIFY_SOCKET: '/s', WATCHDOG_USEC: '30000000', WATCHDOG_PID: '7' }, log, 7).watchdogMs).toBe(30_000)
    expect(systemdFromEnv({ NOTIFY_SOCKET: '/s', WATCHDOG_USEC: '30000000', WATCHDOG_PID: '8' }, log, 7).watchdogMs).toBeUndefined()
    expect(systemdFromEnv({ WATCHDOG_USEC: '30000000' }, log, 7).watchdogMs).toBeUndefined()
    expect(systemdFromEnv({ NOTIFY_SOCKET: '/s' }, log, 7).watchdogMs).toBeUndefined()
  })
})

describe('SystemdFeature', () => {
  afterEach(() => { vi.useRealTimers() })

  function feature(problem: () => string | null, graceMs: number) {
    const sent: string[] = []
    const notifier = { enabled: true, ready: () => sent.push('ready'), status: (s: string) => sent.push(`status ${s}`), stopping: () => sent.push('stopping'), watchdog: () => sent.push('ping') } as unknown as SdNotifier
    const f = new SystemdFeature({ notifier, watchdogMs: 1000, problem, graceMs, status: () => 'up', log: silent() })
    return { f, sent }
  }

  it('pings at half the interval while healthy; a problem withholds pings only after the grace', () => {
    vi.useFakeTimers()
    let problem: string | null = null
    const { f, sent } = feature(() => problem, 2000)
    f.start()
    vi.advanceTimersByTime(1000)
    expect(f.pings).toBe(2)
    problem = 'MQTT client not connected'
    vi.advanceTimersByTime(2000) // inside the grace: pings go on
    expect(f.pings).toBe(6)
    vi.advanceTimersByTime(2000)
    expect(f.pings).toBe(6)
    expect(sent).toContain('status up; unhealthy: MQTT client not connected')
    problem = null
    vi.advanceTimersByTime(500)
    expect(f.pings).toBe(7)
    f.stop()
    vi.advanceTimersByTime(5000)
    expect(f.pings).toBe(7)
  })

  it('READY and STOPPING are sent once', () => {
    const { f, sent } = feature(() => null, 0)
    f.ready(); f.ready(); f.stopping(); f.stopping()
    expect(sent).toEqual(['ready', 'stopping'])
  })
})
