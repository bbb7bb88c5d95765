// systemd Type=notify and the watchdog on real processes and the real protocol: the hub and the
// node agent run with NOTIFY_SOCKET pointing at a unix datagram socket this test binds (as systemd
// would) and WATCHDOG_USEC=1 s, and talk to it through Debian's systemd-notify. READY=1 only once
// the process is ready, STATUS= lines, WATCHDOG=1 every half interval, none while the process is
// stopped (SIGSTOP: the event loop cannot run), again after SIGCONT, STOPPING=1 on SIGTERM. The
// agent keeps pinging while the hub is gone (it answers offline; a restart would fix nothing).
// A process whose loop is busy (a real hang, not a signal) sends none until it is free again.
// Then both units pass `systemd-analyze verify`.
// Under CI (.ci/run installs python3, socat and systemd) a missing tool fails; elsewhere it skips.
import { execFile } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import { afterEach, describe, expect, it } from 'vitest'
import { addNode, killAll, root, sleep, spawnTracked, startAgent, startHub, startMosquitto, tempDir, waitFor } from './support/harness.js'
import { hasTool, startNotifySocket, type NotifySocket } from './support/notify-socket.js'

const exec = promisify(execFile)
const WATCHDOG_USEC = '1000000' // pings every 500 ms
const canNotify = hasTool('python3') && hasTool('systemd-notify')

afterEach(async () => { await killAll() })

/** Pings received in [from, to). */
const pingsIn = (sock: NotifySocket, from: number, to: number) => sock.with('WATCHDOG', from).filter((m) => m.at < to).length

/** SIGSTOP for 2.5 s (five ping intervals): no ping arrives; after SIGCONT they come back. */
async function stopAndContinue(sock: NotifySocket, kill: (sig: NodeJS.Signals) => void): Promise<void> {
  kill('SIGSTOP')
  // A child started just before the stop may still deliver its datagram: allow it 300 ms.
  const quietFrom = Date.now() + 300
  await sleep(2500)
  const quietTo = Date.now()
  kill('SIGCONT')
  expect(pingsIn(sock, quietFrom, quietTo)).toBe(0)
  await sock.waitFor('WATCHDOG', quietTo, { timeoutMs: 3000 })
  await sleep(1200)
  expect(sock.with('WATCHDOG', quietTo).length).toBeGreaterThanOrEqual(2)
}

