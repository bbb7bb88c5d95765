// The node agent as features under a thin root, on real processes: a feature that fails at
// start (a microphone that cannot open, an offline folder that cannot be made) is shown on
// /healthz and /readyz while status, heartbeat, presence and the rest keep working; the hub's
// nodes/{id}/config (published retained, as the hub does) and volume events apply without a
// restart, and a restart without the hub keeps them.
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { MqttClient } from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'
import { AudioFlags, decodeAudioFrame } from '@mirrormesh/broker'
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

type Mesh = Awaited<ReturnType<typeof createMesh>>

/** Heartbeats of node `hall`, as the hub or a dashboard sees them. */
async function watchHeartbeats(mesh: Mesh): Promise<Array<{ seq: number; room?: string | null; mode: string }>> {
  const seen: Array<{ seq: number; room?: string | null; mode: string }> = []
  const c = await mesh.client('dash')
  clients.push(c)
  c.on('message', (_t, payload) => seen.push(JSON.parse(payload.toString())))
  await c.subscribeAsync('mirrormesh/nodes/hall/heartbeat', { qos: 0 })
  return seen
}

/** The mirror screen's state as the page gets it (Server-Sent Events from the agent). */
async function watchScreen(port: number): Promise<{ last: () => Record<string, unknown> }> {
  const ac = new AbortController()
  const res = await fetch(`http://127.0.0.1:${port}/events`, { signal: ac.signal })
  let last: Record<string, unknown> = {}
  let buf = ''
  const reader = res.body!.getReader()
  void (async () => {
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }))
      if (done) return
      buf += new TextDecoder().decode(value)
      const parts = buf.split('\n\n')
      buf = parts.pop()!
      for (const p of parts) if (p.startsWith('data: ')) last = JSON.parse(p.slice(6)) as Record<string, unknown>
    }
  })()
  closers.push(() => ac.abort())
  return { last: () => last }
}

const get = async (port: number, path: string) => {
  const res = await fetch(`http://127.0.0.1:${port}${path}`)
  return { status: res.status, body: (await res.json()) as { features: Array<{ name: string; reason?: string }> } }
}

describe('a feature that fails at start', () => {
  it('a microphone that cannot open: voice and offline are shown failed with the reason; status, heartbeat, presence and hub watch carry on', async () => {
    const mesh = await createMesh('embedded')
    const heartbeats = await watchHeartbeats(mesh)
    const dir = await tempDir('mm-node-')
    const agent = await startAgent({
      nodeId: 'hall', mqttUrl: mesh.url, password: mesh.passwords.hall,
      env: { AUDIO_SOURCE: 'file', AUDIO_FILE: join(dir, 'no-such-mic.wav'), AUDIO_SINK: 'none', MIRRORMESH_STATE_DIR: dir },
    })
    await agent.waitState('online')
    const health = await agent.health()
    const features = Object.fromEntries(health.features.map((f: { name: string }) => [f.name, f]))
    expect(features.voice).toMatchObject({ state: 'failed', reason: expect.stringMatching(/^AUDIO_FILE .*no-such-mic\.wav: ENOENT/) })
    expect(features.offline).toMatchObject({ state: 'failed', reason: expect.stringMatching(/needs the voice loop/) })
    for (const name of ['mqtt', 'hub-watch', 'heartbeat', 'inputs', 'http', 'screen', 'config']) expect(features[name]).toEqual({ name, state: 'running' })
    expect(agent.out.text).toContain('feature failed to start; the others keep running')

    // The node is alive to the mesh: retained status, heartbeats, the hub's registry.
    expect(await mesh.sub('mirrormesh/nodes/hall/status')).toBe('online')
    const from = heartbeats.length
    await waitFor(() => heartbeats.length >= from + 2, { timeoutMs: 5000, what: 'two more heartbeats' })
    expect(heartbeats.at(-1)!.seq).toBeGreaterThan(heartbeats.at(-2)!.seq)
    expect(heartbeats.at(-1)!.mode).toBe('online')
    await mesh.waitNode('hall', 'online')

    // Not ready, and it says why; push-to-talk refuses with the reason; presence still works.
    const ready = await get(agent.healthPort, '/readyz')
    expect(ready.status).toBe(503)
    expect(ready.body.features.find((f) => f.name === 'voice')?.reason).toMatch(/ENOENT/)
    const ptt = await fetch(`http://127.0.0.1:${agent.healthPort}/api/ptt`, { method: 'POST' })
    expect(ptt.status).toBe(409)
    expect(((await ptt.json()) as { message: string }).message).toMatch(/^the voice feature is failed: AUDIO_FILE .*ENOENT/)
    await fetch(`http://127.0.0.1:${agent.healthPort}/api/presence`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"present":true}' })
    await waitFor(async () => (await mesh.sub('mirrormesh/nodes/hall/presence', { seconds: 1 }))?.includes('"present":true'), { timeoutMs: 5000, what: 'retained presence from HTTP' })
  })

  it('an offline folder that cannot be made: offline is failed, the voice loop still streams a push-to-talk turn', async () => {
    const mesh = await createMesh('embedded')
    const dir = await tempDir('mm-node-')
    await writeFile(join(dir, 'offline'), 'a file where the offline folder should be')
    const { agent, mic } = await startMicAgent(mesh, 'hall', dir)
    closers.push(() => mic.stop())
    await agent.waitState('online')
    const features = (await agent.health()).features as Array<{ name: string; state: string; reason?: string }>
    expect(features.find((f) => f.name === 'offline')).toMatchObject({ state: 'failed', reason: expect.stringMatching(/EEXIST|ENOTDIR/) })
    expect(features.find((f) => f.name === 'voice')).toEqual({ name: 'voice', state: 'running' })

    const starts: number[] = []
    const c = await mesh.client('dash')
    clients.push(c)
    c.on('message', (_t, payload) => {
      const f = decodeAudioFrame(payload)
      if (typeof f !== 'string' && f.flags & AudioFlags.start) starts.push(f.turnId)
    })
    await c.subscribeAsync('mirrormesh/nodes/hall/audio/in', { qos: 0 })
    const res = await fetch(`http://127.0.0.1:${agent.healthPort}/api/ptt`, { method: 'POST' })
    expect(res.status).toBe(200)
    const { turnId } = (await res.json()) as { turnId: number }
    await waitFor(() => starts.includes(turnId), { timeoutMs: 3000, what: 'audio/in start frame of the push-to-talk turn' })
  })
})

