// `bench heartbeat`: N simulated nodes heartbeating once a second through (a) the hub's
// embedded broker and (b) a local Mosquitto with the hub as a client. Reports the hub-measured
// heartbeat delay (timestamp -> registry update), hub/broker RSS+CPU and the load generator's CPU.
// Mosquitto runs twice: as the harness configures it ('mosquitto', Nagle on: set_tcp_nodelay
// defaults to false) and with set_tcp_nodelay true ('mosquitto-nodelay', the like-for-like
// baseline: the embedded broker and MeshClient both turn Nagle off).
import { fork, execFile } from 'node:child_process'
import { writeFile, appendFile, rename, chown, chmod } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { randomBytes } from 'node:crypto'
import mqtt from 'mqtt'
import { CredentialStore } from '../../broker/dist/index.js'
import { startHub, startMosquitto, spawnTracked, cli, tempDir, waitFor, sleep, killAll } from '../support/dist/harness.js'
import { sampler, envInt, fmt, table, printMachine, trackChild, killChildren, logLines, quantile, startHubRetry, systemCpu, trackDir, removeTrackedDirs } from './lib.mjs'

const exec = promisify(execFile)
const workerPath = new URL('./heartbeat-worker.mjs', import.meta.url).pathname

export async function heartbeatBench() {
  const N = envInt('BENCH_NODES', 1000)
  const seconds = envInt('BENCH_SECONDS', 30)
  const workers = envInt('BENCH_WORKERS', 2)
  const batch = envInt('BENCH_BATCH', 25) // concurrent connects per worker
  const subscribe = process.env.BENCH_SUBSCRIBE === '1'
  const machine = printMachine()
  console.log(`heartbeat: ${N} nodes, ${seconds} s, ${workers} workers, connect batch ${batch}/worker, node subscriptions ${subscribe ? 'on' : 'off'}`)
  const password = randomBytes(12).toString('base64url') // one password for every simulated node
  const nodes = Array.from({ length: N }, (_, i) => ({ id: `bench-${String(i).padStart(4, '0')}`, password, phaseMs: (i * 1000) / N }))
  const opts = { N, seconds, workers, batch, subscribe, nodes, password }

  const runs = {}
  for (const kind of (process.env.BENCH_BROKERS ?? 'embedded,mosquitto,mosquitto-nodelay').split(',')) {
    console.log(`\n== ${kind} ==`)
    try {
      runs[kind] = await runOnce(kind, opts)
    } finally {
      await killChildren()
      await killAll()
    }
  }
  report(runs, opts, machine)
}

