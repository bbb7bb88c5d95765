import type { NodeView, NodesResponse } from '@mirrormesh/broker'
import { HubClient, errorText, type HubTarget } from './api.js'
import { renderTable } from './table.js'

const fmtMs = (ms: number | null) => (ms === null ? '-' : ms < 10_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms / 1000)}s`)

export async function nodesCommand(opts: HubTarget & { json?: boolean }): Promise<number> {
  let nodes: NodeView[]
  try {
    nodes = (await new HubClient(opts).json<NodesResponse>('/api/nodes')).nodes
  } catch (err) {
    process.stderr.write(`mirrormesh nodes: ${errorText(err)}\n`)
    return 1
  }
  if (opts.json) {
    process.stdout.write(JSON.stringify(nodes, null, 2) + '\n')
    return 0
  }
  if (nodes.length === 0) {
    process.stdout.write('no nodes have connected yet\n')
    return 0
  }
  process.stdout.write(renderTable(
    ['ID', 'STATE', 'HEARTBEAT AGE', 'MODE', 'CLOCK SKEW', 'VERSIONS'],
    nodes.map((n) => [n.id, n.state, fmtMs(n.heartbeatAgeMs), n.mode ?? '-', n.clockSkewMs === null ? '-' : `${n.clockSkewMs}ms`,
      Object.entries(n.versions).map(([k, v]) => `${k}=${v}`).join(' ') || '-']),
  ))
  return 0
}
