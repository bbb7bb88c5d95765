// Nearest-mirror arbitration: when several mirrors of one room start a turn within
// ARBITRATION_WINDOW_MS, exactly one answers. Each candidate's audio is held for the window;
// the one whose speech stands highest over its own noise floor wins (the floor comes from the
// ~300 ms pre-roll every agent sends ahead of speech; fresh presence adds a bonus) — unless every
// candidate woke on its wake word: then the highest wake-word score wins (the node reports it as
// a `wake` event), level over floor deciding only scores within WAKE_SCORE_TIE. Its held
// frames go into the pipeline at once (ASR catches up, so the added delay is the window at
// most), and the others hear `arbitrated` with the winner and stop listening.
// A mirror alone in its room, or without a room, is never held. Offline, each mirror answers
// for itself: arbitration is the hub's (the one hub serving the room decides).
import { AudioFlags, decodeAudioFrame } from '@mirrormesh/broker'

export interface ArbiterDeps {
  windowMs: number
  room(node: string): string | null
  /** Other online nodes in the node's room. */
  roomPeers(node: string): string[]
  /** Whether the node reported someone present recently. */
  present(node: string): boolean
  /** Into the pipeline. */
  pass(node: string, frame: Buffer): void
  /** A candidate lost: tell it who answered. */
  lost(node: string, turnId: number, winner: string): void
  decided(d: Decision): void
}

export interface Decision { room: string; winner: string; delayMs: number; scores: Record<string, number>; wake?: Record<string, number> }

interface Entry { node: string; turnId: number; frames: Buffer[]; levels: number[]; at: number; wake?: number }

/** Wake-word scores closer than this are a tie (detector noise): level over floor decides. */
export const WAKE_SCORE_TIE = 0.05

export interface Candidate { node: string; snrDb: number; present: boolean; wake?: number; at: number }

/**
 * The winner among candidates for one request. Wake-word scores decide when every candidate has
 * one (a mirror that only heard speech cannot be compared to one that heard its wake word) and
 * they differ by more than WAKE_SCORE_TIE; otherwise speech level over noise floor (+ presence
 * bonus); then the earliest start.
 */
export function pickWinner(cands: readonly Candidate[]): Candidate | undefined {
  const level = (c: Candidate) => c.snrDb + (c.present ? PRESENCE_BONUS_DB : 0)
  const byWake = cands.length > 1 && cands.every((c) => c.wake !== undefined)
  let best: Candidate | undefined
  for (const c of cands) {
    if (!best) { best = c; continue }
    const dw = byWake ? c.wake! - best.wake! : 0
    if (Math.abs(dw) > WAKE_SCORE_TIE) { if (dw > 0) best = c; continue }
    const dl = level(c) - level(best)
    if (dl > 0 || (dl === 0 && c.at < best.at)) best = c
  }
  return best
}
interface Contest { room: string; openedAt: number; entries: Map<string, Entry>; timer: NodeJS.Timeout; decidedAt?: number; winner?: string }

/** Bonus for a mirror with someone in front of it, in dB of SNR. */
export const PRESENCE_BONUS_DB = 3

/** RMS of each frame → speech level over noise floor, dB: 90th percentile over 10th (floor ≥ 1 LSB). */
export function snrDb(levels: readonly number[]): number {
  if (!levels.length) return -Infinity
  const s = [...levels].sort((a, b) => a - b)
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!
  return 20 * Math.log10(Math.max(1, at(0.9)) / Math.max(1, at(0.1)))
}

function rms(samples: Int16Array): number {
  let sum = 0
  for (const v of samples) sum += v * v
  return samples.length ? Math.sqrt(sum / samples.length) : 0
}

export class Arbiter {
  private readonly contests = new Map<string, Contest>()
  private readonly entries = new Map<string, Entry>()
  /** node → the verdict on its current turn: later frames of a loser are dropped. */
  private readonly verdicts = new Map<string, { turnId: number; won: boolean }>()