async function runOnce(kind, { N, seconds, workers, batch, subscribe, nodes, password }) {
  const probeOn = process.env.BENCH_PROBE === '1'
  const r = { kind }
  let hub, mosq
  const t0 = Date.now()
  if (kind === 'embedded') {
    const stateDir = trackDir(await tempDir('mm-bench-hub-'))
    const store = new CredentialStore(join(stateDir, 'credentials.json'))
    for (const n of nodes) await store.add(n.id, 'node', { cost: 1024, password })
    if (probeOn) await store.add('bench-probe', 'observer', { cost: 1024, password })
    r.setupCredsMs = Date.now() - t0
    hub = await startHubRetry(startHub, { stateDir, env: hubEnv() })
  } else { // 'mosquitto' (the harness's config), '-nodelay' (+ set_tcp_nodelay true), '-nopersist' (persistence false)
    const hubPw = randomBytes(12).toString('base64url')
    const acl = (await cli(['broker', 'mosquitto-acl'])).stdout
    mosq = await startMosquitto({ dir: await mosquittoDir(), users: [{ username: 'hub-main', password: hubPw }], acl, persistence: !kind.includes('nopersist') })
    trackDir(mosq.dir)
    // mosquitto_passwd -b once per user is slow for 1000s: hash a plaintext file in one go, then SIGHUP.
    const plain = join(mosq.dir, 'passwd.new')
    await writeFile(plain, [`hub-main:${hubPw}`, ...nodes.map((n) => `${n.id}:${n.password}`)].join('\n') + '\n')
    await exec('mosquitto_passwd', ['-U', plain])
    await chmod(plain, 0o644) // readable by the mosquitto user after its privilege drop
    await rename(plain, join(mosq.dir, 'passwd'))
    if (kind.includes('nodelay')) {
      // Mosquitto leaves Nagle on by default (set_tcp_nodelay false); the embedded broker turns it off.
      // Restart with the option rather than trusting SIGHUP to apply it.
      await appendFile(join(mosq.dir, 'mosquitto.conf'), 'set_tcp_nodelay true\n')
      mosq.proc.kill('SIGTERM')
      await mosq.exited
      const p = spawnTracked('mosquitto', ['-c', join(mosq.dir, 'mosquitto.conf')], {})
      mosq = { ...mosq, ...p }
    } else {
      mosq.proc.kill('SIGHUP')
    }
    // Mosquitto's stdout is block-buffered into a pipe, so "Reloading config." may not show: probe a login instead.
    const login = nodes.at(-1)
    await waitFor(() => canConnect(mosq.url, login.id, login.password), { timeoutMs: 10_000, intervalMs: 200, what: 'mosquitto to accept node credentials' })
    r.setupCredsMs = Date.now() - t0
    hub = await startHubRetry(startHub, { mqttUrl: mosq.url, username: 'hub-main', password: hubPw, env: hubEnv() })
    trackDir(hub.stateDir)
  }
  console.log(`credentials for ${N} nodes: ${r.setupCredsMs} ms; hub ready`)
  const probe = !probeOn ? null : await startProbe(hub.mqttUrl, kind === 'embedded' ? { username: 'bench-probe', password } : { username: 'hub-main', password: hub.env.MQTT_PASSWORD })

  // Load generators: node i goes to worker i % workers, so every worker's phases span the whole second.
  const procs = []
  const tConnect = Date.now()
  const connected = []
  for (let w = 0; w < workers; w++) {
    const slice = nodes.filter((_, i) => i % workers === w)
    const child = trackChild(fork(workerPath, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
    procs.push(child)
    connected.push(new Promise((resolve) => child.on('message', (m) => m.type === 'connected' && resolve(m))))
    child.send({ type: 'connect', url: hub.mqttUrl, nodes: slice, batch, subscribe, maxMs: (seconds + 180) * 1000 })
  }
  let timer
  const conn = await Promise.race([Promise.all(connected), new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('workers did not finish connecting in 120 s')), 120_000) })])
  clearTimeout(timer)
  r.connectMs = Date.now() - tConnect
  r.clientsConnected = conn.reduce((a, m) => a + m.connected, 0)
  console.log(`${r.clientsConnected}/${N} clients connected in ${r.connectMs} ms`)
  const countStates = async () => {
    const { body } = await hub.http('/api/nodes')
    const c = { online: 0, recovering: 0, stale: 0, offline: 0, total: body.nodes.length }
    for (const n of body.nodes) c[n.state]++
    return c
  }
  let states
  try {
    await waitFor(async () => (states = await countStates()).online >= N, { timeoutMs: 60_000, intervalMs: 1000, what: `${N} nodes online in the registry` })
  } catch (err) {
    console.log(`WARNING: ${err.message}; states ${JSON.stringify(states)}`)
  }
  r.warmupMs = Date.now() - tConnect
  console.log(`registry: ${JSON.stringify(states)} after ${r.warmupMs} ms; measuring for ${seconds} s`)
  await sleep(2000) // let the connect wave settle

  const workerStats = () => Promise.all(procs.map((c) => new Promise((resolve) => {
    const on = (m) => { if (m.type === 'stats') { c.off('message', on); resolve(m.stats) } }
    c.on('message', on)
    c.send({ type: 'stats' })
  }))).then((l) => l.reduce((a, s) => { for (const k of Object.keys(s)) if (typeof s[k] === 'number') a[k] = (a[k] ?? 0) + s[k]; return a }, {}))
  const ws0 = await workerStats()
  const sys0 = systemCpu()
  await hub.http('/api/stats/heartbeats', { method: 'DELETE' })
  const pids = { hub: hub.proc.pid, loadgen: procs.map((c) => c.pid), bench: process.pid }
  if (mosq) pids.mosquitto = mosq.proc.pid
  const s = sampler(pids)
  probe?.reset()
  await sleep(seconds * 1000)
  if (probe) console.log(`probe subscriber (broker delivery only, ts -> probe): ${JSON.stringify(probe.stats())}`)
  probe?.client.end(true)
  r.delay = (await hub.http('/api/stats/heartbeats')).body
  r.proc = s.stop()
  r.systemBusyPct = systemCpu(sys0)
  const ws1 = await workerStats()
  r.published = ws1.published - ws0.published
  r.skipped = ws1.skipped - ws0.skipped
  r.workerCloses = ws1.closes
  r.workerErrors = ws1.errors
  r.nodeMsgsReceived = ws1.received - ws0.received
  r.states = await countStates()
  r.hubLog = logSummary(hub.out.text)
  if (mosq) r.mosquittoErrors = mosq.out.text.split('\n').filter((l) => /error|denied|refused|exceeded/i.test(l)).slice(0, 5)
  console.log(JSON.stringify({ delay: r.delay, published: r.published, states: r.states, hubLog: r.hubLog, workerCloses: r.workerCloses, workerErrors: r.workerErrors }))
  await killChildren()
  await killAll()
  await removeTrackedDirs()
  return r
}

