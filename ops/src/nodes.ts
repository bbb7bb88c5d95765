import { adminHeaders } from './admin-token.js'
import type { NodeView, NodesResponse } from '@mirrormesh/broker'
import { renderTable } from './table.js'

const fmtMs = (ms: number | null) => (ms === null ? '-' : ms < 10_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms / 1000)}s`)

export async function nodesCommand(opts: { hub: string; json?: boolean }): Promise<number> {
  let nodes: NodeView[]
  try {
    const res = await fetch(new URL('/api/nodes', opts.hub), { headers: await adminHeaders(), signal: AbortSignal.timeout(5000) })
    if (res.status === 401) throw new Error('HTTP 401: this listener wants the admin token; run on the hub as its user (reads $MIRRORMESH_STATE_DIR/admin-token) or set MIRRORMESH_ADMIN_TOKEN')
    if (!res.ok) throw new Error(`HTTP ${res.status}`)
    nodes = ((await res.json()) as NodesResponse).nodes
  } catch (err) {
    process.stderr.write(`mirrormesh nodes: cannot reach the hub at ${opts.hub} (${(err as Error).message}). Is it running? Set --hub or HUB_URL.\n`)
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
