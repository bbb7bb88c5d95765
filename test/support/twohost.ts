// The two-host test bed: the hub and 1..N mirror nodes each in a network namespace of their own,
// joined by a bridge (in a namespace of its own) on a private 10.213.X.0/24, every name and
// address made and removed by the test. Nothing listens on the host namespace.
//
// Each process starts the way its systemd unit starts it: ExecStart= of deploy/systemd/*.service
// (the installed paths mapped into this repo), with the environment of EnvironmentFile=, which is a
// filled-in copy of deploy/env/*.example, NOTIFY_SOCKET and WATCHDOG_USEC, run in its host's
// namespace through `ip netns exec` (which also bind-mounts /etc/netns/<ns>/hosts: `hub.lan` is
// the hub's address, as the LAN's DNS would say). "Started" means READY=1 on the notify socket.
//
// API (stable; extend, do not change):
//   bedSupport(): { ok, reason }              probes `ip netns add`, veth, bridge, tc's blackhole qdisc, socat, python3, systemd-notify
//   describeBed(title, fn)                    describe(); describe.skip with the reason where the kernel
//                                             forbids namespaces; with $CI set a failing test instead
//   sweepBeds()                               removes namespaces and /etc/netns dirs of dead test pids
//   createBed({ nodes, hubEnv, nodeEnv, restart, tls }) → Bed (namespaces up; nothing started)
//   Bed:
//     dir, subnet ('10.213.X'), hub: Host, nodes: Record<id, NodeHost>, overrides: Override[]
//     startHub(), killHub() (SIGKILL), stopHub(signal = SIGTERM), restartHub() (stop + start)
//     addNode(id) → password (`mirrormesh node add` in the hub's namespace, against its state dir;
//       writes MQTT_PASSWORD into the node's agent.env)
//     startNode(id, { stdin }), killNode(id) (SIGKILL), stopNode(id, signal = SIGTERM)
//     startAll(): hub and every node at once (power recovery)
//     partition(id) / heal(id): silently drop every packet between the host ('hub' or a node id) and the bridge, both ways
//       (tc's blackhole qdisc on both ends of its veth, static neighbour entries: no RST, no ICMP,
//       no failed ARP, carrier stays up)
//     exec(host | ns, argv, { env, timeoutMs }) → { code, stdout, stderr }
//     http(host, path, init?, { port }) → { status, body }: HTTP to 127.0.0.1:<port> inside that
//       host's namespace (hub: HTTP_PORT, node: HEALTH_PORT), through a socat bridge on a unix socket;
//       the hub's /api/ paths get its admin token (<hub stateDir>/admin-token) unless init sets authorization
//     tls() → boolean: `mirrormesh tls init --name hub.lan --ip <hub>` on the hub when the CLI has it,
//       ca.pem copied to each node where its env file's *_CA says (startHub() runs it once by itself)
//     mirrormesh(host, args): the CLI on that host with its env file; forward(host, port) → unix socket
//     setEnv(host, set, why): more settings in a host's env file, for its next start (listed in overrides)
//     mqttProbe(host, { url, username, password, clientId?, ca?, subscribe?, publish?, waitMs? }) → { ok, error?, retained }:
//       one real MQTT connect from inside that host's namespace (MQTT.js, in a child `node`), `publish`
//       sent (QoS 1), and the retained messages on `subscribe` (topic → payload text) after waitMs; the password travels in
//       the child's environment, never in argv or output
//     teardown(): kill every process, delete the namespaces and /etc/netns dirs, remove the temp dir
//       (BED_KEEP=1 keeps the temp dir: env files, state, logs/<kind>.<run>.log)
//   Bed processes are also in harness.ts's tracked set: a suite sharing one bed across tests must
//   not call killAll() between them.
//   Host: { name, ns, ip, root (its filesystem: etc/mirrormesh, var/lib/…), env (what the process
//     gets), envFile, stateDir, notify (its NotifySocket), proc?: Service, runs: Service[] }
//   Service: { proc, pid, out (text so far), log (file), startedAt, exited }
//
// Paths the shipped files name (/etc/mirrormesh, /var/lib/mirrormesh*, /opt/mirrormesh) are mapped to
// <host.root>/<same path> (and /opt/mirrormesh to this repo); every other difference from the shipped
// env files is listed in bed.overrides with the reason, so a test can print them.
import { execFile, execFileSync } from 'node:child_process'
import { createWriteStream, existsSync, readFileSync, readdirSync, rmSync, rmdirSync } from 'node:fs'
import { chmod, copyFile, mkdir, readFile, writeFile } from 'node:fs/promises'
import { request, type IncomingHttpHeaders } from 'node:http'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, it } from 'vitest'
import { root, sleep, spawnTracked, tempDir, waitFor, type Env, type Exit, type HttpResult, type Output } from './harness.js'
import { hasTool, startNotifySocket, type NotifySocket } from './notify-socket.js'