describe('nodes/{id}/config from the hub', () => {
  it('room, name and volume apply without a restart; volume events change the same volume; a restart without the hub keeps them', async () => {
    const mesh = await createMesh('embedded')
    const heartbeats = await watchHeartbeats(mesh)
    const dir = await tempDir('mm-node-')
    const opts = { nodeId: 'hall', mqttUrl: mesh.url, password: mesh.passwords.hall, env: { ROOM: 'hallway', MIRRORMESH_STATE_DIR: dir } }
    const agent = await startAgent(opts)
    await agent.waitState('online')
    const screen = await watchScreen(agent.healthPort)
    await waitFor(() => heartbeats.some((h) => h.room === 'hallway'), { timeoutMs: 5000, what: 'heartbeat with the room from ROOM' })
    expect((await agent.health()).config).toEqual({ room: 'hallway', name: null, volume: 100, wakeWordPending: false })

    // As the hub publishes it: retained, QoS 1, with the hub's credential.
    const hub = await mesh.client('ops')
    clients.push(hub)
    await hub.publishAsync('mirrormesh/nodes/hall/config', JSON.stringify({ v: 1, ts: Date.now(), room: 'kitchen', name: 'Magic Mirror', volume: 30 }), { qos: 1, retain: true })
    await waitFor(() => heartbeats.at(-1)?.room === 'kitchen', { timeoutMs: 3000, what: 'heartbeat room from the hub config' })
    await waitFor(() => screen.last().room === 'kitchen' && screen.last().name === 'Magic Mirror', { timeoutMs: 3000, what: 'screen shows the new room and name' })
    expect((await agent.health()).config).toMatchObject({ room: 'kitchen', name: 'Magic Mirror', volume: 30 })

    // "Turn it down": the volume skill's event.
    await hub.publishAsync('mirrormesh/nodes/hall/events', JSON.stringify({ v: 1, ts: Date.now(), type: 'volume', change: 'down' }), { qos: 1 })
    await waitFor(async () => (await agent.health()).config.volume === 20, { timeoutMs: 3000, what: 'volume 20 after "down"' })
    expect(agent.out.text.match(/node agent started/g)).toHaveLength(1) // no restart happened

    // The hub goes away and the mirror restarts: it keeps its room, name and volume.
    mesh.hub.kill('SIGKILL')
    await mesh.hub.exited
    agent.kill('SIGTERM')
    expect((await agent.exited).code).toBe(0) // a clean stop, with a screen still connected
    const again = await startAgent(opts)
    const health = await again.health()
    expect(health.state).toBe('offline')
    expect(health.config).toMatchObject({ room: 'kitchen', name: 'Magic Mirror', volume: 20 })
    const screen2 = await watchScreen(again.healthPort)
    await waitFor(() => screen2.last().room === 'kitchen', { timeoutMs: 3000, what: 'screen room after a restart without the hub' })
  }, 60_000)
})
