// Node outages, coalesced: a node that leaves `online` opens an incident; the incident closes
// only once the node has stayed online for the settle window. Going down again before that is
// the same incident (one more `down`), so a flapping node makes one record, not one per flap.
import type { NodeState, NodeView } from '../registry.js'
import type { NodeOutage, Recovery } from './records.js'

const isDown = (s: NodeState): boolean => s === 'offline' || s === 'stale'

interface Open { start: number; downs: number; states: Set<string>; upAt: number | null; timer: NodeJS.Timeout | undefined }

export interface NodeOutagesOptions {
  settleMs: number
  /** Called with each finished (or, at stop, unfinished) outage. */
  onRecord: (r: NodeOutage) => void
  /** Readings that confirm recovery, taken when the outage closes. */
  recovery: (nodeId: string) => Recovery
  now?: () => number
}

export class NodeOutages {
  private readonly open = new Map<string, Open>()
  private readonly now: () => number

  constructor(private readonly opts: NodeOutagesOptions) {
    this.now = opts.now ?? Date.now
  }

  /** Registry 'state' listener. */
  state(view: NodeView, from: NodeState | null): void {
    // First sight (hub start, retained status): when it went down is unknown; not an incident.
    if (from === null) return
    const o = this.open.get(view.id)
    if (isDown(view.state)) {
      if (!o) {
        this.open.set(view.id, { start: view.stateSince, downs: 1, states: new Set([view.state]), upAt: null, timer: undefined })
        return
      }
      o.states.add(view.state)
      if (o.upAt !== null) {
        // Back down within the settle window: a flap of the same incident.
        clearTimeout(o.timer)
        o.timer = undefined
        o.upAt = null
        o.downs++
      }
      return
    }
    if (view.state === 'online' && o && o.upAt === null) {
      o.upAt = view.stateSince
      o.timer = setTimeout(() => this.close(view.id), this.opts.settleMs)
      o.timer.unref()
    }
  }

  /** Nodes with an open incident. */
  get openCount(): number { return this.open.size }

  /** Hub stopping: settling outages close now; ongoing ones are recorded as still going. */
  stop(): void {
    for (const id of [...this.open.keys()]) this.close(id)
  }

  private close(id: string): void {
    const o = this.open.get(id)
    if (!o) return
    clearTimeout(o.timer)
    this.open.delete(id)
    const end = o.upAt
    this.opts.onRecord({
      type: 'node_outage', nodeId: id, at: this.now(), start: o.start, end, durationMs: end === null ? null : end - o.start,
      downs: o.downs, states: [...o.states], recovery: end === null ? {} : this.opts.recovery(id),
    })
  }
}
