// `bench rss`: idle memory of a node agent (and of the hub it talks to) after start-up.
//
// The agent is started the way deploy/systemd/mirrormesh-agent.service starts it: the same Node
// flags and entry script (so the bench measures what a mirror runs), then once more with plain
// `node` and no flags for comparison. Each runs alone, one after the other, against one hub.
//   BENCH_SECONDS=20               idle sampling per agent run (VmRSS every 1 s)
//   BENCH_AGENT_FLAGS='--a --b'    Node/V8 flags instead of the unit's ('' = none); V8 flags such as
//                                  --no-opt are refused in NODE_OPTIONS, so they go on the command line
//   BENCH_AGENT_NODE_OPTIONS=…     NODE_OPTIONS for the agent runs (flags Node allows there)
//   BENCH_RSS_BARE=0               skip the plain-node comparison run
//   BENCH_RSS_IMPORTS=1            first, what importing each dependency alone costs (fresh process
//                                  each, no broker): the method behind the numbers in the table
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { addNode, agentEnv, freePort, root, sleep, spawnTracked, startHub, waitFor } from '../support/dist/harness.js'
import { envInt, fmt, table, printMachine, memOf, quantile, cpuSecondsOf, startHubRetry, systemCpu, trackDir } from './lib.mjs'

const exec = promisify(execFile)
const unitPath = join(root, 'deploy', 'systemd', 'mirrormesh-agent.service')

/** Node flags and entry script of the unit's ExecStart (paths under /opt/mirrormesh mapped to this checkout). */
export function unitCommand(text = readFileSync(unitPath, 'utf8')) {
  const line = text.split('\n').find((l) => l.startsWith('ExecStart='))
  if (!line) throw new Error(`${unitPath}: no ExecStart`)
  const words = line.slice('ExecStart='.length).trim().split(/\s+/)
  const script = words.findIndex((w, i) => i > 0 && w.endsWith('.js'))
  if (script < 0) throw new Error(`${unitPath}: no .js script in ExecStart`)
  const toLocal = (w) => w.replace(/^\/opt\/mirrormesh(?=\/)/, root)
  return { flags: words.slice(1, script), args: words.slice(script).map(toLocal) }
}

async function startAgentWith({ flags, args, hub, password, nodeOptions }) {
  const healthPort = await freePort()
  const env = agentEnv({ nodeId: 'bench-rss', mqttUrl: hub.mqttUrl, password, env: nodeOptions ? { NODE_OPTIONS: nodeOptions } : {} }, healthPort)
  const { proc, out, exited } = spawnTracked(process.execPath, [...flags, ...args], env)
  const health = async () => (await (await fetch(`http://127.0.0.1:${healthPort}/healthz`, { signal: AbortSignal.timeout(3000) })).json())
  await Promise.race([
    waitFor(async () => (await health()).state === 'online', { timeoutMs: 20_000, intervalMs: 20, what: 'agent online' }),
    exited.then(({ code }) => { throw new Error(`agent exited with ${code}:\n${out.text}`) }),
  ])
  return { proc, exited }
}

/** Samples VmRSS of `pids` every second for `seconds`; per name: first/steady/max, VmHWM, anon/file, idle CPU. */
async function sampleIdle(pids, seconds) {
  const samples = Object.fromEntries(Object.keys(pids).map((k) => [k, []]))
  const cpu0 = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, cpuSecondsOf(p)]))
  for (let i = 0; i < seconds; i++) {
    await sleep(1000)
    for (const [k, pid] of Object.entries(pids)) samples[k].push(memOf(pid)?.rssMb ?? NaN)
  }
  return Object.fromEntries(Object.entries(pids).map(([k, pid]) => {
    const v = samples[k]
    const m = memOf(pid)
    return [k, { steadyMb: quantile(v.slice(Math.floor(v.length / 2)), 0.5), maxMb: Math.max(...v), firstMb: v[0], hwmMb: m?.hwmMb, anonMb: m?.anonMb, fileMb: m?.fileMb,
      cpuPct: ((cpuSecondsOf(pid) - cpu0[k]) / seconds) * 100, samplesMb: v }]
  }))
}