describe.skipIf(!canNotify && !process.env.CI)('systemd notify protocol (needs python3 and systemd-notify)', () => {
  it('hub: READY=1 when ready, STATUS= on change, pings only while its loop runs, STOPPING=1 on SIGTERM', async () => {
    const sock = await startNotifySocket()
    const hub = await startHub({ wait: false, env: { NOTIFY_SOCKET: sock.path, WATCHDOG_USEC } })
    const ready = await sock.waitFor('READY', 0, { timeoutMs: 15_000 })
    // READY=1 means ready: /readyz agrees the moment it arrives.
    expect((await hub.http('/readyz')).status).toBe(200)
    expect(ready.fields.READY).toBe('1')
    expect(ready.fields.STATUS).toBe('ready: 0 nodes online, 0 sessions')
    expect(ready.fields.MAINPID).toBe(String(hub.proc.pid))
    expect(sock.with('READY')).toHaveLength(1)

    // Pings every ~500 ms.
    const t0 = Date.now()
    await sleep(2000)
    expect(pingsIn(sock, t0, Date.now())).toBeGreaterThanOrEqual(3)

    // A node comes online: STATUS= follows.
    const password = await addNode(hub.stateDir, 'hall')
    const agent = await startAgent({ nodeId: 'hall', mqttUrl: hub.mqttUrl, password })
    await agent.waitState('online')
    const status = await sock.waitFor('STATUS', ready.at + 1, { timeoutMs: 5000 })
    expect(status.fields.STATUS).toBe('ready: 1 nodes online, 0 sessions')

    // A stopped process runs no event loop: no pings, and systemd would restart it.
    await stopAndContinue(sock, (sig) => hub.kill(sig))

    const beforeStop = Date.now()
    hub.kill('SIGTERM')
    const stopping = await sock.waitFor('STOPPING', beforeStop, { timeoutMs: 5000 })
    expect(stopping.fields.STATUS).toMatch(/^draining: /)
    expect(await hub.exited).toEqual({ code: 0, signal: null })
  })

  it('agent: READY=1 once started, pings while the hub is gone, none while stopped, STOPPING=1 on SIGTERM', async () => {
    const hub = await startHub()
    const password = await addNode(hub.stateDir, 'hall')
    const sock = await startNotifySocket()
    const agent = await startAgent({ nodeId: 'hall', mqttUrl: hub.mqttUrl, password, wait: false, env: { NOTIFY_SOCKET: sock.path, WATCHDOG_USEC } })
    const ready = await sock.waitFor('READY', 0, { timeoutMs: 15_000 })
    expect((await agent.health()).nodeId).toBe('hall')
    expect(ready.fields.STATUS).toMatch(/^(offline|recovering|online) \(.*\), no offline mode$/)
    await agent.waitState('online')
    await sock.waitFor('STATUS', 0, { timeoutMs: 5000 })
    await waitForStatus(sock, /^online /)

    // The hub dies: the agent goes offline and keeps pinging (offline mode is its job, not a fault).
    hub.kill('SIGKILL')
    await agent.waitState('offline')
    await waitForStatus(sock, /^offline /)
    const t0 = Date.now()
    await sleep(2000)
    expect(pingsIn(sock, t0, Date.now())).toBeGreaterThanOrEqual(3)

    await stopAndContinue(sock, (sig) => agent.kill(sig))

    const beforeStop = Date.now()
    agent.kill('SIGTERM')
    await sock.waitFor('STOPPING', beforeStop, { timeoutMs: 5000 })
    expect(await agent.exited).toEqual({ code: 0, signal: null })
  })

  it('a busy event loop (not just a stopped process) sends no pings until it is free again', async () => {
    const sock = await startNotifySocket()
    // The feature as the roots use it, in a process that blocks its own loop for 2.5 s.
    const script = `
      import { SdNotifier, SystemdFeature, createLogger } from ${JSON.stringify(join(root, 'broker', 'dist', 'index.js'))}
      const log = createLogger({ name: 'hang', level: 'silent' })
      const f = new SystemdFeature({ notifier: new SdNotifier({ socket: process.env.NOTIFY_SOCKET, log }), watchdogMs: 1000, status: () => 'up', log })
      f.start(); f.ready()
      setTimeout(() => { console.log('hang ' + Date.now()); const end = Date.now() + 2500; while (Date.now() < end); console.log('free ' + Date.now()) }, 1500)
      setTimeout(() => { f.stop(); process.exit(0) }, 5500)`
    const { out, exited } = spawnTracked(process.execPath, ['--input-type=module', '-e', script], { NOTIFY_SOCKET: sock.path })
    expect(await exited).toEqual({ code: 0, signal: null })
    const [, hangAt] = /hang (\d+)/.exec(out.text) ?? []
    const [, freeAt] = /free (\d+)/.exec(out.text) ?? []
    expect(pingsIn(sock, 0, Number(hangAt))).toBeGreaterThanOrEqual(2)
    expect(pingsIn(sock, Number(hangAt) + 300, Number(freeAt))).toBe(0)
    expect(pingsIn(sock, Number(freeAt), Infinity)).toBeGreaterThanOrEqual(2)
  })
})

