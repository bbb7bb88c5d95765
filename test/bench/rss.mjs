// `bench rss`: idle memory of a node agent (and of the hub it talks to) after start-up.
import { startHub, startAgent, addNode, sleep } from '../support/harness.mjs'
import { envInt, fmt, table, printMachine, memOf, quantile, cpuSecondsOf, startHubRetry, systemCpu, trackDir } from './lib.mjs'

export async function rssBench() {
  const seconds = envInt('BENCH_SECONDS', 20)
  const machine = printMachine()
  const hub = await startHubRetry(startHub)
  trackDir(hub.stateDir)
  const password = await addNode(hub.stateDir, 'bench-rss')
  // BENCH_AGENT_NODE_OPTIONS: try V8 flags on the agent only (e.g. --max-semi-space-size=1).
  const nodeOptions = process.env.BENCH_AGENT_NODE_OPTIONS
  const agent = await startAgent({ nodeId: 'bench-rss', mqttUrl: hub.mqttUrl, password, env: nodeOptions ? { NODE_OPTIONS: nodeOptions } : {} })
  await agent.waitState('online', 20_000)
  console.log(`rss: hub + 1 agent online${nodeOptions ? ` (agent NODE_OPTIONS=${nodeOptions})` : ''}; sampling VmRSS every 1 s for ${seconds} s of idle`)
  const procs = { agent: agent.proc.pid, hub: hub.proc.pid }
  const samples = { agent: [], hub: [] }
  const sys0 = systemCpu()
  const cpu0 = Object.fromEntries(Object.entries(procs).map(([k, p]) => [k, cpuSecondsOf(p)]))
  for (let i = 0; i < seconds; i++) {
    await sleep(1000)
    for (const [k, pid] of Object.entries(procs)) samples[k].push(memOf(pid)?.rssMb ?? NaN)
  }
  const res = Object.fromEntries(Object.entries(procs).map(([k, pid]) => {
    const v = samples[k]
    const m = memOf(pid)
    return [k, { steadyMb: quantile(v.slice(Math.floor(v.length / 2)), 0.5), maxMb: Math.max(...v), firstMb: v[0], hwmMb: m?.hwmMb, anonMb: m?.anonMb, fileMb: m?.fileMb,
      cpuPct: ((cpuSecondsOf(pid) - cpu0[k]) / seconds) * 100 }]
  }))
  console.log(`\nidle RSS over ${seconds} s (steady = median of the second half; anon/file = RssAnon/RssFile at the end)`)
  table([['process', 'first MB', 'steady MB', 'max MB', 'VmHWM MB', 'anon MB', 'file MB', 'idle CPU %', 'goal'],
    ...Object.entries(res).map(([k, r]) => [k, fmt(r.firstMb), fmt(r.steadyMb), fmt(r.maxMb), fmt(r.hwmMb), fmt(r.anonMb), fmt(r.fileMb), fmt(r.cpuPct, 2),
      k === 'agent' ? `<= 60 MB ${r.maxMb <= 60 ? 'met' : 'NOT met'}` : ''])])
  console.log(`machine busy while sampling (all cores, includes anything else running): ${fmt(systemCpu(sys0))} %`)
  console.log(JSON.stringify({ bench: 'rss', seconds, machine, ...res, agentSamplesMb: samples.agent, hubSamplesMb: samples.hub }))
}
