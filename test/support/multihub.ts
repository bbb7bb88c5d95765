// Several hub processes against one real Mosquitto (HUB_ROLE active/standby), each with its
// own state dir and ports, plus an observer that records every retained nodes/{id}/assign.
import { createHash } from 'node:crypto'
import mqtt, { type MqttClient } from 'mqtt'
import { AudioFlags, encodeAudioFrame } from '@mirrormesh/broker'
import { cli, startHub, startMosquitto, tempDir, waitFor, type Env, type HubProc, type MosquittoProc } from './harness.js'

export const BASE = 'mirrormesh'
export const NODES = ['kitchen', 'hall', 'a', 'b'] as const

export interface AssignRecord { node: string; hub: string; epoch: number; at: number }

/** The documented rule, written independently of the hub's code: highest sha256(node \n hub) wins. */
export function rendezvous(node: string, hubs: string[]): string {
  return [...hubs].sort((x, y) => {
    const wx = createHash('sha256').update(`${node}\n${x}`).digest('hex')
    const wy = createHash('sha256').update(`${node}\n${y}`).digest('hex')
    return wx === wy ? x.localeCompare(y) : wx < wy ? 1 : -1
  })[0]!
}

export type HubBed = Awaited<ReturnType<typeof createHubBed>>

export async function createHubBed(hubIds: string[], nodes: readonly string[] = NODES) {
  const users = [...hubIds.map((h) => `hub-${h}`), ...nodes, 'dash']
  const passwords: Record<string, string> = Object.fromEntries(users.map((u) => [u, `pw-${u}-${Math.random().toString(36).slice(2)}`]))
  const acl = (await cli(['broker', 'mosquitto-acl', '--hub', ...hubIds.map((h) => `hub-${h}`), '--observer', 'dash'])).stdout
  const mosq: MosquittoProc = await startMosquitto({ users: Object.entries(passwords).map(([username, password]) => ({ username, password })), acl, persistence: false })
  const hubs = new Map<string, HubProc>()
  const dirs = new Map<string, string>()
  const assigns: AssignRecord[] = []
  const current = new Map<string, AssignRecord>()
  const watcher: MqttClient = await mqtt.connectAsync(mosq.url, { clientId: `dash-${Math.random().toString(36).slice(2, 8)}`, username: 'dash', password: passwords.dash, reconnectPeriod: 0 })
  watcher.on('message', (topic, payload) => {
    const m = topic.match(/^mirrormesh\/nodes\/([^/]+)\/assign$/)
    if (!m || payload.length === 0) return
    const a = JSON.parse(payload.toString()) as { hub: string; epoch: number }
    const rec = { node: m[1]!, hub: a.hub, epoch: a.epoch, at: Date.now() }
    assigns.push(rec)
    current.set(rec.node, rec)
  })
  await watcher.subscribeAsync(`${BASE}/nodes/+/assign`, { qos: 1 })

  const bed = {
    mosq, passwords, hubs, assigns, current, url: mosq.url,
    /** Start (or restart, same state dir) hub `id` with HUB_ROLE `role`. */
    async startHub(id: string, role: 'active' | 'standby', env: Env = {}): Promise<HubProc> {
      const stateDir = dirs.get(id) ?? (await tempDir(`mm-hub-${id}-`))
      dirs.set(id, stateDir)
      const opts = {
        stateDir, mqttUrl: mosq.url, username: `hub-${id}`, password: passwords[`hub-${id}`], wait: false,
        env: { HUB_ID: id, HUB_ROLE: role, HEARTBEAT_INTERVAL_MS: '300', HUB_PEER_STALE_MS: '1200', PIPELINE_ENABLED: 'false', NODE_STALE_MS: '3000', ...env },
      }
      // A free port picked here can be taken by another process before the hub binds it (the HTTP
      // listener then fails alone and /readyz never answers): start again on fresh ports.
      let hub: HubProc | undefined
      for (let i = 1; !hub; i++) {
        const h = await startHub(opts)
        let exit: number | null | undefined
        void h.exited.then(({ code }) => { exit = code })
        const ok = await waitFor(async () => exit !== undefined || (await h.http('/readyz')).status === 200, { timeoutMs: 60_000, what: `hub ${id} /readyz` }).then(() => exit === undefined, () => false)
        if (exit !== undefined) throw new Error(`hub ${id} exited with ${exit}:\n${h.out.text.slice(-2000)}`)
        if (ok) hub = h
        else if (i >= 3 || !/EADDRINUSE/.test(h.out.text)) throw new Error(`hub ${id} not ready:\n${h.out.text.slice(-2000)}`)
        else { h.kill('SIGKILL'); await h.exited }
      }
      hubs.set(id, hub)
      return hub
    },
    hubOf: (node: string): string | undefined => current.get(node)?.hub,
    waitAssigned: (node: string, hub: string, timeoutMs = 15_000) =>
      waitFor(() => current.get(node)?.hub === hub && current.get(node)!, { timeoutMs, what: `${node} assigned to ${hub} (now ${current.get(node)?.hub ?? 'none'})` }),
    async close(): Promise<void> {
      await watcher.endAsync(true).catch(() => undefined)
    },
  }
  return bed
}

/** Epochs of each node's assignments only ever grow: no two hubs claimed the same node at once. */
export function epochsIncrease(assigns: AssignRecord[]): boolean {
  const last = new Map<string, number>()
  for (const a of assigns) {
    if ((last.get(a.node) ?? 0) >= a.epoch) return false
    last.set(a.node, a.epoch)
  }
  return true
}

/**
 * Stream one utterance as a node agent does: the first `preRollMs` (audio from before the VAD
 * fired) at once, the rest at real-time pace, the last frame marked end.
 */
export async function sayLikeAgent(client: MqttClient, nodeId: string, turnId: number, pcm: Int16Array, preRollMs = 300): Promise<void> {
  const topic = `${BASE}/nodes/${nodeId}/audio/in`
  const started = Date.now()
  const pre = preRollMs * 16
  let seq = 0
  for (let off = 0; off < pcm.length; off += 320) {
    const samples = pcm.subarray(off, Math.min(pcm.length, off + 320))
    const flags = (off === 0 ? AudioFlags.start : 0) | (off + 320 >= pcm.length ? AudioFlags.end : 0)
    client.publish(topic, encodeAudioFrame({ flags, turnId, seq: seq++, samples }), { qos: 0 })
    if (off + 320 <= pre) continue
    const wait = started + (off + 320 - pre) / 16 - Date.now()
    if (wait > 0) await new Promise((r) => setTimeout(r, wait))
  }
}
