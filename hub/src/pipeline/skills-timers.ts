// The hub's timers, per node: set, listed ("how long is left") and cancelled ("cancel the
// timer"). Before, a timer was a bare setTimeout nobody could reach: "cancel" only stopped
// playback and the timer still fired. stop() (hub shutdown) clears them all.
import type { SkillEnv } from './skills.js'

interface Running { label: string; endsAt: number; handle: NodeJS.Timeout }

export class HubTimers {
  private readonly byNode = new Map<string, Set<Running>>()

  constructor(private readonly now: () => number = Date.now) {}

  /** The timer part of a node's SkillEnv; `done(label)` is called when one ends (not when cancelled). */
  env(nodeId: string, done: (label: string) => void): Pick<SkillEnv, 'setTimer' | 'cancelTimers' | 'listTimers'> {
    return {
      setTimer: (ms, label) => {
        const set = this.node(nodeId)
        const t: Running = { label, endsAt: this.now() + ms, handle: setTimeout(() => { set.delete(t); done(label) }, ms) }
        t.handle.unref()
        set.add(t)
      },
      cancelTimers: () => {
        const set = this.node(nodeId)
        for (const t of set) clearTimeout(t.handle)
        const n = set.size
        set.clear()
        return n
      },
      listTimers: () => [...this.node(nodeId)].sort((a, b) => a.endsAt - b.endsAt)
        .map((t) => ({ label: t.label, remainingMs: Math.max(0, t.endsAt - this.now()) })),
    }
  }

  stop(): void {
    for (const set of this.byNode.values()) for (const t of set) clearTimeout(t.handle)
    this.byNode.clear()
  }

  private node(nodeId: string): Set<Running> {
    let s = this.byNode.get(nodeId)
    if (!s) this.byNode.set(nodeId, (s = new Set()))
    return s
  }
}
