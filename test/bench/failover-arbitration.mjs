// `bench arbitration`: nearest-mirror arbitration through a real hub (embedded broker, voice
// pipeline). Three test mirrors of one room send the same utterance ("what time is it", 300 ms of
// noise ahead as an agent's pre-roll) at rotating gains and 0-80 ms offsets; the hub decides.
// Prints the decision delay (first candidate's start -> decision, the hub's own log) and how
// often the loudest mirror won. Never fails on timing.
import { sleep, waitFor } from '../support/dist/harness.js'
import { BASE, createMesh } from '../support/dist/mesh.js'
import { sayLikeAgent } from '../support/dist/multihub.js'
import { VoiceNode, synth } from '../support/dist/voice.js'
import { envInt, fmt, logLines, printMachine, quantile, systemCpu, table } from './lib.mjs'

export async function main() {
  const n = envInt('BENCH_CONTESTS', 30)
  const window = envInt('BENCH_WINDOW_MS', 150)
  const machine = printMachine()
  const sys0 = systemCpu()
  console.log(`arbitration: ${n} contests of 3 mirrors, ARBITRATION_WINDOW_MS=${window}`)
  const speech = await synth('what time is it', { padMs: 700 })
  const mesh = await createMesh('embedded', { hubEnv: { VAD_END_SILENCE_MS: '500', ARBITRATION_WINDOW_MS: String(window) } })
  const ids = ['kitchen', 'hall', 'a']
  const timers = []
  const nodes = []
  try {
    for (const id of ids) {
      const c = await mesh.client(id)
      await c.publishAsync(`${BASE}/nodes/${id}/status`, 'online', { qos: 1, retain: true })
      let seq = 0
      const beat = () => void c.publishAsync(`${BASE}/nodes/${id}/heartbeat`, JSON.stringify({ v: 1, ts: Date.now(), seq: seq++, uptimeS: 1, cpuPct: null, memPct: null, rssMb: 50, temperatureC: null, versions: {}, mode: 'online', room: 'kitchen' }))
      beat()
      timers.push(setInterval(beat, 500))
      const node = new VoiceNode(c, id)
      await node.ready()
      nodes.push(node)
    }
    for (const id of ids) await mesh.waitNode(id, 'online')
    const gains = [1, 0.4, 0.15]
    let right = 0
    for (let k = 0; k < n; k++) {
      const loud = k % 3
      const turnBase = 5000 + k * 10
      await Promise.all(nodes.map(async (node, i) => {
        await sleep(((i + k) % 3) * 40)
        await sayLikeAgent(node.client, node.nodeId, turnBase + i, heard(speech, gains[(i - loud + 3) % 3], k * 3 + i))
      }))
      const winner = await waitFor(() => nodes.find((node, i) => node.turn(turnBase + i).events.some((e) => e.type === 'reply' || e.type === 'turn_error')), { timeoutMs: 30_000, what: 'a reply' })
      if (winner === nodes[loud]) right++
      console.log(`contest ${k + 1}/${n}: loudest ${ids[loud]}, answered by ${winner.nodeId}`)
      await sleep(300)
    }
    const delays = logLines(mesh.hub.out.text).filter((l) => l.msg === 'arbitration: one mirror answers').map((l) => l.delayMs)
    console.log(`\narbitration (ms, first candidate's start frame -> decision; hub log)`)
    table([['contests', 'decided', 'p50', 'p95', 'max', 'loudest won', 'goal'],
      [n, delays.length, fmt(quantile(delays, 0.5), 0), fmt(quantile(delays, 0.95), 0), fmt(Math.max(...delays), 0), `${right}/${n}`, 'p95 <= 150 added']])
    console.log(`machine busy during the bench (all cores, includes anything else running): ${fmt(systemCpu(sys0))} %`)
    console.log(JSON.stringify({ bench: 'arbitration', machine, windowMs: window, contests: n, decided: delays.length, p50: quantile(delays, 0.5), p95: quantile(delays, 0.95), max: Math.max(...delays), loudestWon: right }))
  } finally {
    for (const t of timers) clearInterval(t)
    for (const node of nodes) await node.client.endAsync(true).catch(() => undefined)
  }
}

function heard(speech, gain, seed) {
  const pre = 16 * 300
  const out = new Int16Array(pre + speech.length)
  let s = seed + 1
  for (let i = 0; i < out.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0
    const v = (i >= pre ? speech[i - pre] * gain : 0) + (((s >>> 16) % 400) - 200)
    out[i] = Math.max(-32768, Math.min(32767, Math.round(v)))
  }
  return out
}
