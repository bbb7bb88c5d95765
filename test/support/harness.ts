// Real processes for integration, fault and benchmark runs: hubs, agents and
// Mosquitto on loopback ports, tracked so every test can clean up what it started.
import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { mkdtemp, writeFile, rm, mkdir } from 'node:fs/promises'
import { createServer, connect, type AddressInfo, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { basename, join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const here = dirname(fileURLToPath(import.meta.url))
/** The repository root, from test/support (vitest) or test/support/dist (compiled, for the benchmarks). */
export const root = join(here, basename(here) === 'dist' ? '../../..' : '../..')
export const cliPath = join(root, 'ops', 'dist', 'cli.js')
const exec = promisify(execFile)
const live = new Set<ChildProcess>()

export type Env = Record<string, string | undefined>
export interface Output { text: string; lines: string[] }
export interface Exit { code: number | null; signal: NodeJS.Signals | null }
export interface HttpResult { status: number; body: any } // eslint-disable-line @typescript-eslint/no-explicit-any -- JSON of any route

/** A free loopback TCP port (closed again before it is returned). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo
      srv.close(() => resolve(port))
    })
  })
}

/** `n` distinct free ports: every listener stays open until all are chosen, so none repeats. */
export async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = []
  try {
    for (let i = 0; i < n; i++) {
      const srv = createServer()
      await new Promise<void>((resolve, reject) => { srv.on('error', reject); srv.listen(0, '127.0.0.1', resolve) })
      servers.push(srv)
    }
    return servers.map((s) => (s.address() as AddressInfo).port)
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))))
  }
}

export async function tempDir(prefix = 'mm-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix))
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

export interface WaitOptions { timeoutMs?: number; intervalMs?: number; what?: string }
/** What a truthy value of T can be. */
export type Truthy<T> = Exclude<T, false | null | undefined | 0 | ''>

/** Poll `fn` until it returns a truthy value; throw with `what` after `timeoutMs`. */
export async function waitFor<T>(fn: () => T | Promise<T>, { timeoutMs = 10_000, intervalMs = 25, what = 'condition' }: WaitOptions = {}): Promise<Truthy<T>> {
  const deadline = Date.now() + timeoutMs
  let last: Error | undefined
  for (;;) {
    try {
      const v = await fn()
      if (v) return v as Truthy<T>
    } catch (err) {
      last = err as Error
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${last.message})` : ''}`)
    await sleep(intervalMs)
  }
}

/** Run the CLI to completion. */
export interface CliResult { code: number; stdout: string; stderr: string }

export async function cli(args: string[], env: Env = {}, { timeoutMs = 20_000 }: { timeoutMs?: number } = {}): Promise<CliResult> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [cliPath, ...args], { env: { ...baseEnv(), ...env }, timeout: timeoutMs })
    return { code: 0, stdout, stderr }
  } catch (e) {
    const err = e as { code?: unknown; stdout?: string; stderr?: string }
    return { code: typeof err.code === 'number' ? err.code : 1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' }
  }
}

function baseEnv(): Env {
  // Only what a service would have: no inherited MQTT/hub settings from the developer's shell.
  const keep = ['PATH', 'HOME', 'LANG', 'TMPDIR', 'NODE_OPTIONS']
  return Object.fromEntries(keep.filter((k) => process.env[k] !== undefined).map((k) => [k, process.env[k]]))
}

/** Spawn a long-running process, keep its output, register it for cleanup. */
export interface Tracked { proc: ChildProcess; out: Output; exited: Promise<Exit> }

export function spawnTracked(cmd: string, args: string[], env: Env, { cpuList, stdin = false }: { cpuList?: string; stdin?: boolean } = {}): Tracked {
  const argv: [string, string[]] = cpuList ? ['taskset', ['-c', cpuList, cmd, ...args]] : [cmd, args]
  const proc = spawn(argv[0], argv[1], { env: { ...baseEnv(), ...env }, stdio: [stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] })
  const out: Output = { text: '', lines: [] }
  const onData = (chunk: string) => {
    out.text += chunk
    if (out.text.length > 2_000_000) out.text = out.text.slice(-1_000_000)
  }
  proc.stdout!.setEncoding('utf8').on('data', onData)
  proc.stderr!.setEncoding('utf8').on('data', onData)
  const exited = new Promise<Exit>((resolve) => proc.once('exit', (code, signal) => { live.delete(proc); resolve({ code, signal }) }))
  live.add(proc)
  return { proc, out, exited }
}

