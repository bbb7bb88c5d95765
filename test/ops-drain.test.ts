// `mirrormesh drain --wait` and `mirrormesh restart --safe` against real hub processes: a turn
// in flight when the drain starts is answered in full, a new turn meanwhile hears "busy", the
// hub exits 0 (what systemd's Restart=always restarts), and restart --safe reports whether a
// supervisor (standing in for systemd) brought it back.
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { cli, killAll, removeDir, sleep, waitFor, type HubProc } from './support/harness.js'
import { createMesh, type Mesh } from './support/mesh.js'
import { VoiceNode, synth } from './support/voice.js'

let question: Int16Array
let hello: Int16Array
const dirs: string[] = []

beforeAll(async () => {
  question = await synth('what is the weather like in the kitchen', { padMs: 900 })
  hello = await synth('are you there', { padMs: 300 })
})

afterEach(async () => {
  await killAll()
  for (const d of dirs.splice(0)) await removeDir(d)
})

const hubUrl = (hub: HubProc) => `http://127.0.0.1:${hub.httpPort}`

async function mesh(env: Record<string, string>): Promise<Mesh> {
  const m = await createMesh('embedded', { hubEnv: env })
  dirs.push(m.stateDir)
  return m
}

/** Restart=always in miniature: whenever the hub exits, start it again on the same ports and state. */
function supervise(m: Mesh): { restarts: number; stop(): void } {
  const s = { restarts: 0, stopped: false, stop() { s.stopped = true } }
  const watch = (hub: HubProc) => {
    void hub.exited.then(async () => {
      if (s.stopped) return
      await sleep(200) // RestartSec, shortened
      s.restarts++
      watch(await m.restartHub())
    })
  }
  watch(m.hub)
  return s
}

describe('mirrormesh drain', () => {
  it('--wait: the running turn is answered in full, a new turn hears busy, the hub exits 0 and the command counts the finished turn', async () => {
    // Slow speech: a reply of a few seconds, long enough to be cut if the drain did not wait.
    const m = await mesh({ DRAIN_TIMEOUT_MS: '20000', ESPEAK_SPEED_WPM: '80' })
    const kitchen = new VoiceNode(await m.client('kitchen'), 'kitchen')
    const hall = new VoiceNode(await m.client('hall'), 'hall')
    await kitchen.ready()
    await hall.ready()

    // The turn is in flight from its first frame: start the drain while the node still speaks.
    const saying = kitchen.say(question)
    await waitFor(async () => (await m.hub.http('/api/status')).body.sessions === 1, { what: 'turn admitted' })
    const drain = cli(['drain', '--wait', '--json', '--hub', hubUrl(m.hub), '--timeout-s', '40'], {}, { timeoutMs: 45_000 })
    await waitFor(async () => (await m.hub.http('/readyz')).status === 503, { what: '/readyz 503 while draining' })
    // What `mirrormesh status` shows meanwhile (the command itself: ops-status.test.ts).
    expect((await m.hub.http('/api/status')).body).toMatchObject({ phase: 'draining', ready: false, sessions: 1, drain: { reason: 'api', turnsAtStart: 1 } })

    const late = await hall.say(hello, { realtime: false, endFlag: true })
    expect((await hall.event(late.turnId, 'busy')).type).toBe('busy')

    const { turnId } = await saying
    const { reply, ended, cancelled, pcm } = await kitchen.reply(turnId, 20_000)
    expect(reply).toMatchObject({ kind: 'skill', audio: true })
    expect(ended).toBe(true)
    expect(cancelled).toBe(false)
    expect(pcm.length / 16_000).toBeGreaterThan(1.5) // the whole sentence, at 80 words a minute

    const r = await drain
    expect(r.code).toBe(0)
    const out = JSON.parse(r.stdout)
    expect(out).toMatchObject({ ok: true, exited: true, drain: { turnsAtStart: 1, result: { finished: 1, cutOff: 0 } } })
    expect(await m.hub.exited).toEqual({ code: 0, signal: null })
    expect(m.hub.out.text).toMatch(/"finished":1,"cutOff":0.*"msg":"hub drained"/)
    expect(hall.events.some((e) => e.event.type === 'reply')).toBe(false)
  }, 90_000)

  it('--wait prints what an operator reads; without a hub it says so and exits 1', async () => {
    const m = await mesh({ DRAIN_TIMEOUT_MS: '1000', PIPELINE_ENABLED: 'false' })
    const r = await cli(['drain', '--wait', '--hub', hubUrl(m.hub)])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^drained: 0 of 0 running turns finished; the hub exited\n$/)
    expect(await m.hub.exited).toEqual({ code: 0, signal: null })
    const gone = await cli(['drain', '--hub', hubUrl(m.hub)])
    expect(gone.code).toBe(1)
    expect(gone.stderr).toMatch(/hub not reachable at http:\/\/127\.0\.0\.1:\d+ \(connection refused\)/)
  })
})

describe('mirrormesh restart --safe', () => {
  it('exits 0 once the supervisor has brought a new hub back and it is ready', async () => {
    const m = await mesh({ DRAIN_TIMEOUT_MS: '2000', PIPELINE_ENABLED: 'false' })
    const old = m.hub
    const sup = supervise(m)
    const r = await cli(['restart', '--safe', '--timeout-s', '40', '--json', '--hub', hubUrl(old)], {}, { timeoutMs: 45_000 })
    sup.stop()
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, drain: { turnsAtStart: 0, result: { finished: 0, cutOff: 0 } } })
    expect(await old.exited).toEqual({ code: 0, signal: null })
    expect(sup.restarts).toBe(1)
    expect(m.hub.proc.pid).not.toBe(old.proc.pid)
    expect((await m.hub.http('/readyz')).status).toBe(200)
  }, 60_000)

  it('exits 4 with what to check when nothing brings the hub back, and 1 when the hub is not there to start with', async () => {
    const m = await mesh({ DRAIN_TIMEOUT_MS: '1000', PIPELINE_ENABLED: 'false' })
    const r = await cli(['restart', '--safe', '--timeout-s', '4', '--hub', hubUrl(m.hub)])
    expect(r.code).toBe(4)
    expect(r.stderr).toMatch(/drained \(0 of 0 running turns finished\) and exited, but is not back and ready within 4 s \(last: nothing listening \(connection refused\)\)/)
    expect(r.stderr).toMatch(/systemctl status mirrormesh-hub.*Restart=always/)
    expect(await m.hub.exited).toEqual({ code: 0, signal: null })
    const again = await cli(['restart', '--safe', '--timeout-s', '2', '--hub', hubUrl(m.hub)])
    expect(again.code).toBe(1)
    expect(again.stderr).toMatch(/hub not reachable/)
  })
})
