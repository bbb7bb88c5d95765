import { describe, expect, it } from 'vitest'
import { AudioFlags, encodeAudioFrame } from '@mirrormesh/broker'
import type { InputFrame, InterruptFrame } from './frames.js'
import { Router, type RoutedTurn } from './router.js'

class FakeTurn implements RoutedTurn {
  state: RoutedTurn['state'] = 'open'
  inputEnded = false
  readonly pushed: InputFrame[] = []
  readonly controls: InterruptFrame[] = []
  constructor(readonly turnId: number) {}
  push(f: InputFrame): void { this.pushed.push(f); if (f.type === 'input_end') this.inputEnded = true }
  interrupt(f: InterruptFrame): void { this.controls.push(f); this.state = 'done' }
}

function setup(opts: { busy?: boolean } = {}) {
  const opened: Array<{ nodeId: string; turn: FakeTurn }> = []
  const dropped: string[] = []
  let lost = 0
  const router = new Router({
    open(nodeId, turnId) {
      const turn = new FakeTurn(turnId)
      if (opts.busy) turn.state = 'busy'
      opened.push({ nodeId, turn })
      return turn
    },
  }, { dropped: (r) => void dropped.push(r), lost: (n) => { lost += n } })
  const send = (nodeId: string, turnId: number, seq: number, flags = 0, samples = 320) =>
    router.route(nodeId, encodeAudioFrame({ flags, turnId, seq, samples: new Int16Array(samples).fill(7) }))
  return { router, opened, dropped, send, lost: () => lost }
}

