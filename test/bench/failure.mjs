// `bench failure`: how fast a real node agent notices the hub going away and coming back.
// (a) hub SIGKILL -> agent offline, (c) new hub spawned on the same state dir and ports -> agent
// online, (b) hub SIGSTOP -> agent offline (then SIGCONT -> agent online). Times come from the
// agent's own 'node state changed' log line (its `time` field); /healthz polling every 10 ms is
// reported alongside as a cross-check.
import { startHub, startAgent, addNode, sleep, waitFor } from '../support/dist/harness.js'
import { envInt, fmt, table, printMachine, quantile, logLines, startHubRetry, systemCpu, trackDir } from './lib.mjs'

const NODE = 'bench-agent'

export async function failureBench() {
  const reps = envInt('BENCH_REPS', 20)
  const machine = printMachine()
  const sys0 = systemCpu()
  console.log(`failure: ${reps} repetitions, agent HUB_STALE_MS=3000, node reconnect backoff jittered, 300 ms x1.5^n (cap 30 s, min 100 ms)`)
  let hub = await startHubRetry(startHub)
  trackDir(hub.stateDir)
  const same = { stateDir: hub.stateDir, mqttPort: hub.mqttPort, httpPort: hub.httpPort, wsPort: hub.wsPort }
  const password = await addNode(hub.stateDir, NODE)
  const agent = await startAgent({ nodeId: NODE, mqttUrl: hub.mqttUrl, password, hubStaleMs: 3000 })
  await agent.waitState('online', 20_000)
  const r = { kill: [], restart: [], hubReady: [], stop: [], cont: [], killPoll: [], stopPoll: [], restartPoll: [] }
  const restart = async () => {
    const t0 = Date.now()
    const mark = agent.out.text.length
    hub = await startHub({ ...same, timeoutMs: 30_000 })
    r.hubReady.push(Date.now() - t0)
    const t = await stateReached(agent, 'online', mark, t0, 30_000)
    r.restart.push(t.logMs)
    r.restartPoll.push(t.pollMs)
  }
  for (let i = 0; i < reps; i++) {
    // (a) SIGKILL, then (c) restart right after the agent has gone offline
    let mark = agent.out.text.length
    let t0 = Date.now()
    hub.kill('SIGKILL')
    let t = await stateReached(agent, 'offline', mark, t0, 10_000)
    r.kill.push(t.logMs)
    r.killPoll.push(t.pollMs)
    await hub.exited
    await restart()
    await sleep(1000 + Math.random() * 1000) // random phase against the hub heartbeat (1 s), else SIGSTOP always lands just after one
    // (b) SIGSTOP: only the hub heartbeat going stale can tell
    mark = agent.out.text.length
    t0 = Date.now()
    hub.kill('SIGSTOP')
    t = await stateReached(agent, 'offline', mark, t0, 10_000)
    r.stop.push(t.logMs)
    r.stopPoll.push(t.pollMs)
    mark = agent.out.text.length
    t0 = Date.now()
    hub.kill('SIGCONT')
    try {
      r.cont.push((await stateReached(agent, 'online', mark, t0, 10_000)).logMs)
    } catch (err) {
      console.log(`rep ${i}: no online after SIGCONT (${err.message}); restarting the hub`)
      hub.kill('SIGKILL')
      await hub.exited
      await restart()
    }
    await agent.waitState('online', 30_000)
    console.log(`rep ${i + 1}/${reps}: kill->offline ${r.kill.at(-1)} ms, restart->online ${r.restart.at(-1)} ms (hub ready ${r.hubReady.at(-1)} ms), stop->offline ${r.stop.at(-1)} ms, cont->online ${r.cont.at(-1) ?? '-'} ms`)
  }
  report(r, reps, machine)
  console.log(`machine busy during the bench (all cores, includes anything else running): ${fmt(systemCpu(sys0))} %`)
}

/**
 * Waits until the agent's /healthz says `state`, then takes the time of its matching
 * 'node state changed' log line. Both are returned relative to t0 (ms).
 */
async function stateReached(agent, state, mark, t0, timeoutMs) {
  const pollAt = await agent.waitState(state, timeoutMs)
  const line = await waitFor(() => logLines(agent.out.text.slice(mark)).find((l) => l.msg === 'node state changed' && l.to === state && l.time >= t0),
    { timeoutMs: 2000, intervalMs: 10, what: `agent log line for ${state}` }).catch(() => null)
  return { logMs: line ? line.time - t0 : pollAt - t0, pollMs: pollAt - t0 }
}

function report(r, reps, machine) {
  const rows = [
    ['hub SIGKILL -> agent offline', r.kill, r.killPoll, 1000],
    ['hub SIGSTOP -> agent offline', r.stop, r.stopPoll, 3000],
    ['hub restart (spawn) -> agent online', r.restart, r.restartPoll, 5000],
    ['  of which spawn -> hub /readyz', r.hubReady, null, null],
    ['hub SIGCONT -> agent online', r.cont, null, null],
  ]
  console.log(`\nfailure detection, ${reps} repetitions (ms; agent log timestamps, /healthz 10 ms polling in brackets)`)
  table([['scenario', 'n', 'p50', 'max', 'poll p50', 'poll max', 'goal', ''],
    ...rows.map(([name, v, p, goal]) => [name, v.length, fmt(quantile(v, 0.5), 0), fmt(Math.max(...v), 0),
      p ? fmt(quantile(p, 0.5), 0) : '', p ? fmt(Math.max(...p), 0) : '', goal ? `<= ${goal}` : '',
      goal ? (Math.max(...v) <= goal ? 'met (max)' : quantile(v, 0.5) <= goal ? 'met (p50 only)' : 'NOT met') : ''])])
  const s = (v) => ({ p50: quantile(v, 0.5), max: Math.max(...v), all: v })
  console.log(JSON.stringify({ bench: 'failure', reps, machine, killToOffline: s(r.kill), stopToOffline: s(r.stop), restartToOnline: s(r.restart), hubReady: s(r.hubReady), contToOnline: s(r.cont) }))
}