/** BENCH_HUB_NODE_OPTIONS: flags for the hub only, e.g. `--import /path/profiler.mjs` (--cpu-prof is refused in NODE_OPTIONS). */
const hubEnv = () => (process.env.BENCH_HUB_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_HUB_NODE_OPTIONS } : {})

/**
 * Diagnostic (BENCH_PROBE=1): a second subscriber to every heartbeat, in this process, to tell
 * broker delivery delay from hub processing. Also buckets slow (>10 ms) messages by the
 * millisecond-of-second of their timestamp, to show whether the slow ones cluster in time.
 */
async function startProbe(url, { username, password }) {
  const client = mqtt.connect(url, { clientId: 'bench-probe', username, password, protocolVersion: 4, reconnectPeriod: 0 })
  await new Promise((resolve, reject) => { client.once('connect', resolve); client.once('error', reject) })
  client.stream.setNoDelay?.(true)
  // The hub's own subscriptions (hub.ts onConnect), so the broker treats both alike.
  await client.subscribeAsync(['status', 'heartbeat', 'presence', 'events'].map((t) => `mirrormesh/nodes/+/${t}`), { qos: Number(process.env.BENCH_PROBE_QOS ?? 1) })
  let delays = []
  let slowAt = []
  client.on('message', (topic, payload) => {
    if (!topic.endsWith('/heartbeat')) return
    const ts = JSON.parse(payload).ts
    const d = Date.now() - ts
    delays.push(d)
    if (d > 10) slowAt.push(ts)
  })
  return {
    client,
    reset() { delays = []; slowAt = [] },
    stats() {
      const bySecond = {}
      for (const t of slowAt) bySecond[Math.floor(t / 1000) % 100] = (bySecond[Math.floor(t / 1000) % 100] ?? 0) + 1
      return { samples: delays.length, p50Ms: quantile(delays, 0.5), p95Ms: quantile(delays, 0.95), p99Ms: quantile(delays, 0.99), maxMs: Math.max(...delays),
        slow: slowAt.length, slowSpanMsPerSecond: spans(slowAt), slowBySecond: bySecond }
    },
  }
}

/** For timestamps of slow messages: per wall-clock second, the [first,last] ms-of-second they span. */
function spans(ts) {
  const m = {}
  for (const t of ts) {
    const s = Math.floor(t / 1000) % 100
    const ms = t % 1000
    m[s] = m[s] ? [Math.min(m[s][0], ms), Math.max(m[s][1], ms)] : [ms, ms]
  }
  return Object.values(m).slice(0, 12)
}

/** One MQTT login attempt; true when the broker accepts it. */
function canConnect(url, username, password) {
  return new Promise((resolve) => {
    const c = mqtt.connect(url, { clientId: `node-${username}`, username, password, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 2000 })
    const done = (ok) => { c.end(true); resolve(ok) }
    c.once('connect', () => done(true))
    c.once('error', () => done(false))
    c.once('close', () => done(false))
  })
}

/**
 * A folder Mosquitto can use: run as root it drops to the `mosquitto` user, which cannot read
 * the harness's default 0700 temp folder ("Unable to open pwfile").
 */
export async function mosquittoDir() {
  const dir = trackDir(await tempDir('mm-bench-mosq-'))
  if (process.getuid?.() === 0) {
    const id = async (flag) => Number((await exec('id', [flag, 'mosquitto']).catch(() => ({ stdout: '' }))).stdout.trim())
    const uid = await id('-u')
    if (uid > 0) await chown(dir, uid, await id('-g'))
  }
  return dir
}

function logSummary(text) {
  const lines = logLines(text)
  const bad = lines.filter((l) => l.level >= 40)
  const byMsg = {}
  for (const l of bad) byMsg[l.msg] = (byMsg[l.msg] ?? 0) + 1
  return { warnOrWorse: bad.length, byMsg }
}

