// Offline mode's early endpoint with the real recognizer (pocketsphinx) and a served bundle:
// an early answer plays at once but its effects (journal, timers) wait for the resume window;
// speech resuming within it withdraws the early answer and is heard together with it.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLogger, type MeshClient } from '@mirrormesh/broker'
import { OfflineMode } from './offline-mode.js'
import { announcementOf, makeTestBundle, serveBundles, type BundleServer } from '../../test/support/offline-bundle.js'
import type { NodeStateMachine } from './state.js'
import type { OfflineTurn, VoiceLoop } from './voice.js'

const log = createLogger({ name: 'test', level: 'silent' })
const root = mkdtempSync(path.join(tmpdir(), 'mm-offmode-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

/** espeak speech (en-us, 160 wpm) without its trailing near-silence (> 40 dB under the peak). */
function speech(text: string): Int16Array {
  const wav = execFileSync('espeak-ng', ['-v', 'en-us', '-s', '160', '--stdout', text])
  const raw = execFileSync('sox', ['-t', 'wav', '-', '-t', 'raw', '-r', '16000', '-e', 'signed', '-b', '16', '-c', '1', '-'], { input: wav })
  const pcm = new Int16Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length - (raw.length % 2)))
  const rms = (i: number): number => Math.sqrt(pcm.subarray(i, i + 160).reduce((n, s) => n + s * s, 0) / 160)
  let peak = 0
  for (let i = 0; i < pcm.length; i += 160) peak = Math.max(peak, rms(i))
  let last = 0
  for (let i = 0; i < pcm.length; i += 160) if (rms(i) >= peak / 100) last = Math.min(pcm.length, i + 160)
  return pcm.slice(0, last)
}
const silence = (ms: number): Int16Array => new Int16Array(ms * 16)

const RESUME_MS = 400
const b = makeTestBundle({
  version: 'early',
  replies: [
    { phrase: 'what time is it', skill: 'time', text: '{time}', clips: ['{time}'] },
    { phrase: 'what day is it', skill: 'date', text: '{date}', clips: ['{date}'] },
    { phrase: 'what day is it today', skill: 'date', text: '{date}', clips: ['{date}'] },
    { phrase: 'turn on the kitchen light', skill: 'lights', text: 'Kitchen light on', clips: ['kitchen-on.pcm'] },
    { phrase: 'stop', skill: 'stop', text: '', clips: [], stop: true },
    { phrase: 'volume down', skill: 'volume', text: 'Volume down.', clips: ['volume-down.pcm'], event: { type: 'volume', change: 'down' } },
  ],
})
let srv: BundleServer
let n = 0
const played: number[] = []

/** An offline node with the test bundle installed; `opts` overrides the early-endpoint settings and such. */
async function mode(opts: Partial<ConstructorParameters<typeof OfflineMode>[0]> = {}): Promise<OfflineMode> {
  const m = new OfflineMode({
    dir: path.join(root, `m${n++}`), nodeId: 'kitchen', hubHttpUrl: srv.url, log,
    client: { publish: async () => {} } as unknown as MeshClient,
    state: { state: 'offline', addRecoveryTask: () => {} } as unknown as NodeStateMachine,
    voice: { play: (_pcm: Int16Array, turnId: number) => played.push(turnId) } as unknown as VoiceLoop,
    endpoint: { silenceMs: 100, resumeWindowMs: RESUME_MS },
    ...opts,
  })
  await m.start()
  await m.onManifest(announcementOf(b))
  expect(m.bundleVersion).toBe('early')
  return m
}

/**
 * Plays the voice loop: streams `pcm` then silence into the turn in real time; an early
 * endpoint finishes it at once (as voice.ts does), else it is finished after `vadMs` of silence.
 */
async function say(turn: OfflineTurn, pcm: Int16Array, vadMs = 700): Promise<'early' | 'vad'> {
  let finished: Promise<void> | undefined
  turn.onEndpoint = () => {
    finished = turn.finish(Date.now())
    return true
  }
  const all = new Int16Array(pcm.length + vadMs * 16)
  all.set(pcm)
  const t0 = performance.now()
  for (let i = 0, off = 0; off < all.length && !finished; i++, off += 320) {
    turn.write(all.slice(off, off + 320))
    const wait = t0 + (i + 1) * 20 - performance.now()
    if (wait > 0) await new Promise((r) => setTimeout(r, wait))
  }
  if (finished) {
    await finished
    return 'early'
  }
  await turn.finish(Date.now())
  return 'vad'
}

