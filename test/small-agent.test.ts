// Issue #12's "small things", on real processes (hub, agent, broker):
// - a node with AUDIO_SOURCE=none never replayed an offline journal left from an earlier run
//   (offline mode, which held the journal, exists only with a microphone);
// - a normal SIGTERM with AUDIO_SOURCE=stdin logged an error ("Premature close").
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { MqttClient } from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'
import { killAll, startAgent, tempDir, waitFor } from './support/harness.js'
import { createMesh } from './support/mesh.js'
import { startMicAgent } from './support/voice.js'

const clients: MqttClient[] = []
const closers: Array<() => Promise<void> | void> = []
afterEach(async () => {
  await Promise.all(closers.splice(0).map(async (c) => c()))
  await Promise.all(clients.splice(0).map((c) => c.endAsync().catch(() => undefined)))
  await killAll()
})

/** Log lines at error level or above (pino: 50 error, 60 fatal). */
const errorLines = (text: string): string[] => text.split('\n').filter((l) => {
  try { return (JSON.parse(l) as { level?: number }).level! >= 50 } catch { return false }
})

describe('offline journal left from an earlier run', () => {
  it('AUDIO_SOURCE=none: replayed once when the hub is reachable; the late light is recorded, not published', { timeout: 60_000 }, async () => {
    const mesh = await createMesh('embedded')
    const dir = await tempDir('mm-node-')
    // What an earlier run with a microphone left behind (offline/journal.ts's format).
    const at = Date.now() - 10 * 60_000
    const light = { component: 'light', action: 'set', room: 'kitchen', state: 'on' }
    const entries = [
      { id: 'earlier-1', ts: at, at, transcript: 'what time is it', reply: "It's 9:07 PM.", skill: 'time' },
      { id: 'earlier-2', ts: at + 1000, at: at + 1000, transcript: 'turn on the kitchen light', reply: "I can't reach the kitchen light right now.", skill: 'light', action: light },
    ]
    const journalFile = join(dir, 'offline', 'journal', 'offline-journal.jsonl')
    await mkdir(join(dir, 'offline', 'journal'), { recursive: true })
    await writeFile(journalFile, entries.map((e) => JSON.stringify(e)).join('\n') + '\n')
    const actions: string[] = []
    const dash = await mesh.client('dash')
    clients.push(dash)
    dash.on('message', (topic) => { if (topic.startsWith('mirrormesh/actions/')) actions.push(topic) })
    await dash.subscribeAsync('mirrormesh/actions/#', { qos: 1 })

    const env = { AUDIO_SOURCE: 'none', MIRRORMESH_STATE_DIR: dir }
    const agent = await startAgent({ nodeId: 'kitchen', mqttUrl: mesh.url, password: mesh.passwords.kitchen, env })
    await agent.waitState('online')
    await waitFor(async () => (await agent.health()).offline?.journalPending === 0, { timeoutMs: 15_000, what: `journal replayed:\n${agent.out.text}` })
    const turns = (await mesh.hub.http('/api/offline-turns')).body.turns as { nodeId: string; id: string; action?: unknown }[]
    expect(turns.map((t) => `${t.nodeId}/${t.id}`).sort()).toEqual(['kitchen/earlier-1', 'kitchen/earlier-2'])
    expect(turns.find((t) => t.id === 'earlier-2')?.action).toMatchObject(light)
    expect(await readFile(journalFile, 'utf8')).toBe('')

    // A second run (and a hub restart: another recovery) sends nothing again.
    agent.kill('SIGTERM')
    expect(await agent.exited).toEqual({ code: 0, signal: null })
    const again = await startAgent({ nodeId: 'kitchen', mqttUrl: mesh.url, password: mesh.passwords.kitchen, env })
    await again.waitState('online')
    expect(await mesh.metric('mirrormesh_offline_turns_total', { result: 'duplicate' })).toBe(0)
    await mesh.restartHub()
    await again.waitState('online', 15_000)
    expect(await mesh.metric('mirrormesh_offline_turns_total', { result: 'duplicate' })).toBe(0)
    expect((await mesh.hub.http('/api/offline-turns')).body.turns).toHaveLength(2)
    const replayed = (text: string) => text.split('\n').filter((l) => l.includes('"msg":"offline turns replayed"')).length
    expect([replayed(agent.out.text), replayed(again.out.text)]).toEqual([1, 0])
    // Nothing switched late: the broker delivered no action to anyone.
    expect(actions).toEqual([])
    expect(errorLines(agent.out.text + again.out.text)).toEqual([])
  })
})

describe('stopping an agent with a stdin microphone', () => {
  it('SIGTERM: exits 0 and logs no error (it logged "Premature close")', { timeout: 60_000 }, async () => {
    const mesh = await createMesh('embedded')
    const dir = await tempDir('mm-node-')
    const { agent, mic } = await startMicAgent(mesh, 'hall', dir)
    closers.push(() => mic.stop())
    await agent.waitState('online')
    await waitFor(async () => (await agent.health()).features.some((f: { name: string; state: string }) => f.name === 'voice' && f.state === 'running'), { what: 'voice feature running' })
    agent.kill('SIGTERM')
    expect(await agent.exited).toEqual({ code: 0, signal: null })
    expect(agent.out.text).toContain('node agent stopped')
    expect(agent.out.text).not.toContain('Premature close')
    expect(errorLines(agent.out.text)).toEqual([])
  })
})