export async function rssBench() {
  const seconds = envInt('BENCH_SECONDS', 20)
  const machine = printMachine()
  if (process.env.BENCH_RSS_IMPORTS === '1') await importsTable()
  const unit = unitCommand()
  const deployedFlags = process.env.BENCH_AGENT_FLAGS !== undefined ? process.env.BENCH_AGENT_FLAGS.split(/\s+/).filter(Boolean) : unit.flags
  const nodeOptions = process.env.BENCH_AGENT_NODE_OPTIONS
  const runs = [{ name: 'agent', flags: deployedFlags }]
  if (process.env.BENCH_RSS_BARE !== '0' && deployedFlags.length > 0) runs.push({ name: 'agentNoFlags', flags: [] })

  const hub = await startHubRetry(startHub)
  trackDir(hub.stateDir)
  const password = await addNode(hub.stateDir, 'bench-rss')
  const res = {}
  const sys0 = systemCpu()
  for (const run of runs) {
    const agent = await startAgentWith({ flags: run.flags, args: unit.args, hub, password, nodeOptions })
    console.log(`rss: hub + ${run.name} online (node ${[...run.flags, ...unit.args.map((a) => a.replace(root + '/', ''))].join(' ')}` +
      `${nodeOptions ? `, NODE_OPTIONS=${nodeOptions}` : ''}); sampling VmRSS every 1 s for ${seconds} s of idle`)
    const r = await sampleIdle(run.name === 'agent' ? { agent: agent.proc.pid, hub: hub.proc.pid } : { [run.name]: agent.proc.pid }, seconds)
    Object.assign(res, r)
    res[run.name].flags = run.flags.join(' ')
    agent.proc.kill('SIGTERM')
    await Promise.race([agent.exited, sleep(5000)])
  }

  console.log(`\nidle RSS over ${seconds} s (steady = median of the second half; anon/file = RssAnon/RssFile at the end)`)
  const label = (k) => (k === 'hub' ? 'hub' : `${k === 'agent' ? 'agent' : 'agent, plain node'} [${res[k].flags || 'no flags'}]`)
  table([['process', 'first MB', 'steady MB', 'max MB', 'VmHWM MB', 'anon MB', 'file MB', 'idle CPU %', 'goal'],
    ...Object.entries(res).map(([k, r]) => [label(k), fmt(r.firstMb), fmt(r.steadyMb), fmt(r.maxMb), fmt(r.hwmMb), fmt(r.anonMb), fmt(r.fileMb), fmt(r.cpuPct, 2),
      k !== 'hub' ? `<= 60 MB ${r.maxMb <= 60 ? 'met' : 'NOT met'}` : ''])])
  console.log(`machine busy while sampling (all cores, includes anything else running): ${fmt(systemCpu(sys0))} %`)
  const json = { bench: 'rss', seconds, machine }
  for (const [k, { samplesMb, ...r }] of Object.entries(res)) { json[k] = r; json[`${k}SamplesMb`] = samplesMb }
  console.log(JSON.stringify(json))
}

// What importing one module costs, alone, in a fresh process (no GC forced; 300 ms after the import).
// `require:` entries are loaded with require() (as heartbeat.ts and broker/src/metrics.ts do).
const importSpecs = [
  ['(bare node)', ''],
  ['fastify', 'fastify'],
  ['@fastify/static', '@fastify/static'],
  ['mqtt', 'mqtt'],
  ['pino', 'pino'],
  ['zod', 'zod'],
  ['prom-client', 'prom-client'],
  ['prom-client registry+counter', 'require:prom-client/lib/registry,prom-client/lib/counter'],
  ['systeminformation', 'systeminformation'],
  ['systeminformation cpu+memory', 'require:systeminformation/lib/cpu.js,systeminformation/lib/memory.js'],
  ['commander', 'commander'],
  ['@mirrormesh/broker', '@mirrormesh/broker'],
  ['node-agent/dist/agent.js', './dist/agent.js'],
  ['@mirrormesh/node-agent (index)', '@mirrormesh/node-agent'],
]
const serverOnly = ['aedes-packet', 'mqemitter', 'aedes-persistence', 'aedes-persistence-level', 'level', 'classic-level', 'abstract-level', 'ws']

async function importsTable() {
  const code = `
    import { createRequire } from 'node:module'
    import { readFileSync } from 'node:fs'
    const require = createRequire(process.cwd() + '/')
    const spec = process.env.SPEC
    const t0 = performance.now()
    if (spec.startsWith('require:')) for (const s of spec.slice(8).split(',')) require(s)
    else if (spec) await import(spec)
    const ms = performance.now() - t0
    await new Promise((r) => setTimeout(r, 300))
    const st = readFileSync('/proc/self/status', 'utf8')
    const kb = (k) => Number(new RegExp('^' + k + ':\\\\s+(\\\\d+)', 'm').exec(st)[1]) / 1024
    const m = process.memoryUsage()
    const pkgs = new Set(Object.keys(require.cache).map((f) => /node_modules\\/((@[^/]+\\/)?[^/]+)\\//.exec(f)?.[1]).filter(Boolean))
    console.log(JSON.stringify({ ms, rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile'), heapUsed: m.heapUsed / 1048576, external: m.external / 1048576, pkgs: [...pkgs] }))`
  const cwd = join(root, 'node-agent')
  const rows = []
  let bare
  for (const [name, spec] of importSpecs) {
    const { stdout } = await exec(process.execPath, ['--input-type=module', '-e', code], { cwd, env: { PATH: process.env.PATH, SPEC: spec } })
    const r = JSON.parse(stdout.trim().split('\n').at(-1))
    bare ??= r
    const heavy = serverOnly.filter((p) => r.pkgs.includes(p))
    rows.push([name, fmt(r.rss), fmt(r.rss - bare.rss), fmt(r.anon), fmt(r.file), fmt(r.heapUsed), fmt(r.external), fmt(r.ms, 0), String(r.pkgs.length), heavy.join(' ') || '-'])
  }
  console.log('\nimport cost, each alone in a fresh process (MB; + = over bare node; CommonJS packages counted from require.cache)')
  table([['import', 'RSS', '+RSS', 'anon', 'file', 'heapUsed', 'external', 'ms', 'cjs pkgs', 'server-only pkgs loaded'], ...rows])
  console.log('')
}