const execP = promisify(execFile)
const PREFIX = 'mmbed-'

// --- kernel support ---------------------------------------------------------------------------

let support: { ok: boolean; reason?: string } | undefined
/** Can this kernel/user make network namespaces, veth pairs, a bridge and a blackhole qdisc? */
export function bedSupport(): { ok: boolean; reason?: string } {
  if (support) return support
  const ns = `${PREFIX}${process.pid}-probe`
  const run = (args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] })
  try {
    run(['netns', 'add', ns])
    run(['-n', ns, 'link', 'add', 'p0', 'type', 'veth', 'peer', 'name', 'p1'])
    run(['-n', ns, 'link', 'add', 'br0', 'type', 'bridge'])
    execFileSync('tc', ['-n', ns, 'qdisc', 'add', 'dev', 'p0', 'root', 'blackhole'], { stdio: ['ignore', 'ignore', 'pipe'] })
    const missing = ['socat', 'python3', 'systemd-notify'].filter((t) => !hasTool(t))
    support = missing.length ? { ok: false, reason: `missing ${missing.join(', ')} (apt: socat python3 systemd): the bed reaches each host's loopback through socat and hears READY=1 through a python3 notify socket` } : { ok: true }
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string }
    support = { ok: false, reason: `network namespaces unavailable here (${(e.stderr?.toString() || e.message).trim()}): the two-host bed needs root with ip netns, veth, bridge and tc` }
  } finally {
    try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }) } catch { /* never made */ }
  }
  return support
}

/**
 * describe() for bed suites. Where the kernel forbids namespaces: describe.skip with the reason,
 * except under CI (which runs as root and installs iproute2), where that is a failure.
 */
export function describeBed(title: string, fn: () => void): void {
  const s = bedSupport()
  if (s.ok) describe(title, fn)
  else if (process.env.CI) describe(title, () => { it('has network namespaces', () => { throw new Error(s.reason) }) })
  else describe.skip(`${title} — skipped: ${s.reason}`, fn)
}

const alive = (pid: number): boolean => {
  try { process.kill(pid, 0); return true } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM' }
}

/** Namespaces (and /etc/netns dirs) left by test processes that died without tearing down. */
export function sweepBeds(): string[] {
  const swept: string[] = []
  let list = ''
  try { list = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }) } catch { return swept }
  const names = new Set(list.split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(PREFIX)))
  if (existsSync('/etc/netns')) for (const d of readdirSync('/etc/netns')) if (d.startsWith(PREFIX)) names.add(d)
  for (const ns of names) {
    const pid = Number(/^mmbed-(\d+)-/.exec(ns)?.[1])
    if (!pid || alive(pid)) continue
    killNamespace(ns)
    swept.push(ns)
  }
  return swept
}

function killNamespace(ns: string): void {
  try {
    const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n').filter(Boolean)
    for (const p of pids) try { process.kill(Number(p), 'SIGKILL') } catch { /* gone */ }
  } catch { /* no such namespace */ }
  try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }) } catch { /* already gone */ }
  rmSync(`/etc/netns/${ns}`, { recursive: true, force: true })
}

// --- systemd units and env files --------------------------------------------------------------

export interface Unit { execStart: string[]; environmentFile: string; workingDirectory?: string; stateDirectory?: string; watchdogSec?: number; timeoutStartSec?: number; restartSec?: number }

const seconds = (v: string | undefined): number | undefined => {
  if (!v) return undefined
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|sec|min|m)?$/.exec(v.trim())
  if (!m) return undefined
  const n = Number(m[1])
  return m[2] === 'ms' ? n / 1000 : m[2] === 'min' || m[2] === 'm' ? n * 60 : n
}

/** The [Service] settings of a unit file the bed needs (systemd's syntax, without specifiers). */
export function readUnit(path: string): Unit {
  const kv = new Map<string, string>()
  let section = ''
  for (const raw of readFileSync(path, 'utf8').split('\n')) {
    const line = raw.trim()
    if (!line || line.startsWith('#') || line.startsWith(';')) continue
    if (line.startsWith('[')) { section = line; continue }
    if (section !== '[Service]') continue
    const i = line.indexOf('=')
    kv.set(line.slice(0, i).trim(), line.slice(i + 1).trim())
  }
  const exec = kv.get('ExecStart')
  const envFile = kv.get('EnvironmentFile')
  if (!exec || !envFile) throw new Error(`${path}: no ExecStart= or EnvironmentFile= in [Service]`)
  return {
    // ExecStart prefixes (-@+!:) change how systemd runs it, not what: dropped.
    execStart: exec.replace(/^[-@+!:]+/, '').split(/\s+/),
    environmentFile: envFile.replace(/^-/, ''),
    workingDirectory: kv.get('WorkingDirectory'),
    stateDirectory: kv.get('StateDirectory'),
    watchdogSec: seconds(kv.get('WatchdogSec')),
    timeoutStartSec: seconds(kv.get('TimeoutStartSec')),
    restartSec: seconds(kv.get('RestartSec')),
  }
}