describe('Router', () => {
  it('a start frame opens a turn; audio goes to it in order; the end flag ends its input', () => {
    const r = setup()
    r.send('kitchen', 1, 0, AudioFlags.start)
    r.send('kitchen', 1, 1)
    r.send('kitchen', 1, 2, AudioFlags.end, 160)
    expect(r.opened).toHaveLength(1)
    const turn = r.opened[0]!.turn
    expect(turn.turnId).toBe(1)
    expect(turn.pushed.map((f) => f.type)).toEqual(['start', 'audio_in', 'audio_in', 'audio_in', 'input_end'])
    expect(turn.pushed.filter((f) => f.type === 'audio_in').map((f) => f.seq)).toEqual([0, 1, 2])
    expect(r.dropped).toEqual([])
    expect(r.lost()).toBe(0)
  })

  it('decode errors are dropped by reason and open nothing', () => {
    const r = setup()
    r.router.route('kitchen', Buffer.from('hello'))
    const bad = encodeAudioFrame({ flags: AudioFlags.start, turnId: 1, seq: 0, samples: new Int16Array(4) })
    bad[0] = 0
    r.router.route('kitchen', bad)
    expect(r.dropped).toEqual(['short', 'magic'])
    expect(r.opened).toHaveLength(0)
  })

  it('a frame for a turn never started is unknown_turn', () => {
    const r = setup()
    r.send('kitchen', 9, 3)
    expect(r.dropped).toEqual(['unknown_turn'])
  })

  it('a gap in sequence numbers is counted lost; an older frame is dropped as reordered', () => {
    const r = setup()
    r.send('kitchen', 1, 0, AudioFlags.start)
    r.send('kitchen', 1, 3) // 1 and 2 missing
    r.send('kitchen', 1, 2) // late: reordered
    r.send('kitchen', 1, 4)
    expect(r.lost()).toBe(2)
    expect(r.dropped).toEqual(['reordered'])
    expect(r.opened[0]!.turn.pushed.flatMap((f) => (f.type === 'audio_in' ? [f.seq] : []))).toEqual([0, 3, 4])
  })

  it('frames after the input ended are dropped as after_end', () => {
    const r = setup()
    r.send('kitchen', 1, 0, AudioFlags.start | AudioFlags.end)
    r.send('kitchen', 1, 1)
    expect(r.dropped).toEqual(['after_end'])
  })

  it('cancel stops its turn at once, and its late frames are cancelled_turn', () => {
    const r = setup()
    r.send('kitchen', 1, 0, AudioFlags.start)
    r.send('kitchen', 1, 0, AudioFlags.cancel, 0) // control frame: own seq, no audio
    const turn = r.opened[0]!.turn
    expect(turn.controls).toEqual([{ type: 'cancel', reason: 'node_cancel' }])
    r.send('kitchen', 1, 1)
    expect(r.dropped).toEqual(['cancelled_turn'])
    expect(r.lost()).toBe(0)
  })

  it('cancel naming another turn leaves the running one alone', () => {
    const r = setup()
    r.send('kitchen', 1, 0, AudioFlags.start)
    r.send('kitchen', 2, 0, AudioFlags.cancel, 0)
    expect(r.opened[0]!.turn.controls).toEqual([])
    r.send('kitchen', 1, 1)
    expect(r.opened[0]!.turn.pushed.filter((f) => f.type === 'audio_in')).toHaveLength(2)
  })

  it('barge-in stops the running turn whatever id it names, and is not counted lost', () => {
    const r = setup()
    r.send('kitchen', 1, 0, AudioFlags.start | AudioFlags.end)
    const before = Date.now()
    r.send('kitchen', 77, 0, AudioFlags.bargeIn, 0)
    const controls = r.opened[0]!.turn.controls
    expect(controls).toHaveLength(1)
    expect(controls[0]!.type).toBe('barge_in')
    expect((controls[0] as { at: number }).at).toBeGreaterThanOrEqual(before)
    expect(r.lost()).toBe(0)
    expect(r.dropped).toEqual([])
  })

  it('a new turn from the same node cancels the running one (new_turn); old frames are cancelled_turn', () => {
    const r = setup()
    r.send('kitchen', 1, 0, AudioFlags.start)
    r.send('kitchen', 2, 0, AudioFlags.start)
    expect(r.opened.map((o) => o.turn.turnId)).toEqual([1, 2])
    expect(r.opened[0]!.turn.controls).toEqual([{ type: 'cancel', reason: 'new_turn' }])
    r.send('kitchen', 1, 1)
    expect(r.dropped).toEqual(['cancelled_turn'])
    r.send('kitchen', 2, 1)
    expect(r.opened[1]!.turn.pushed.filter((f) => f.type === 'audio_in')).toHaveLength(2)
  })

  it('barge-in with a start flag stops the reply and opens the new turn in one frame', () => {
    const r = setup()
    r.send('kitchen', 1, 0, AudioFlags.start | AudioFlags.end)
    r.send('kitchen', 2, 0, AudioFlags.start | AudioFlags.bargeIn)
    expect(r.opened[0]!.turn.controls.map((c) => c.type)).toEqual(['barge_in'])
    expect(r.opened[1]!.turn.pushed.map((f) => f.type)).toEqual(['start', 'audio_in'])
  })

  it('nodes are routed apart: one node\'s start does not touch another\'s turn', () => {
    const r = setup()
    r.send('kitchen', 1, 0, AudioFlags.start)
    r.send('hall', 1, 0, AudioFlags.start)
    expect(r.opened.map((o) => o.nodeId)).toEqual(['kitchen', 'hall'])
    expect(r.opened[0]!.turn.controls).toEqual([])
  })

  it('frames of a turn told busy are dropped as busy', () => {
    const r = setup({ busy: true })
    r.send('kitchen', 1, 0, AudioFlags.start)
    r.send('kitchen', 1, 1)
    expect(r.dropped).toEqual(['busy', 'busy'])
    expect(r.opened[0]!.turn.pushed).toEqual([])
  })

  it('a start for a finished turn id opens a new turn', () => {
    const r = setup()
    r.send('kitchen', 1, 0, AudioFlags.start | AudioFlags.end)
    r.opened[0]!.turn.state = 'done'
    r.send('kitchen', 1, 0, AudioFlags.start)
    expect(r.opened).toHaveLength(2)
    expect(r.opened[0]!.turn.controls).toEqual([]) // finished, not cancelled
  })
})
