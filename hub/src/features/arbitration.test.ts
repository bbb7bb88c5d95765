import { describe, expect, it } from 'vitest'
import { AudioFlags, encodeAudioFrame } from '@mirrormesh/broker'
import { Arbiter, PRESENCE_BONUS_DB, WAKE_SCORE_TIE, pickWinner, type Candidate, type Decision } from './arbitration.js'

const cand = (node: string, snrDb: number, extra: Partial<Candidate> = {}): Candidate => ({ node, snrDb, present: false, at: 0, ...extra })

describe('pickWinner', () => {
  it('without wake scores: the highest level over floor, presence adding its bonus', () => {
    expect(pickWinner([cand('a', 20), cand('b', 30)])!.node).toBe('b')
    expect(pickWinner([cand('a', 31 - PRESENCE_BONUS_DB, { present: true }), cand('b', 30)])!.node).toBe('a')
  })

  it('every candidate woke: the higher wake-word score wins over a louder mirror', () => {
    expect(pickWinner([cand('loud', 40, { wake: 0.6 }), cand('near', 15, { wake: 0.95 })])!.node).toBe('near')
    expect(pickWinner([cand('near', 15, { wake: 0.95 }), cand('loud', 40, { wake: 0.6 }), cand('far', 50, { wake: 0.5 })])!.node).toBe('near')
  })

  it('wake scores within the tie margin: level over floor decides', () => {
    expect(pickWinner([cand('a', 15, { wake: 0.9 }), cand('b', 30, { wake: 0.9 - WAKE_SCORE_TIE / 2 })])!.node).toBe('b')
    // sherpa's keyword spotter reports 1 for every detection: all equal, level decides
    expect(pickWinner([cand('a', 15, { wake: 1 }), cand('b', 30, { wake: 1 })])!.node).toBe('b')
  })

  it('a score missing on one candidate: level over floor decides for all', () => {
    expect(pickWinner([cand('woke', 10, { wake: 0.99 }), cand('vad', 30)])!.node).toBe('vad')
  })

  it('a full tie: the earliest start', () => {
    expect(pickWinner([cand('late', 20, { at: 5 }), cand('early', 20, { at: 1 })])!.node).toBe('early')
    expect(pickWinner([])).toBeUndefined()
  })
})

describe('Arbiter with wake events', () => {
  const frame = (turnId: number, gain: number, start = false) => {
    const samples = new Int16Array(320).map((_, i) => Math.round(Math.sin(i / 3) * gain))
    return encodeAudioFrame({ flags: start ? AudioFlags.start : 0, turnId, seq: 0, samples })
  }

  it('the wake score decides, whether the event comes before or after the start frame', async () => {
    const decided: Decision[] = []
    const passed = new Set<string>()
    const lost: string[] = []
    const arb = new Arbiter({
      windowMs: 30, room: () => 'kitchen', roomPeers: (n) => ['loud', 'near'].filter((x) => x !== n), present: () => false,
      pass: (n) => passed.add(n), lost: (n) => lost.push(n), decided: (d) => decided.push(d),
    })
    arb.onWake('near', 7, 0.97) // before its audio
    arb.onAudio('loud', frame(3, 50, true))
    arb.onAudio('near', frame(7, 50, true))
    for (let i = 0; i < 5; i++) { arb.onAudio('loud', frame(3, 8000)); arb.onAudio('near', frame(7, 800)) }
    arb.onWake('loud', 3, 0.55) // after its audio
    await new Promise((r) => setTimeout(r, 80))
    arb.close()
    expect(decided).toHaveLength(1)
    expect(decided[0]!.winner).toBe('near')
    expect(decided[0]!.wake).toEqual({ loud: 0.55, near: 0.97 })
    expect(decided[0]!.scores.loud!).toBeGreaterThan(decided[0]!.scores.near!) // louder, yet lost on the wake score
    expect([...passed]).toEqual(['near'])
    expect(lost).toEqual(['loud'])
  })
})