/** An EnvironmentFile= as systemd reads it: KEY=VALUE lines, # and ; lines are comments, quotes stripped. */
export function parseEnvFile(text: string): Env {
  const env: Env = {}
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (!line || line.startsWith('#') || line.startsWith(';')) continue
    const i = line.indexOf('=')
    if (i <= 0) continue
    let v = line.slice(i + 1).trim()
    // systemd keeps a trailing "# …" as part of the value: so does this parser.
    if (v.length >= 2 && (v[0] === '"' || v[0] === "'") && v.endsWith(v[0])) v = v.slice(1, -1)
    env[line.slice(0, i).trim()] = v
  }
  return env
}

/** `text` with KEY=VALUE lines replaced (commented-out `#KEY=` lines too), new keys appended. */
export function fillEnvFile(text: string, set: Env): string {
  const lines = text.split('\n')
  const done = new Set<string>()
  const out = lines.map((l) => {
    const m = /^\s*#?\s*([A-Z][A-Z0-9_]*)=/.exec(l)
    const key = m?.[1]
    if (!key || !(key in set) || done.has(key)) return l
    // A commented-out line stays a comment unless the bed sets it; an active one is replaced.
    done.add(key)
    const v = set[key]
    return v === undefined ? `#${l.replace(/^\s*#?\s*/, '')}` : `${key}=${v}`
  })
  const extra = Object.entries(set).filter(([k, v]) => !done.has(k) && v !== undefined).map(([k, v]) => `${k}=${v}`)
  if (extra.length) out.push('# --- set by the two-host test bed ---', ...extra)
  return out.join('\n').replace(/\n*$/, '\n')
}

const INSTALLED = ['/etc/mirrormesh', '/var/lib/mirrormesh', '/var/lib/mirrormesh-agent', '/opt/mirrormesh']
/** An installed path (/etc/mirrormesh/…, /var/lib/mirrormesh…/…, /opt/mirrormesh/…) on this host. */
function mapPath(hostRoot: string, p: string): string {
  if (p === '/opt/mirrormesh' || p.startsWith('/opt/mirrormesh/')) return join(root, p.slice('/opt/mirrormesh'.length))
  return INSTALLED.some((d) => p === d || p.startsWith(`${d}/`)) ? join(hostRoot, p) : p
}

// --- the bed ----------------------------------------------------------------------------------

export interface Service { proc: ReturnType<typeof spawnTracked>['proc']; pid: number; out: Output; log: string; startedAt: number; exited: Promise<Exit> }
export interface Override { host: string; key: string; shipped: string | undefined; used: string | undefined; why: string }
export interface Host {
  name: string
  kind: 'hub' | 'agent'
  ns: string
  ip: string
  /** This host's filesystem: the shipped paths live under it (root/etc/mirrormesh/hub.env, …). */
  root: string
  unit: Unit
  envFile: string
  /** What the process gets: the env file as systemd reads it, plus NOTIFY_SOCKET and WATCHDOG_USEC. */
  env: Env
  stateDir: string
  notify: NotifySocket
  /** The running process, if any. */
  proc?: Service
  /** Every start, in order. */
  runs: Service[]
  /** Bridge-side and host-side interface names of its veth pair. */
  veth: { bridge: string; inside: string }
}
export interface NodeHost extends Host { id: string; password?: string }

export interface BedOptions {
  /** Node ids, one namespace each (default ['kitchen']). */
  nodes?: string[]
  /** Settings on top of the filled-in hub.env (each listed in overrides). */
  hubEnv?: Env
  /** Settings on top of each filled-in agent.env. */
  nodeEnv?: Env | ((id: string) => Env)
  /** Restart=always as the units say (after RestartSec) when a process dies without stop*(). Default: off. */
  restart?: boolean
  /** TLS from `mirrormesh tls init` when the CLI has it ('auto', default), or never ('off'). */
  tls?: 'auto' | 'off'
  /** Why each override in hubEnv/nodeEnv is needed, by key (for the report). */
  why?: Record<string, string>
}

export type Bed = Awaited<ReturnType<typeof createBed>>
let beds = 0