/** Kill everything this process started (SIGKILL after a grace period). */
export async function killAll(): Promise<void> {
  const procs = [...live]
  for (const p of procs) {
    try { p.kill('SIGCONT') } catch {}
    try { p.kill('SIGTERM') } catch {}
  }
  await Promise.all(procs.map((p) => Promise.race([new Promise((r) => p.once('exit', r)), sleep(3000).then(() => { try { p.kill('SIGKILL') } catch {} })])))
  live.clear()
}

async function httpJson(port: number, path: string, init?: RequestInit): Promise<HttpResult> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { ...init, signal: AbortSignal.timeout(3000) })
  const text = await res.text()
  let body: unknown
  try { body = JSON.parse(text) } catch { body = text }
  return { status: res.status, body }
}

/**
 * Start a hub (`mirrormesh hub`) on loopback. Ports are chosen up front so a restarted
 * hub comes back on the same ones. Pass `mqttUrl` to use an external broker.
 */
export interface HubOptions {
  stateDir?: string
  mqttPort?: number
  httpPort?: number
  wsPort?: number
  /** External broker instead of the embedded one. */
  mqttUrl?: string
  username?: string
  password?: string
  env?: Env
  cpuList?: string
  /** false: return at once, without waiting for readiness. */
  wait?: boolean
  /** What 'ready' means (default /readyz). */
  readyPath?: string
  timeoutMs?: number
}

export type HubProc = Awaited<ReturnType<typeof startHub>>

/** How long a hub or agent may take to be ready (HUB_READY_TIMEOUT_MS raises it on a loaded machine). */
const hubReadyMs = Number(process.env.HUB_READY_TIMEOUT_MS ?? 15_000)

export async function startHub(opts: HubOptions = {}) {
  const stateDir = opts.stateDir ?? (await tempDir('mm-hub-'))
  const [p1, p2, p3] = (await freePorts(3)) as [number, number, number]
  const mqttPort = opts.mqttPort ?? p1
  const httpPort = opts.httpPort ?? p2
  const wsPort = opts.wsPort ?? p3
  const env: Env = {
    MIRRORMESH_STATE_DIR: stateDir,
    MQTT_HOST: '127.0.0.1',
    MQTT_PORT: String(mqttPort),
    MQTT_WS_PORT: String(wsPort),
    HTTP_HOST: '127.0.0.1',
    HTTP_PORT: String(httpPort),
    LOG_LEVEL: 'info',
    // Building the offline bundle costs both cores ~10 s; only the offline-mode tests need it.
    BUNDLE_ENABLED: 'false',
    ...(opts.mqttUrl ? { MQTT_URL: opts.mqttUrl, MQTT_USERNAME: opts.username, MQTT_PASSWORD: opts.password } : {}),
    ...opts.env,
  }
  const { proc, out, exited } = spawnTracked(process.execPath, [cliPath, 'hub'], env, { cpuList: opts.cpuList })
  const hub = {
    proc, out, exited, stateDir, mqttPort, httpPort, wsPort, env,
    mqttUrl: opts.mqttUrl ?? `mqtt://127.0.0.1:${mqttPort}`,
    http: (path: string, init?: RequestInit) => httpJson(httpPort, path, init),
    node: async (id: string) => (await httpJson(httpPort, `/api/nodes/${id}`)).body,
    kill: (sig: NodeJS.Signals = 'SIGKILL') => proc.kill(sig),
  }
  if (opts.wait !== false) {
    await Promise.race([
      // readyPath '/healthz' for hubs that are up but deliberately not ready (a broken engine).
      waitFor(async () => (await hub.http(opts.readyPath ?? '/readyz')).status === 200, { timeoutMs: opts.timeoutMs ?? hubReadyMs, what: `hub ${opts.readyPath ?? '/readyz'}` }),
      exited.then(({ code }) => { throw new Error(`hub exited with ${code} before ready:\n${out.text}`) }),
    ])
  }
  return hub
}

/** `mirrormesh node add` against a hub's state dir; returns the printed password. */
export async function addNode(stateDir: string, id: string, role = 'node'): Promise<string> {
  const r = await cli(['node', 'add', id, '--role', role], { MIRRORMESH_STATE_DIR: stateDir })
  if (r.code !== 0) throw new Error(`node add ${id} failed: ${r.stderr}`)
  return r.stdout.trim().split('\n').at(-1)!
}

