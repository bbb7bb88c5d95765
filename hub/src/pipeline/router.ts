// The first stage: audio/in messages from the nodes → typed frames for the right turn.
// Control frames are handled first and at once (cancel, barge-in, a start that replaces
// a running turn); data frames then go through the sequence checks. Every frame that
// goes nowhere is counted by reason; sequence gaps are counted as lost frames.
import { AudioFlags, decodeAudioFrame } from '@mirrormesh/broker'
import type { InputFrame, InterruptFrame } from './frames.js'

/** A turn as the router sees it. */
export interface RoutedTurn {
  readonly turnId: number
  /** 'open' takes audio; 'busy' was told busy; 'done' finished or was cancelled. */
  readonly state: 'open' | 'busy' | 'done'
  /** No more audio is wanted (end flag, end of speech, utterance limit). */
  readonly inputEnded: boolean
  /** A data frame for this turn, in sequence order. */
  push(frame: InputFrame): void
  /** Cancel or barge-in: acted on at once, ahead of any queued data. */
  interrupt(frame: InterruptFrame): void
}

export interface RouterTarget {
  /** A start frame for a turn not yet known: admit (or refuse) it and return it. */
  open(nodeId: string, turnId: number): RoutedTurn
}

export interface RouterCounters {
  /** A frame went nowhere: decode error, unknown/cancelled/busy turn, reordered, after end. */
  dropped(reason: string): void
  /** Frames missing by sequence number. */
  lost(n: number): void
}

interface NodeRoute {
  current?: { turn: RoutedTurn; expectedSeq: number }
  /** Recently cancelled turn ids, so their late frames are told from unknown ones. */
  cancelled: number[]
}

const cancelledKept = 16

export class Router {
  private readonly nodes = new Map<string, NodeRoute>()

  constructor(private readonly target: RouterTarget, private readonly count: RouterCounters) {}

  /** One audio/in message from a node. Never throws. */
  route(nodeId: string, payload: Buffer): void {
    const f = decodeAudioFrame(payload)
    if (typeof f === 'string') return this.count.dropped(f)
    const node = this.node(nodeId)
    let cur = node.current
    const live = cur !== undefined && cur.turn.state !== 'done'
    if (f.flags & (AudioFlags.bargeIn | AudioFlags.cancel)) {
      const bargeIn = (f.flags & AudioFlags.bargeIn) !== 0
      // Barge-in stops whatever the node is hearing; cancel names its turn.
      if (cur && live && (bargeIn || cur.turn.turnId === f.turnId)) {
        this.cancel(node, cur.turn, bargeIn ? { type: 'barge_in', at: Date.now() } : { type: 'cancel', reason: 'node_cancel' })
      }
      // A control frame carries no audio and its own sequence number: done unless it also opens a turn.
      if (!(f.flags & AudioFlags.start)) return
    }
    if (f.flags & AudioFlags.start) {
      if (cur && cur.turn.state !== 'done' && cur.turn.turnId !== f.turnId) this.cancel(node, cur.turn, { type: 'cancel', reason: 'new_turn' })
      if (!cur || cur.turn.turnId !== f.turnId || cur.turn.state === 'done') {
        cur = node.current = { turn: this.target.open(nodeId, f.turnId), expectedSeq: 0 }
        if (cur.turn.state === 'open') cur.turn.push({ type: 'start', at: Date.now() })
      }
    }
    if (!cur || cur.turn.turnId !== f.turnId) return this.count.dropped(node.cancelled.includes(f.turnId) ? 'cancelled_turn' : 'unknown_turn')
    const { turn } = cur
    if (turn.state !== 'open') return this.count.dropped(turn.state === 'busy' ? 'busy' : 'cancelled_turn')
    if (f.seq < cur.expectedSeq) return this.count.dropped('reordered')
    if (f.seq > cur.expectedSeq) this.count.lost(f.seq - cur.expectedSeq)
    cur.expectedSeq = f.seq + 1
    if (turn.inputEnded) return this.count.dropped('after_end')
    if (f.samples.length) turn.push({ type: 'audio_in', seq: f.seq, pcm: f.samples })
    if (f.flags & AudioFlags.end) turn.push({ type: 'input_end', at: Date.now() })
  }

  private cancel(node: NodeRoute, turn: RoutedTurn, frame: InterruptFrame): void {
    node.cancelled.push(turn.turnId)
    if (node.cancelled.length > cancelledKept) node.cancelled.shift()
    turn.interrupt(frame)
  }

  private node(nodeId: string): NodeRoute {
    let n = this.nodes.get(nodeId)
    if (!n) this.nodes.set(nodeId, (n = { cancelled: [] }))
    return n
  }
}
