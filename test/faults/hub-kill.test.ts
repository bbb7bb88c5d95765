// Hub SIGKILL in the middle of a voice turn, again and again, with a real agent (microphone
// on stdin, speaker to a file, journal on disk) and a real hub building the reply bundle.
// Each time: the node goes offline (kill → offline printed; goal ≤ 1 s), the interrupted turn
// is answered from the node's cache or recorded as failed (never silently lost), a turn
// spoken while the hub is down is answered and journaled, and after the hub returns the
// node is online and the journal replayed: every journaled turn on the hub, none twice.
import { afterEach, describe, expect, it } from 'vitest'
import { killAll, sleep, startAgent, tempDir, waitFor, type AgentProc } from '../support/harness.js'
import { createMesh } from '../support/mesh.js'
import { liveMic, synth } from '../support/voice.js'

const KILLS = Number(process.env.FAULTS_KILLS ?? 5)

afterEach(async () => { await killAll() })

interface LogLine { msg: string; turnId?: number; time?: number; [k: string]: unknown }
const lines = (agent: AgentProc, from = 0): LogLine[] => agent.out.text.slice(from).split('\n').filter((l) => l.startsWith('{')).map((l) => { try { return JSON.parse(l) as LogLine } catch { return { msg: '' } } })

/** What became of `turnId`: answered offline, recorded as failed, or nothing (lost). */
function outcome(agent: AgentProc, from: number, turnId: number): 'cached' | 'failed' | undefined {
  for (const l of lines(agent, from)) {
    // An early offline answer withdrawn because the speaker went on: the turn lives on under the new id.
    if (l.withdrawn === turnId && typeof l.turnId === 'number') turnId = l.turnId
    if (l.turnId !== turnId) continue
    if (l.msg === 'offline turn answered') return 'cached'
    if (/fail|error|interrupted|dropped|lost/i.test(l.msg)) return 'failed'
  }
  return undefined
}

describe('hub SIGKILL mid-turn', () => {
  it(`${KILLS} kills: offline fast, interrupted turn answered or recorded as failed, 0 journal events lost, replayed after recovery`, { timeout: 120_000 + KILLS * 40_000 }, async () => {
    const mesh = await createMesh('embedded', { hubEnv: { BUNDLE_ENABLED: 'true', ROOMS: 'kitchen|hall', VAD_END_SILENCE_MS: '500' } })
    const dir = await tempDir('mm-node-')
    const agent = await startAgent({
      nodeId: 'kitchen', mqttUrl: mesh.url, password: mesh.passwords.kitchen, stdin: true,
      env: { AUDIO_SOURCE: 'stdin', AUDIO_SINK: 'file', AUDIO_SINK_FILE: `${dir}/played.jsonl`, MIRRORMESH_STATE_DIR: dir, HUB_HTTP_URL: `http://127.0.0.1:${mesh.hub.httpPort}`, VAD_END_SILENCE_MS: '500', LOG_LEVEL: 'debug' },
    })
    const mic = liveMic(agent.proc.stdin!)
    const question = await synth('what time is it', { padMs: 1200 })
    const long = await synth('turn on the kitchen light and tell me what time it is', { padMs: 1200 })
    try {
      await waitFor(async () => (await agent.health()).offline?.bundleVersion, { timeoutMs: 90_000, what: 'reply bundle synced to the node' })
      await agent.waitState('online', 15_000)
      const offlineMs: number[] = []
      const onlineMs: number[] = []
      const readyMs: number[] = []
      const outcomes: Array<string> = []
      let journaled = 0
      for (let k = 0; k < KILLS; k++) {
        const mark = agent.out.text.length
        // Speak, and kill the hub while the words are still going out to it.
        const spoken = mic.say(long)
        const started = await waitFor(() => lines(agent, mark).find((l) => l.msg === 'utterance started'), { timeoutMs: 10_000, what: 'utterance started' })
        await sleep(800)
        const killedAt = Date.now()
        mesh.hub.kill('SIGKILL')
        offlineMs.push((await agent.waitState('offline', 10_000)) - killedAt)
        await spoken
        const turnId = started.turnId!
        const got = await waitFor(() => outcome(agent, mark, turnId) ?? (Date.now() - killedAt > 15_000 ? 'lost' : undefined), { timeoutMs: 20_000, what: `outcome of turn ${turnId}` })
        outcomes.push(got)
        await mesh.hub.exited

        // A whole turn while the hub is down: answered from the cache and journaled.
        const before = (await agent.health()).offline?.journalPending ?? 0
        const mark2 = agent.out.text.length
        await mic.say(question)
        await waitFor(() => lines(agent, mark2).some((l) => l.msg === 'offline turn answered'), { timeoutMs: 15_000, what: 'offline turn answered' })
        await waitFor(async () => (await agent.health()).offline?.journalPending > before, { timeoutMs: 10_000, what: 'offline turn journaled' })
        journaled = (await agent.health()).offline.journalPending

        const back = Date.now()
        await mesh.restartHub({ timeoutMs: 60_000 })
        readyMs.push(Date.now() - back)
        onlineMs.push((await agent.waitState('online', 30_000)) - back)
        await waitFor(async () => (await agent.health()).offline?.journalPending === 0, { timeoutMs: 20_000, what: 'journal replayed and trimmed' })
      }
      const turns = (await mesh.hub.http('/api/offline-turns')).body.turns as Array<{ id: string; nodeId: string }>
      const ids = new Set(turns.map((t) => t.id))
      console.log(`hub SIGKILL x${KILLS}: kill → node offline ms ${JSON.stringify(offlineMs)} (max ${Math.max(...offlineMs)}); hub restart → hub ready ms ${JSON.stringify(readyMs)}, node online ms ${JSON.stringify(onlineMs)}; ` +
        `interrupted turns: ${JSON.stringify(outcomes)}; offline turns on the hub ${turns.length} (last journal ${journaled} pending before replay)`)
      // Every offline turn (one per kill, plus any interrupted one answered from the cache) reached the hub once.
      const cached = outcomes.filter((o) => o === 'cached').length
      expect(turns.length).toBe(KILLS + cached)
      expect(ids.size).toBe(turns.length)
      expect(outcomes.filter((o) => o === 'lost')).toEqual([])
    } finally {
      await mic.stop()
    }
  })
})
