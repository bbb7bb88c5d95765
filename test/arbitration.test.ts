// Nearest-mirror arbitration through a real hub and broker: three test mirrors of one room
// (registered by their heartbeats) stream the same utterance at different gains and small
// time offsets, each with its own ~300 ms of noise ahead, sent at once as the pre-roll an agent sends. Exactly
// one gets the reply: the loudest over its floor, not the first to start; the others get
// `arbitrated` naming it; when every mirror reports a wake-word score, the highest score answers.
// The decision delay comes from the hub's metric.
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { MqttClient } from 'mqtt'
import { killAll, sleep } from './support/harness.js'
import { BASE, createMesh, metricValue, type Mesh } from './support/mesh.js'
import { sayLikeAgent } from './support/multihub.js'
import { VoiceNode, synth } from './support/voice.js'

let speech: Int16Array
const timers: NodeJS.Timeout[] = []

beforeAll(async () => {
  speech = await synth('what time is it', { padMs: 900 })
})

afterEach(async () => {
  for (const t of timers.splice(0)) clearInterval(t)
  await killAll()
})

/** `gain` × the speech after 300 ms of noise at a fixed level: what one mirror's microphone hears. */
function heard(gain: number, seed: number): Int16Array {
  const pre = 16 * 300
  const out = new Int16Array(pre + speech.length)
  let s = seed
  const noise = () => { s = (s * 1103515245 + 12345) >>> 0; return ((s >>> 16) % 400) - 200 }
  for (let i = 0; i < out.length; i++) {
    const v = (i >= pre ? speech[i - pre]! * gain : 0) + noise()
    out[i] = Math.max(-32768, Math.min(32767, Math.round(v)))
  }
  return out
}

async function mirror(mesh: Mesh, id: string, room: string): Promise<VoiceNode> {
  const c: MqttClient = await mesh.client(id)
  await c.publishAsync(`${BASE}/nodes/${id}/status`, 'online', { qos: 1, retain: true })
  let seq = 0
  const beat = () => void c.publishAsync(`${BASE}/nodes/${id}/heartbeat`, JSON.stringify({ v: 1, ts: Date.now(), seq: seq++, uptimeS: 1, cpuPct: null, memPct: null, rssMb: 50, temperatureC: null, versions: {}, mode: 'online', room }), { qos: 0 })
  beat()
  timers.push(setInterval(beat, 500))
  const node = new VoiceNode(c, id)
  await node.ready()
  return node
}

describe('nearest-mirror arbitration', () => {
  it('three mirrors of one room hear one request: only the loudest over its noise floor answers, the others are told who', { timeout: 90_000 }, async () => {
    const mesh = await createMesh('embedded', { hubEnv: { VAD_END_SILENCE_MS: '500', ARBITRATION_WINDOW_MS: '150' } })
    const ids = ['kitchen', 'hall', 'a'] as const
    const nodes = await Promise.all(ids.map((id) => mirror(mesh, id, 'kitchen')))
    for (const id of ids) await mesh.waitNode(id, 'online')

    // Round 1: the loudest (a) starts last. Round 2: the loudest (kitchen) starts first.
    // Round 3: every mirror woke on its wake word and reports the score: the highest score (a,
    // the quietest) answers, not the loudest.
    const rounds: Array<{ gains: number[]; offsets: number[]; winner: string; wake?: number[] }> = [
      { gains: [0.3, 0.15, 1], offsets: [0, 30, 70], winner: 'a' }, { gains: [1, 0.3, 0.15], offsets: [0, 40, 80], winner: 'kitchen' },
      { gains: [1, 0.5, 0.4], offsets: [0, 20, 40], wake: [0.6, 0.7, 0.97], winner: 'a' }]
    let turnBase = 1000
    for (const r of rounds) {
      turnBase += 10
      const turns = ids.map((_, i) => turnBase + i)
      await Promise.all(nodes.map(async (n, i) => {
        await sleep(r.offsets[i]!)
        // Not awaited, as an agent sends it: the audio follows on the same connection.
        if (r.wake) void n.client.publishAsync(`${BASE}/nodes/${n.nodeId}/events`, JSON.stringify({ v: 1, ts: Date.now(), type: 'wake', turnId: turns[i]!, score: r.wake[i]! }), { qos: 1 })
        await sayLikeAgent(n.client, n.nodeId, turns[i]!, heard(r.gains[i]!, i + turnBase))
      }))
      const w = ids.indexOf(r.winner as (typeof ids)[number])
      await nodes[w]!.event(turns[w]!, 'reply', 30_000).catch((e: Error) => { console.log(mesh.hub.out.text.split('\n').filter((l) => /arbitration|turn finished|winner/.test(l)).join('\n')); throw e })
      for (const [i, n] of nodes.entries()) {
        if (i === w) continue
        expect(await n.event(turns[i]!, 'arbitrated', 5000)).toMatchObject({ winner: r.winner })
      }
      await sleep(1000) // a late reply to a loser would show up here
      const replied = nodes.filter((n, i) => n.turn(turns[i]!).events.some((e) => e.type === 'reply' || e.type === 'transcript'))
      expect(replied.map((n) => n.nodeId)).toEqual([r.winner])
    }
    const text = (await mesh.hub.http('/metrics')).body
    expect(metricValue(text, 'mirrormesh_arbitration_decision_seconds_count')).toBe(3)
  })

  it('a mirror alone in its room is not held back', { timeout: 60_000 }, async () => {
    const mesh = await createMesh('embedded', { hubEnv: { VAD_END_SILENCE_MS: '500', ARBITRATION_WINDOW_MS: '150' } })
    const [kitchen] = await Promise.all([mirror(mesh, 'kitchen', 'kitchen'), mirror(mesh, 'hall', 'hall')])
    await mesh.waitNode('kitchen', 'online')
    await mesh.waitNode('hall', 'online')
    await sayLikeAgent(kitchen!.client, 'kitchen', 77, heard(1, 7))
    await kitchen!.event(77, 'reply', 30_000)
    const text = (await mesh.hub.http('/metrics')).body
    expect(metricValue(text, 'mirrormesh_arbitration_decision_seconds_count')).toBe(0)
  })
})