function report(runs, { N, seconds, workers }, machine) {
  const cols = Object.values(runs)
  const e = runs.embedded
  const row = (label, f, d) => [label, ...cols.map((r) => fmt(f(r), d))]
  const goals = { p99RatioMax: 1.5, hubRssMaxMb: 150 }
  console.log(`\nheartbeat delay (hub-measured, ts -> registry), ${N} nodes x ${seconds} s, ${workers} load workers`)
  table([
    ['', ...cols.map((r) => r.kind)],
    row('p50 ms', (r) => r.delay.p50Ms, 0),
    row('p95 ms', (r) => r.delay.p95Ms, 0),
    row('p99 ms', (r) => r.delay.p99Ms, 0),
    row('max ms', (r) => r.delay.maxMs, 0),
    row('samples (hub)', (r) => r.delay.total, 0),
    row('published (load gen, same window)', (r) => r.published, 0),
    row('delivered % (approx.)', (r) => (r.delay.total / r.published) * 100, 2),
    row('nodes online at end', (r) => `${r.states.online}/${N}`),
    row('hub RSS max MB', (r) => r.proc.hub.rssMaxMb),
    row('hub CPU mean % core', (r) => r.proc.hub.cpuMeanPct),
    row('hub CPU max 1s %', (r) => r.proc.hub.cpuMaxPct),
    row('mosquitto RSS max MB', (r) => r.proc.mosquitto?.rssMaxMb),
    row('mosquitto CPU mean %', (r) => r.proc.mosquitto?.cpuMeanPct),
    row('load gen CPU mean %', (r) => r.proc.loadgen.cpuMeanPct),
    row('load gen RSS MB (sum)', (r) => r.proc.loadgen.rssMaxMb),
    row('machine busy % (2 cores)', (r) => r.systemBusyPct),
    row('connect all ms', (r) => r.connectMs, 0),
    row('all online in registry ms', (r) => r.warmupMs, 0),
    row('hub warn+ log lines', (r) => r.hubLog.warnOrWorse, 0),
  ])
  const ratios = {}
  for (const m of cols.filter((r) => r.kind.startsWith('mosquitto'))) {
    if (!e) break
    const ratio = (ratios[m.kind] = e.delay.p99Ms / Math.max(m.delay.p99Ms, 1))
    console.log(`goal p99 embedded <= ${goals.p99RatioMax}x ${m.kind}: ratio ${fmt(ratio, 2)} (p99 ${e.delay.p99Ms} vs ${m.delay.p99Ms} ms, divisor floored at 1 ms)  [${ratio <= goals.p99RatioMax ? 'met' : 'NOT met'}]`)
  }
  if (e) console.log(`goal hub RSS <= ${goals.hubRssMaxMb} MB at ${N} nodes (embedded): max ${fmt(e.proc.hub.rssMaxMb)} MB  [${e.proc.hub.rssMaxMb <= goals.hubRssMaxMb ? 'met' : 'NOT met'}]`)
  for (const r of cols) {
    if (r.mosquittoErrors?.length) console.log(`${r.kind} log lines mentioning errors: ${r.mosquittoErrors.join(' | ')}`)
    if (r.hubLog.warnOrWorse) console.log(`${r.kind} hub warnings: ${JSON.stringify(r.hubLog.byMsg)}`)
  }
  const summary = {
    bench: 'heartbeat', nodes: N, seconds, machine,
    runs: Object.fromEntries(cols.map((r) => [r.kind, {
      p50Ms: r.delay.p50Ms, p95Ms: r.delay.p95Ms, p99Ms: r.delay.p99Ms, maxMs: r.delay.maxMs, samples: r.delay.total, published: r.published,
      online: r.states.online, hubRssMaxMb: +fmt(r.proc.hub.rssMaxMb), hubCpuPct: +fmt(r.proc.hub.cpuMeanPct),
      mosquittoRssMaxMb: r.proc.mosquitto ? +fmt(r.proc.mosquitto.rssMaxMb) : undefined, mosquittoCpuPct: r.proc.mosquitto ? +fmt(r.proc.mosquitto.cpuMeanPct) : undefined,
      loadgenCpuPct: +fmt(r.proc.loadgen.cpuMeanPct), machineBusyPct: +fmt(r.systemBusyPct),
    }])),
    p99Ratio: Object.fromEntries(Object.entries(ratios).map(([k, v]) => [k, +v.toFixed(2)])),
  }
  console.log(JSON.stringify(summary))
}