export async function createBed(opts: BedOptions = {}) {
  const s = bedSupport()
  if (!s.ok) throw new Error(s.reason)
  sweepBeds()
  const ids = opts.nodes ?? ['kitchen']
  for (const id of ids) if (!/^[a-z0-9][a-z0-9-]{0,15}$/.test(id)) throw new Error(`node id ${id}: use a-z, 0-9, - (max 16) in the bed`)
  const tag = `${PREFIX}${process.pid}-${beds++}`
  const octet = 1 + Math.floor(Math.random() * 254)
  const subnet = `10.213.${octet}`
  const dir = await tempDir('mm-bed-')
  const bridgeNs = `${tag}-br`
  const namespaces = [bridgeNs]
  const services = new Set<Host>()
  const overrides: Override[] = []
  const forwards = new Map<string, string>()
  const stopping = new Set<Host>()
  let torn = false
  let tlsTried = false

  const ip = (args: string[]) => execP('ip', args).then(() => undefined)
  const tc = (args: string[]) => execP('tc', args).then(() => undefined)

  const hubUnit = readUnit(join(root, 'deploy/systemd/mirrormesh-hub.service'))
  const agentUnit = readUnit(join(root, 'deploy/systemd/mirrormesh-agent.service'))
  const hubExample = await readFile(join(root, 'deploy/env/hub.env.example'), 'utf8')
  const agentExample = await readFile(join(root, 'deploy/env/agent.env.example'), 'utf8')

  // Network: the bridge namespace, then one veth per host (eth0 inside, v<n> on the bridge).
  await ip(['netns', 'add', bridgeNs])
  await ip(['-n', bridgeNs, 'link', 'add', 'br0', 'type', 'bridge'])
  await ip(['-n', bridgeNs, 'link', 'set', 'br0', 'up'])
  await ip(['-n', bridgeNs, 'link', 'set', 'lo', 'up'])
  const hostsLines = [`${subnet}.1 hub.lan hub`, ...ids.map((id, i) => `${subnet}.${10 + i} ${id}.lan ${id}`)]
  let veths = 0
  async function makeHost(name: string, addr: string): Promise<{ ns: string; veth: Host['veth'] }> {
    const ns = `${tag}-${name}`
    const vb = `v${veths++}`
    await ip(['netns', 'add', ns])
    namespaces.push(ns)
    await ip(['-n', bridgeNs, 'link', 'add', vb, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns])
    await ip(['-n', bridgeNs, 'link', 'set', vb, 'master', 'br0', 'up'])
    await ip(['-n', ns, 'link', 'set', 'lo', 'up'])
    await ip(['-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0'])
    await ip(['-n', ns, 'link', 'set', 'eth0', 'up'])
    // `ip netns exec` bind-mounts these over /etc/hosts: hub.lan resolves as on the LAN.
    await mkdir(`/etc/netns/${ns}`, { recursive: true })
    await writeFile(`/etc/netns/${ns}/hosts`, ['127.0.0.1 localhost', '::1 localhost', ...hostsLines, ''].join('\n'))
    return { ns, veth: { bridge: vb, inside: 'eth0' } }
  }

  /** Writes the host's env file from the example with `set` filled in; returns what systemd would read. */
  async function writeEnv(h: Pick<Host, 'root' | 'envFile' | 'name'>, example: string, set: Env, why: Record<string, string>): Promise<Env> {
    const shipped = parseEnvFile(example)
    for (const [key, used] of Object.entries(set)) {
      if (shipped[key] === used) continue
      if (overrides.some((o) => o.host === h.name && o.key === key)) {
        overrides.find((o) => o.host === h.name && o.key === key)!.used = used
        continue
      }
      overrides.push({ host: h.name, key, shipped: shipped[key], used, why: why[key] ?? opts.why?.[key] ?? 'set by the test' })
    }
    await mkdir(join(h.envFile, '..'), { recursive: true })
    await writeFile(h.envFile, fillEnvFile(example, set), { mode: 0o600 })
    await chmod(h.envFile, 0o600)
    const read = parseEnvFile(await readFile(h.envFile, 'utf8'))
    // The shipped layout, on this host's filesystem.
    for (const [k, v] of Object.entries(read)) if (v?.startsWith('/')) read[k] = mapPath(h.root, v)
    return read
  }

  async function hostBase(name: string, kind: Host['kind'], addr: string, unit: Unit) {
    const { ns, veth } = await makeHost(name, addr)
    const hostRoot = join(dir, name, 'root')
    const stateDir = join(hostRoot, 'var/lib', unit.stateDirectory ?? `mirrormesh-${kind}`)
    await mkdir(stateDir, { recursive: true })
    await mkdir(join(dir, name, 'logs'), { recursive: true })
    return { name, kind, ns, ip: addr, root: hostRoot, unit, envFile: mapPath(hostRoot, unit.environmentFile), stateDir, notify: await startNotifySocket(), runs: [] as Service[], veth, env: {} as Env }
  }

  // The hub: hub.env as shipped, plus what a test machine (or a LAN) cannot do without.
  const hubShipped = parseEnvFile(hubExample)
  const hubSet: Env = {}
  const hubWhy: Record<string, string> = {}
  // Nodes fetch the offline bundle over HTTPS when the hub has a LAN listener for it; with plain
  // HTTP only, that HTTP API has to listen beyond loopback.
  if (!hubShipped.HTTPS_HOST && /^(127\.|localhost$|::1$)/.test(hubShipped.HTTP_HOST ?? '127.0.0.1')) {
    hubSet.HTTP_HOST = '0.0.0.0'
    hubWhy.HTTP_HOST = 'nodes on other hosts fetch the offline bundle from the hub\'s HTTP API (http://hub.lan:8080): on loopback they get "connection refused" and have no offline answers'
  }
  Object.assign(hubSet, opts.hubEnv)
  const hub: Host = await hostBase('hub', 'hub', `${subnet}.1`, hubUnit)
  hub.env = await writeEnv(hub, hubExample, hubSet, hubWhy)
  if (hub.stateDir !== hub.env.MIRRORMESH_STATE_DIR) hub.stateDir = hub.env.MIRRORMESH_STATE_DIR ?? hub.stateDir
  await mkdir(hub.stateDir, { recursive: true })

  const nodes: Record<string, NodeHost> = {}
  const nodeSets: Record<string, Env> = {}
  const nodeWhy: Record<string, string> = {
    NODE_ID: 'one env file per node: its id', ROOM: 'one env file per node: its room', MQTT_PASSWORD: 'from `mirrormesh node add` (the example leaves it empty on purpose)',
  }
  const agentShipped = parseEnvFile(agentExample)
  for (const [i, id] of ids.entries()) {
    const h = await hostBase(id, 'agent', `${subnet}.${10 + i}`, agentUnit)
    const set: Env = {}
    if (agentShipped.NODE_ID !== id) set.NODE_ID = id
    if (agentShipped.ROOM !== undefined && agentShipped.ROOM !== id) set.ROOM = id
    Object.assign(set, typeof opts.nodeEnv === 'function' ? opts.nodeEnv(id) : opts.nodeEnv)
    nodeSets[id] = set
    const node: NodeHost = Object.assign(h, { id })
    node.env = await writeEnv(node, agentExample, set, nodeWhy)
    node.stateDir = node.env.MIRRORMESH_STATE_DIR ?? node.stateDir
    await mkdir(node.stateDir, { recursive: true })
    nodes[id] = node
  }

  // Static neighbour entries between every pair of hosts: ARP never fails, so a partition is
  // pure silence (packets vanish) and never an early EHOSTUNREACH from a failed neighbour lookup.
  const all: Host[] = [hub, ...Object.values(nodes)]
  const macs = new Map<Host, string>()
  for (const h of all) macs.set(h, (JSON.parse((await execP('ip', ['-n', h.ns, '-j', 'link', 'show', 'eth0'])).stdout) as Array<{ address: string }>)[0]!.address)
  for (const a of all) for (const b of all) if (a !== b) await ip(['-n', a.ns, 'neigh', 'replace', b.ip, 'lladdr', macs.get(b)!, 'dev', 'eth0', 'nud', 'permanent'])

  const hostOf = (h: string | Host): Host => typeof h !== 'string' ? h : h === 'hub' ? hub : nodes[h] ?? (() => { throw new Error(`no host ${h} in the bed`) })()
  const nsOf = (h: string | Host): string => typeof h === 'string' && h.startsWith(PREFIX) ? h : hostOf(h).ns

  /** A command in a namespace (as root on that host). */
  async function exec(h: string | Host, argv: string[], { env, timeoutMs = 30_000 }: { env?: Env; timeoutMs?: number } = {}) {
    try {
      const { stdout, stderr } = await execP('ip', ['netns', 'exec', nsOf(h), ...argv], { env: { PATH: process.env.PATH, ...env }, timeout: timeoutMs, maxBuffer: 64 << 20 })
      return { code: 0, stdout, stderr }
    } catch (e) {
      const err = e as { code?: unknown; stdout?: string; stderr?: string; message: string }
      return { code: typeof err.code === 'number' ? err.code : 1, stdout: err.stdout ?? '', stderr: err.stderr || err.message }
    }
  }

  /** `mirrormesh <args>` on a host, with that host's env file (as an operator runs the CLI there). */
  const mirrormesh = (h: string | Host, args: string[], env: Env = {}) =>
    exec(h, [process.execPath, join(root, 'ops/bin/mirrormesh.js'), ...args], { env: { ...hostOf(h).env, ...env } })

  /** The unit's ExecStart=, installed paths mapped into this repo. */
  function argvOf(h: Host): string[] {
    const [bin, ...args] = h.unit.execStart
    const node = bin === '/usr/bin/node' || bin?.endsWith('/node') ? process.execPath : mapPath(h.root, bin!)
    return [node, ...args.map((a) => mapPath(h.root, a))]
  }

  async function start(h: Host, { stdin = false, wait = true, timeoutMs }: { stdin?: boolean; wait?: boolean; timeoutMs?: number } = {}): Promise<Service> {
    if (torn) throw new Error('bed torn down')
    if (h.proc) throw new Error(`${h.name} is already running (pid ${h.proc.pid})`)
    stopping.delete(h)
    // systemd's environment: no NODE_OPTIONS or TMPDIR of the test runner; the env file; the notify socket.
    const env: Env = { NODE_OPTIONS: undefined, TMPDIR: undefined, ...h.env, NOTIFY_SOCKET: h.notify.path, ...(h.unit.watchdogSec ? { WATCHDOG_USEC: String(h.unit.watchdogSec * 1e6) } : {}) }
    const log = join(dir, h.name, 'logs', `${h.kind}.${h.runs.length + 1}.log`)
    const file = createWriteStream(log)
    const startedAt = Date.now()
    // `ip netns exec` execs the command in place: the pid is the service's, as systemd's MAINPID.
    const t = spawnTracked('ip', ['netns', 'exec', h.ns, ...argvOf(h)], env, { stdin })
    t.proc.stdout!.on('data', (c: string) => file.write(c))
    t.proc.stderr!.on('data', (c: string) => file.write(c))
    const svc: Service = { proc: t.proc, pid: t.proc.pid!, out: t.out, log, startedAt, exited: t.exited }
    h.proc = svc
    h.runs.push(svc)
    services.add(h)
    void t.exited.then(() => {
      file.end()
      if (h.proc === svc) h.proc = undefined
      if (opts.restart && !stopping.has(h) && !torn) {
        // Restart=always, RestartSec=…: what systemd does with a process that died on its own.
        setTimeout(() => { if (!torn && !h.proc && !stopping.has(h)) start(h, { stdin, wait: false }).catch(() => undefined) }, (h.unit.restartSec ?? 0.1) * 1000)
      }
    })
    if (wait) await ready(h, svc, timeoutMs)
    return svc
  }

  /** READY=1 from this run (as Type=notify waits), or the exit that came first. */
  async function ready(h: Host, svc: Service, timeoutMs = (h.unit.timeoutStartSec ?? 90) * 1000): Promise<void> {
    await Promise.race([
      waitFor(() => h.notify.with('READY', svc.startedAt).find((m) => m.fields.READY === '1'), { timeoutMs, intervalMs: 50, what: `READY=1 from ${h.name}` }),
      svc.exited.then((x) => { throw new Error(`${h.name} exited (${x.code ?? x.signal}) before READY=1; log ${svc.log}:\n${svc.out.text.slice(-4000)}`) }),
    ])
  }

  async function stop(h: Host, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 30_000): Promise<Exit | undefined> {
    stopping.add(h)
    const svc = h.proc
    if (!svc) return undefined
    svc.proc.kill(signal)
    const x = await Promise.race([svc.exited, sleep(timeoutMs).then(() => undefined)])
    if (x) return x
    svc.proc.kill('SIGKILL')
    return svc.exited
  }

  /** Kill like a crash (SIGKILL). With restart: true the bed restarts it, as Restart=always would. */
  async function crash(h: Host): Promise<Exit | undefined> {
    const svc = h.proc
    if (!svc) return undefined
    svc.proc.kill('SIGKILL')
    return svc.exited
  }

  async function setLoss(id: string, on: boolean): Promise<void> {
    const n = hostOf(id)
    // blackhole drops every packet and reports success: the sender sees silence, not an error.
    const ends: Array<[string, string]> = [[bridgeNs, n.veth.bridge], [n.ns, n.veth.inside]]
    for (const [ns, dev] of ends) await tc(['-n', ns, 'qdisc', on ? 'replace' : 'del', 'dev', dev, 'root', ...(on ? ['blackhole'] : [])]).catch((e: unknown) => { if (on) throw e })
  }

  /** A unix socket in the temp dir that reaches 127.0.0.1:port inside the host's namespace. */
  async function forward(h: Host, port: number): Promise<string> {
    const key = `${h.name}:${port}`
    const have = forwards.get(key)
    if (have) return have
    const sock = join(dir, h.name, `fw-${port}.sock`)
    spawnTracked('ip', ['netns', 'exec', h.ns, 'socat', `UNIX-LISTEN:${sock},fork,unlink-early`, `TCP:127.0.0.1:${port}`], {})
    await waitFor(() => existsSync(sock), { timeoutMs: 5000, what: `socat forward to ${key}` })
    forwards.set(key, sock)
    return sock
  }

  /**
   * HTTP inside a host's namespace, on its loopback (hub: HTTP_PORT; node: HEALTH_PORT). The hub's
   * listener is on the LAN on the bed, so its /api/ needs the admin token: sent from
   * <hub stateDir>/admin-token unless the caller gives its own authorization header.
   */
  async function http(hostName: string | Host, path: string, init: { method?: string; body?: string; headers?: Record<string, string> } = {}, { port, timeoutMs = 5000 }: { port?: number; timeoutMs?: number } = {}): Promise<HttpResult & { headers: IncomingHttpHeaders }> {
    const h = hostOf(hostName)
    const p = port ?? Number(h.kind === 'hub' ? h.env.HTTP_PORT ?? 8080 : h.env.HEALTH_PORT ?? 8081)
    const given = Object.keys(init.headers ?? {}).some((k) => k.toLowerCase() === 'authorization')
    const tokenFile = join(h.stateDir, 'admin-token')
    if (h.kind === 'hub' && path.startsWith('/api/') && !given && existsSync(tokenFile)) {
      init = { ...init, headers: { ...init.headers, authorization: `Bearer ${(await readFile(tokenFile, 'utf8')).trim()}` } }
    }
    const socketPath = await forward(h, p)
    return new Promise((resolve, reject) => {
      const req = request({ socketPath, path, method: init.method ?? 'GET', headers: { host: `127.0.0.1:${p}`, ...(init.body ? { 'content-type': 'application/json' } : {}), ...init.headers }, timeout: timeoutMs }, (res) => {
        let text = ''
        res.setEncoding('utf8').on('data', (c: string) => { text += c }).on('end', () => {
          let body: unknown
          try { body = JSON.parse(text) } catch { body = text }
          resolve({ status: res.statusCode ?? 0, body, headers: res.headers })
        }).on('error', reject)
      })
      req.on('timeout', () => req.destroy(new Error(`HTTP ${path} on ${h.name}: timed out`)))
      req.on('error', reject)
      req.end(init.body)
    })
  }

  /** `mirrormesh tls init` on the hub when the CLI has it; the CA goes to each node where its env file says. */
  async function tls(): Promise<boolean> {
    if (opts.tls === 'off') return false
    // commander answers `x --help` for an unknown x with the top-level help: look for the command in it.
    const help = await mirrormesh(hub, ['--help'])
    if (!/^\s+tls\b/m.test(help.stdout)) return false
    const r = await mirrormesh(hub, ['tls', 'init', '--name', 'hub.lan', '--ip', hub.ip])
    if (r.code !== 0) throw new Error(`mirrormesh tls init failed: ${r.stderr}`)
    // The CA file each node's env names (MQTT_CA…): copied from the hub's state dir, as an operator would.
    const caOnHub = findFile(hub.root, /(^|[-_])ca\.(pem|crt)$/)
    for (const n of Object.values(nodes)) {
      for (const [k, v] of Object.entries(n.env)) {
        if (!/_CA$/.test(k) || !v || existsSync(v)) continue
        if (!caOnHub) throw new Error(`${k}=${v} on ${n.name}, but no CA file under the hub's ${hub.root} after tls init:\n${r.stdout}`)
        await mkdir(join(v, '..'), { recursive: true })
        await copyFile(caOnHub, v)
      }
    }
    return true
  }

  const bed = {
    dir, subnet, tag, hub, nodes, overrides, bridgeNs,
    /** True once tls() ran `mirrormesh tls init`. */
    tlsOn: false,
    exec, http, mirrormesh, forward,
    tls: async () => { tlsTried = true; bed.tlsOn = await tls(); return bed.tlsOn },
    /** Starts the hub (running tls() first, once, as the shipped hub.env needs its certificate). */
    async startHub(o: { wait?: boolean; timeoutMs?: number } = {}) {
      if (!tlsTried) await bed.tls()
      return start(hub, o)
    },
    killHub: () => crash(hub),
    stopHub: (signal: NodeJS.Signals = 'SIGTERM') => stop(hub, signal),
    async restartHub(o: { signal?: NodeJS.Signals; timeoutMs?: number } = {}) { await stop(hub, o.signal ?? 'SIGTERM'); return bed.startHub(o) },
    /** `mirrormesh node add <id>` on the hub; the password goes into the node's agent.env. */
    async addNode(id: string): Promise<string> {
      const n = nodes[id] ?? (() => { throw new Error(`no node ${id}`) })()
      const r = await mirrormesh(hub, ['node', 'add', id])
      if (r.code !== 0) throw new Error(`mirrormesh node add ${id} failed: ${r.stderr}`)
      const password = r.stdout.trim().split('\n').at(-1)!
      n.password = password
      nodeSets[id] = { ...nodeSets[id], MQTT_PASSWORD: password }
      n.env = await writeEnv(n, agentExample, nodeSets[id]!, nodeWhy)
      return password
    },
    startNode: (id: string, o: { stdin?: boolean; wait?: boolean; timeoutMs?: number } = {}) => start(hostOf(id), o),
    killNode: (id: string) => crash(hostOf(id)),
    stopNode: (id: string, signal: NodeJS.Signals = 'SIGTERM') => stop(hostOf(id), signal),
    /** Power back: the hub and every node started at the same moment; resolves when all sent READY=1. */
    async startAll(o: { stdin?: boolean; timeoutMs?: number } = {}) {
      return Promise.all([start(hub, o), ...Object.values(nodes).map((n) => start(n, o))])
    },
    partition: (id: string) => setLoss(id, true),
    heal: (id: string) => setLoss(id, false),
    /** Rewrite a host's env file with more settings (listed in overrides) for its next start. */
    async setEnv(hostName: string, set: Env, why: Record<string, string> = {}) {
      const h = hostOf(hostName)
      if (h === hub) { Object.assign(hubSet, set); Object.assign(hubWhy, why); hub.env = await writeEnv(hub, hubExample, hubSet, hubWhy) } else {
        nodeSets[h.name] = { ...nodeSets[h.name], ...set }
        Object.assign(nodeWhy, why)
        h.env = await writeEnv(h, agentExample, nodeSets[h.name]!, nodeWhy)
      }
    },
    /** A real MQTT connect (and retained messages on `subscribe`) from inside a host's namespace. */
    async mqttProbe(hostName: string, o: MqttProbeOptions): Promise<MqttProbeResult> {
      const r = await exec(hostName, [process.execPath, '-e', PROBE], { env: { MM_PROBE: JSON.stringify(o) }, timeoutMs: 30_000 })
      try { return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as MqttProbeResult } catch { throw new Error(`mqtt probe on ${hostName} failed (${r.code}): ${r.stderr.slice(-2000)}`) }
    },
    async teardown(): Promise<void> {
      if (torn) return
      torn = true
      await Promise.all([...services].map((h) => stop(h, 'SIGKILL', 5000)))
      for (const ns of namespaces) killNamespace(ns)
      // /etc/netns did not exist before the first bed on this machine: leave no empty dir behind.
      try { rmdirSync('/etc/netns') } catch { /* another bed's files, or gone */ }
      for (const h of [hub, ...Object.values(nodes)]) h.notify.close()
      if (!process.env.BED_KEEP) rmSync(dir, { recursive: true, force: true })
    },
  }
  return bed
}