  /** Wake scores reported by nodes (`wake` event), which may arrive before or after the start frame. */
  private readonly wakes = new Map<string, { turnId: number; score: number }>()

  constructor(private readonly deps: ArbiterDeps) {}

  /** A node's wake-word score for its turn `turnId`. */
  onWake(node: string, turnId: number, score: number): void {
    const e = this.entries.get(node)
    if (e && e.turnId === turnId) e.wake = score
    else this.wakes.set(node, { turnId, score })
  }

  onAudio(node: string, frame: Buffer): void {
    const f = decodeAudioFrame(frame)
    if (typeof f === 'string') return this.deps.pass(node, frame) // the router counts it
    if (f.flags & AudioFlags.start) return this.onStart(node, f.turnId, frame, rms(f.samples))
    const v = this.verdicts.get(node)
    if (v && v.turnId === f.turnId) {
      if (v.won) this.deps.pass(node, frame)
      return
    }
    const e = this.entries.get(node)
    if (e && e.turnId === f.turnId) {
      e.frames.push(frame)
      if (f.samples.length) e.levels.push(rms(f.samples))
      return
    }
    this.deps.pass(node, frame)
  }

  close(): void {
    for (const c of this.contests.values()) clearTimeout(c.timer)
    this.contests.clear()
  }

  private onStart(node: string, turnId: number, frame: Buffer, level: number): void {
    const room = this.deps.windowMs > 0 ? this.deps.room(node) : null
    const peers = room ? this.deps.roomPeers(node) : []
    if (!room || peers.length === 0) {
      this.verdicts.set(node, { turnId, won: true })
      return this.deps.pass(node, frame)
    }
    const now = performance.now()
    let c = this.contests.get(room)
    // Heard just after the decision: the same request, heard late; the winner already answers it.
    if (c?.winner !== undefined && c.winner !== node && now - c.decidedAt! <= this.deps.windowMs) {
      this.verdicts.set(node, { turnId, won: false })
      return this.deps.lost(node, turnId, c.winner)
    }
    if (!c || c.winner !== undefined) {
      const opened: Contest = { room, openedAt: now, entries: new Map(), timer: setTimeout(() => this.decide(opened), this.deps.windowMs) }
      opened.timer.unref()
      this.contests.set(room, c = opened)
    }
    const w = this.wakes.get(node)
    this.wakes.delete(node)
    const e: Entry = { node, turnId, frames: [frame], levels: [level], at: now, ...(w?.turnId === turnId ? { wake: w.score } : {}) }
    c.entries.set(node, e)
    this.entries.set(node, e)
    // No early decision when every peer has started: the window's speech is what is compared.
  }

  private decide(c: Contest): void {
    if (c.winner !== undefined) return
    clearTimeout(c.timer)
    const scores: Record<string, number> = {}
    const wake: Record<string, number> = {}
    const cands: Candidate[] = []
    for (const e of c.entries.values()) {
      const present = this.deps.present(e.node)
      const snr = snrDb(e.levels)
      scores[e.node] = snr + (present ? PRESENCE_BONUS_DB : 0)
      if (e.wake !== undefined) wake[e.node] = e.wake
      cands.push({ node: e.node, snrDb: snr, present, at: e.at, ...(e.wake === undefined ? {} : { wake: e.wake }) })
    }
    const best = c.entries.get(pickWinner(cands)!.node)
    c.winner = best!.node
    c.decidedAt = performance.now()
    for (const e of c.entries.values()) {
      this.entries.delete(e.node)
      const won = e === best
      this.verdicts.set(e.node, { turnId: e.turnId, won })
      if (won) for (const fr of e.frames) this.deps.pass(e.node, fr)
      else this.deps.lost(e.node, e.turnId, c.winner)
    }
    this.deps.decided({ room: c.room, winner: c.winner, delayMs: c.decidedAt - c.openedAt, scores, ...(Object.keys(wake).length ? { wake } : {}) })
  }
}
