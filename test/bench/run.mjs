// Benchmark dispatcher: `npm run bench -- <name>` (heartbeat, failure, rss, pipeline, offline, browser, memory, failover, arbitration, hubs, accuracy, all).
// Benchmarks print figures; they never fail on timing. Every process they start is killed on exit.
import { killAll } from '../support/dist/harness.js'
import { killChildren, removeTrackedDirs } from './lib.mjs'

const benches = {
  heartbeat: async () => (await import('./heartbeat.mjs')).heartbeatBench(),
  failure: async () => (await import('./failure.mjs')).failureBench(),
  rss: async () => (await import('./rss.mjs')).rssBench(),
  pipeline: async () => (await import('./pipeline.mjs')).main(),
  offline: async () => (await import('./offline.mjs')).main(),
  memory: async () => (await import('./memory.mjs')).main(),
  browser: async () => (await import('./browser.mjs')).main(),
  failover: async () => (await import('./failover.mjs')).main(),
  arbitration: async () => (await import('./failover-arbitration.mjs')).main(),
  hubs: async () => (await import('./hubs.mjs')).main(),
  accuracy: async () => (await import('./accuracy.mjs')).main(),
  eot: async () => (await import('./accuracy-eot.mjs')).main(),
}

const name = process.argv[2]
if (!benches[name] && name !== 'all') {
  console.error(`usage: npm run bench -- <${[...Object.keys(benches), 'all'].join('|')}>
  heartbeat  N simulated nodes (BENCH_NODES=1000, BENCH_SECONDS=30, BENCH_WORKERS=2) via the embedded broker and Mosquitto
             (BENCH_BROKERS=embedded,mosquitto,mosquitto-nodelay[,mosquitto-nopersist]; BENCH_SUBSCRIBE=1 nodes subscribe
             like agents; BENCH_PROBE=1 adds a second heartbeat subscriber to split broker from hub delay)
  failure    hub kill / stop / restart -> agent state (BENCH_REPS=20)
  rss        node-agent and hub idle RSS (BENCH_SECONDS=20)
  pipeline   voice turns: TTFA per stage (skill and LLM), barge-in, heartbeat delay under turns, hub RSS (BENCH_TURNS=30)
  offline    mirror offline mode: reply latency on one core, recognition accuracy (BENCH_ACC=50), hub loss/return, agent RSS
  memory     embedded memory store at 1k/10k/100k memories: insert/s, recall p50/p99, file size (BENCH_MEMORY_SIZES, BENCH_QUERIES=500); Qdrant too with QDRANT_URL
  browser    the hub's page in headless Chromium: speech end -> first reply sample played, skill turns (BENCH_TURNS=20)
  failover   warm standby and three hubs on Mosquitto: hub SIGKILL/SIGSTOP -> nodes on another hub (BENCH_REPS=20,
             BENCH_HEARTBEAT_MS=300, BENCH_PEER_STALE_MS=1000)
  arbitration  three mirrors of one room, same utterance at different gains/offsets: decision delay (BENCH_CONTESTS=30)
  hubs       turns/s one hub vs three on Mosquitto before admission control answers "busy": typed skill turns at a rising
             rate (BENCH_NODES=30, BENCH_STEP_S=10, BENCH_RATES=0.5,1,2,3,4,6, BENCH_HUBS=1,3, BENCH_HUB_<SETTING>=value)
  accuracy   understanding on a generated set (7 voices, espeak-ng + flite, noise/reverb/gain): right/wrong/rejected, false
             accepts per path and voice, accept/reject trade-off, confusions (--quick: a third of it, 3 voices)
  eot        online early end of turn on the accuracy set: how often it fires, cut-offs, answers that differ;
             last spoken sample -> first reply frame with it on and off (--quick, BENCH_TURNS=20, BENCH_PACE=2, BENCH_LIMIT,
             BENCH_EOT_SKIP_FIRING=1 / BENCH_EOT_SKIP_LATENCY=1 for one part)`)
  process.exit(2)
}

async function cleanup() {
  await killChildren()
  await killAll()
  await removeTrackedDirs()
}

let interrupted = false
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (interrupted) return
    interrupted = true
    console.error(`\n${sig}: cleaning up`)
    void cleanup().finally(() => process.exit(130))
  })
}

try {
  for (const n of name === 'all' ? Object.keys(benches) : [name]) {
    console.log(`\n### bench ${n} (${new Date().toISOString()})`)
    await benches[n]()
    await cleanup()
  }
} catch (err) {
  console.error(`bench ${name} aborted: ${err.stack ?? err}`)
  process.exitCode = 1
} finally {
  await cleanup()
  // Everything started is gone; do not let a stray timer or socket keep the process alive.
  process.exit(process.exitCode ?? 0)
}