export interface MqttProbeOptions { url: string; username: string; password: string; clientId?: string; ca?: string; subscribe?: string; publish?: Array<{ topic: string; payload: string; retain?: boolean }>; waitMs?: number }
export interface MqttProbeResult { ok: boolean; error?: string; retained: Record<string, string> }

// Runs in a child `node` inside a namespace: connect once, collect retained messages, print one JSON line.
const PROBE = `
const o = JSON.parse(process.env.MM_PROBE); delete process.env.MM_PROBE
const mqtt = require(require.resolve('mqtt', { paths: [${JSON.stringify(root)}] }))
const fs = require('node:fs')
const retained = {}
const done = (r) => { process.stdout.write(JSON.stringify({ retained, ...r }) + '\\n'); process.exit(0) }
const c = mqtt.connect(o.url, { clientId: o.clientId ?? o.username + '-probe-' + process.pid, username: o.username, password: o.password,
  ca: o.ca ? fs.readFileSync(o.ca) : undefined, reconnectPeriod: 0, connectTimeout: 10000, protocolVersion: 4 })
c.on('error', (e) => { c.end(true); done({ ok: false, error: e.message }) })
c.on('close', () => done({ ok: false, error: 'connection closed' }))
c.on('message', (t, p, packet) => { if (packet.retain) retained[t] = p.toString() })
c.on('connect', async () => {
  if (o.subscribe) await c.subscribeAsync(o.subscribe, { qos: 1 })
  for (const m of o.publish ?? []) await c.publishAsync(m.topic, m.payload, { qos: 1, retain: !!m.retain })
  // Connected, and every publish acked: that is the answer, however the connection then closes.
  setTimeout(() => done({ ok: true }), o.subscribe ? o.waitMs ?? 1500 : 0)
})
`

function findFile(dir: string, re: RegExp): string | undefined {
  if (!existsSync(dir)) return undefined
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) { const f = findFile(p, re); if (f) return f } else if (re.test(e.name)) return p
  }
  return undefined
}
