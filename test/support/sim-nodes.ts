// Many simulated nodes in one process: each is the project's own MeshClient with the agent's
// reconnect backoff and Last Will, announcing `online` (retained) on every connect and
// heartbeating like an agent. For power-recovery, flapping and soak runs where 200 agent
// processes would not fit on the machine.
import { MeshClient, createLogger, type NodeHeartbeat } from '@mirrormesh/broker'

export interface SimNode {
  id: string
  client: MeshClient
  /** Connects (counted from `start`) and heartbeat send times. */
  connects: number
  sent: number
}

export interface SimFleet {
  nodes: SimNode[]
  connected(): number
  stop(): Promise<void>
}

/** The agent's backoff (node-agent/src/features/mqtt.ts). */
export const AGENT_BACKOFF = { initialMs: 300, factor: 1.5, minMs: 100, maxMs: 30_000 }

export function startFleet(url: string, creds: Array<{ id: string; password: string }>, { base = 'mirrormesh', heartbeatMs = 1000, keepaliveS = 10 } = {}): SimFleet {
  const log = createLogger({ level: 'silent', name: 'sim' })
  const started = Date.now()
  const nodes: SimNode[] = creds.map(({ id, password }) => {
    const client = new MeshClient({ url, base, clientId: `node-${id}`, username: id, password, keepaliveS, backoff: AGENT_BACKOFF, will: { name: 'nodeStatus', params: { node: id }, payload: 'offline' }, log })
    const node: SimNode = { id, client, connects: 0, sent: 0 }
    client.on('connect', () => {
      node.connects++
      client.publish('nodeStatus', { node: id }, 'online').catch(() => undefined)
    })
    client.start()
    return node
  })
  let seq = 0
  // One timer for the fleet, nodes spread over the interval as independent boards would be.
  const timer = setInterval(() => {
    seq++
    nodes.forEach((n, i) => {
      if (!n.client.connected) return
      setTimeout(() => {
        const hb: NodeHeartbeat = { v: 1, ts: Date.now(), seq, uptimeS: Math.round((Date.now() - started) / 1000), cpuPct: 1, memPct: 10, rssMb: 50, temperatureC: null, versions: { agent: 'sim' }, mode: 'online' }
        n.client.publish('nodeHeartbeat', { node: n.id }, hb).then(() => { n.sent++ }, () => undefined)
      }, Math.floor((i / nodes.length) * heartbeatMs))
    })
  }, heartbeatMs)
  return {
    nodes,
    connected: () => nodes.filter((n) => n.client.connected).length,
    async stop() {
      clearInterval(timer)
      await Promise.all(nodes.map((n) => n.client.stop().catch(() => undefined)))
    },
  }
}