describe.skipIf((!canNotify || !hasTool('mosquitto')) && !process.env.CI)('systemd watchdog and an unhealthy MQTT client (needs python3, systemd-notify, mosquitto)', () => {
  it('pings stop once the MQTT client has been down past the grace period, STATUS= says why, and resume when it is back', async () => {
    const sock = await startNotifySocket()
    const broker = await startMosquitto({ users: [{ username: 'u', password: 'p' }], persistence: false })
    // The feature as the hub wires it (problem: its MQTT client not connected; a grace period),
    // with a real MQTT.js client and a real broker that the test stops and starts again.
    const mqttUrl = pathToFileURL(createRequire(import.meta.url).resolve('mqtt')).href
    const script = `
      import { SdNotifier, SystemdFeature, createLogger } from ${JSON.stringify(join(root, 'broker', 'dist', 'index.js'))}
      import mqtt from ${JSON.stringify(mqttUrl)}
      const log = createLogger({ name: 'mqtt-health', level: 'silent' })
      const client = mqtt.connect(${JSON.stringify(broker.url)}, { username: 'u', password: 'p', reconnectPeriod: 200, connectTimeout: 1000 })
      client.on('connect', () => console.log('connected ' + Date.now()))
      client.on('close', () => console.log('closed ' + Date.now()))
      client.on('error', () => {})
      const f = new SystemdFeature({ notifier: new SdNotifier({ socket: process.env.NOTIFY_SOCKET, log }), watchdogMs: 1000, graceMs: 1000,
        problem: () => client.connected ? null : 'MQTT client not connected', status: () => 'ready', statusIntervalMs: 200, log })
      client.once('connect', () => { f.start(); f.ready() })
      process.on('SIGTERM', () => { f.stop(); client.end(true); process.exit(0) })`
    const { proc, out } = spawnTracked(process.execPath, ['--input-type=module', '-e', script], { NOTIFY_SOCKET: sock.path })
    await sock.waitFor('READY', 0, { timeoutMs: 10_000 })
    await sleep(1500)
    expect(sock.with('WATCHDOG').length).toBeGreaterThanOrEqual(2)

    broker.kill('SIGKILL')
    await waitFor(() => /closed (\d+)/.exec(out.text), { what: 'client closed' })
    const downAt = Number(/closed (\d+)/.exec(out.text)![1])
    await waitForStatus(sock, /^ready; unhealthy: MQTT client not connected$/)
    // Within the grace period pings may continue; past it (plus one interval) none arrive.
    await sleep(3000)
    expect(pingsIn(sock, downAt + 1000 + 600, Date.now())).toBe(0)

    const again = await startMosquitto({ port: broker.port, users: [{ username: 'u', password: 'p' }], persistence: false })
    await waitFor(() => /connected \d+[\s\S]*closed \d+[\s\S]*connected (\d+)/.exec(out.text), { timeoutMs: 10_000, what: 'client reconnected' })
    const upAt = Date.now()
    await sock.waitFor('WATCHDOG', upAt, { timeoutMs: 3000 })
    await waitForStatus(sock, /^ready$/)
    proc.kill('SIGTERM')
    again.kill()
  })
})

async function waitForStatus(sock: NotifySocket, re: RegExp): Promise<void> {
  await waitFor(() => sock.with('STATUS').some((m) => re.test(m.fields.STATUS ?? '')), { timeoutMs: 5000, what: `STATUS= matching ${re}` })
}

describe.skipIf(!hasTool('systemd-analyze') && !process.env.CI)('systemd units (needs systemd-analyze)', () => {
  it.each(['mirrormesh-hub.service', 'mirrormesh-agent.service'])('%s: Type=notify with a watchdog, and systemd-analyze verify is silent', async (name) => {
    const unit = await readFile(join(root, 'deploy', 'systemd', name), 'utf8')
    for (const line of ['Type=notify', 'NotifyAccess=all', 'WatchdogSec=30s', 'Restart=always', 'NoNewPrivileges=true', 'ProtectSystem=strict']) {
      expect(unit.split('\n')).toContain(line)
    }
    // verify wants ExecStart's binary to exist: point it at this Node (wherever it is installed).
    const dir = await tempDir('mm-units-')
    await writeFile(join(dir, name), unit.replace(/^ExecStart=\/usr\/bin\/node /m, `ExecStart=${process.execPath} `))
    const r = await exec('systemd-analyze', ['verify', join(dir, name)]).then(
      ({ stdout, stderr }) => ({ code: 0, out: stdout + stderr }),
      (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? 1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` }),
    )
    // verify exits 0 even for unknown keys or bad values ("ignoring"): any output is a finding.
    expect(r).toEqual({ code: 0, out: '' })
  })
})