describe('OfflineMode early endpoint', () => {
  beforeAll(async () => {
    srv = await serveBundles(b)
  })
  afterAll(() => srv?.close())

  it('answers at once, journals only after the resume window', async () => {
    const m = await mode()
    const turn = m.begin(11, { resumable: true })!
    expect(await say(turn, new Int16Array([...silence(300), ...speech('turn on the kitchen light')]))).toBe('early')
    expect(played).toContain(11)
    expect(m.pending()).toHaveLength(0)
    await new Promise((r) => setTimeout(r, RESUME_MS + 200))
    expect(m.pending().map((e) => e.transcript)).toEqual(['turn on the kitchen light'])
    m.close()
  })

  it('speech resuming within the window withdraws the early answer and is heard with it', async () => {
    const m = await mode()
    const first = m.begin(21, { resumable: true })!
    expect(await say(first, new Int16Array([...silence(300), ...speech('what day is it')]))).toBe('early')
    // "… today", 200 ms later: a new turn opened by speech (the listener's barge-in).
    const second = m.begin(22, { resumable: true })!
    await say(second, new Int16Array([...silence(200), ...speech('today')]))
    await new Promise((r) => setTimeout(r, RESUME_MS + 200))
    expect(m.pending().map((e) => e.transcript)).toEqual(['what day is it today'])
    m.close()
  })

  it('a turn that cannot be a continuation (wake word, push-to-talk) commits the early answer first', async () => {
    const m = await mode()
    const first = m.begin(31, { resumable: true })!
    expect(await say(first, new Int16Array([...silence(300), ...speech('what time is it')]))).toBe('early')
    const second = m.begin(32, { resumable: false })!
    await say(second, new Int16Array([...silence(300), ...speech('stop')]))
    await new Promise((r) => setTimeout(r, RESUME_MS + 200))
    expect(m.pending().map((e) => e.transcript)).toEqual(['what time is it', 'stop'])
    m.close()
  })

  it('"volume down" answered offline changes the volume, as the hub\'s event would online', async () => {
    const events: unknown[] = []
    const m = await mode({ endpoint: { silenceMs: 0 }, onReplyEvent: (e) => events.push(e) })
    await say(m.begin(51, { resumable: true })!, new Int16Array([...silence(300), ...speech('volume down')]))
    expect(m.pending().map((e) => e.transcript)).toEqual(['volume down'])
    expect(events).toEqual([{ type: 'volume', change: 'down' }])
    m.close()
  })

  it('with silenceMs 0 every turn waits for the listener', async () => {
    const m = await mode({ endpoint: { silenceMs: 0 } })
    const turn = m.begin(41, { resumable: true })!
    expect(await say(turn, new Int16Array([...silence(300), ...speech('what time is it')]))).toBe('vad')
    expect(m.pending().map((e) => e.transcript)).toEqual(['what time is it'])
    m.close()
  })
})

// Issue #12: offline, "stop" cancelled every timer while on the hub it only stopped playback.
// Now both sides mean the same: "stop" stops what is playing, "cancel the timer" cancels them.
describe('OfflineMode timers keep their word', () => {
  const tb = makeTestBundle({
    version: 'timers',
    replies: [
      { phrase: 'set a timer for five minutes', skill: 'timer', text: 'Timer set for five minutes.', clips: ['timer-5.pcm'], timerMs: 300_000 },
      { phrase: 'cancel the timer', skill: 'timer_cancel', text: 'Timer cancelled.', clips: ['timer-cancelled.pcm'], event: { type: 'timer_cancel' } },
      { phrase: 'stop', skill: 'stop', text: '', clips: [], stop: true },
    ],
  })
  let tsrv: BundleServer
  beforeAll(async () => {
    tsrv = await serveBundles(tb)
  })
  afterAll(() => tsrv?.close())

  it('"stop" leaves a timer running; "cancel the timer" cancels it', async () => {
    const m = new OfflineMode({
      dir: path.join(root, `t${n++}`), nodeId: 'kitchen', hubHttpUrl: tsrv.url, log,
      client: { publish: async () => {} } as unknown as MeshClient,
      state: { state: 'offline', addRecoveryTask: () => {} } as unknown as NodeStateMachine,
      voice: { play: () => undefined } as unknown as VoiceLoop,
      endpoint: { silenceMs: 0 },
    })
    await m.start()
    await m.onManifest(announcementOf(tb))
    const timers = (m as unknown as { timers: { list(): { label: string }[] } }).timers
    const turn = async (id: number, text: string) => say(m.begin(id)!, new Int16Array([...silence(300), ...speech(text)]))
    await turn(61, 'set a timer for five minutes')
    expect(timers.list().map((t) => t.label)).toEqual(['Timer set for five minutes.'])
    await turn(62, 'stop')
    expect(timers.list()).toHaveLength(1)
    await turn(63, 'cancel the timer')
    expect(timers.list()).toEqual([])
    expect(m.pending().map((e) => e.transcript)).toEqual(['set a timer for five minutes', 'stop', 'cancel the timer'])
    m.close()
  })
})