/** The environment `mirrormesh agent` gets from startAgent-style options. */
export interface AgentOptions {
  nodeId: string
  mqttUrl: string
  password?: string
  hubStaleMs?: number
  env?: Env
  healthPort?: number
  cpuList?: string
  /** Give the agent a stdin pipe (AUDIO_SOURCE=stdin). */
  stdin?: boolean
  /** false: return at once, without waiting for /healthz. */
  wait?: boolean
}

export function agentEnv(opts: AgentOptions, healthPort: number): Env {
  return {
    NODE_ID: opts.nodeId,
    MQTT_URL: opts.mqttUrl,
    MQTT_PASSWORD: opts.password,
    HEALTH_HOST: '127.0.0.1',
    HEALTH_PORT: String(healthPort),
    HUB_STALE_MS: String(opts.hubStaleMs ?? 3000),
    LOG_LEVEL: 'info',
    ...opts.env,
  }
}

/** Start a node agent (`mirrormesh agent`). */
export type AgentProc = Awaited<ReturnType<typeof startAgent>>

export async function startAgent(opts: AgentOptions) {
  const healthPort = opts.healthPort ?? (await freePort())
  const env = agentEnv(opts, healthPort)
  const { proc, out, exited } = spawnTracked(process.execPath, [cliPath, 'agent'], env, { cpuList: opts.cpuList, stdin: opts.stdin })
  const agent = {
    proc, out, exited, healthPort, env,
    health: async () => (await httpJson(healthPort, '/healthz')).body,
    /** Resolves with the time the agent's /healthz first reported `state`. */
    waitState: (state: string, timeoutMs = 10_000): Promise<number> => waitFor(async () => (await agent.health()).state === state && Date.now(), { timeoutMs, intervalMs: 10, what: `agent ${opts.nodeId} state ${state}` }),
    kill: (sig: NodeJS.Signals = 'SIGKILL') => proc.kill(sig),
  }
  if (opts.wait !== false) {
    await Promise.race([
      waitFor(() => agent.health(), { timeoutMs: hubReadyMs, what: 'agent /healthz' }),
      exited.then(({ code }) => { throw new Error(`agent exited with ${code}:\n${out.text}`) }),
    ])
  }
  return agent
}

/**
 * Start Mosquitto on loopback with a password file and an ACL derived from the
 * mirrormesh contract (see `mirrormesh broker mosquitto-acl`), persistence in `dir`.
 */
export interface MosquittoOptions { port?: number; dir?: string; users?: Array<{ username: string; password: string }>; acl?: string; persistence?: boolean }

export type MosquittoProc = Awaited<ReturnType<typeof startMosquitto>>

export async function startMosquitto({ port, dir, users = [], acl, persistence = true }: MosquittoOptions = {}) {
  dir = dir ?? (await tempDir('mm-mosq-'))
  port = port ?? (await freePort())
  await mkdir(dir, { recursive: true })
  const passwd = join(dir, 'passwd')
  await writeFile(passwd, '')
  for (const u of users) await exec('mosquitto_passwd', ['-b', passwd, u.username, u.password])
  const lines = [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous false',
    `password_file ${passwd}`,
    `persistence ${persistence ? 'true' : 'false'}`,
    `persistence_location ${dir}/`,
    'autosave_interval 1',
    'log_dest stdout',
    // Mosquitto leaves Nagle on by default: ~35 ms p99 on small messages.
    'set_tcp_nodelay true',
  ]
  // As root, Mosquitto drops to the `mosquitto` user, which cannot read our private temp dir.
  if (process.getuid?.() === 0) lines.push('user root')
  if (acl) {
    await writeFile(join(dir, 'acl'), acl)
    lines.push(`acl_file ${join(dir, 'acl')}`)
  }
  await writeFile(join(dir, 'mosquitto.conf'), lines.join('\n') + '\n')
  const { proc, out, exited } = spawnTracked('mosquitto', ['-c', join(dir, 'mosquitto.conf')], {})
  const m = { proc, out, exited, port, dir, url: `mqtt://127.0.0.1:${port}`, kill: (sig: NodeJS.Signals = 'SIGTERM') => proc.kill(sig) }
  await Promise.race([
    waitFor(() => new Promise<boolean>((resolve) => {
      const c = connect(port, '127.0.0.1', () => { c.destroy(); resolve(true) })
      c.on('error', () => resolve(false))
    }), { timeoutMs: 5000, what: 'mosquitto listening' }),
    exited.then(({ code }) => { throw new Error(`mosquitto exited with ${code}:\n${out.text}`) }),
  ])
  return m
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true })
}
