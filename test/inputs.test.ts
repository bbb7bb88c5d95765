// Push-to-talk and presence inputs on a real node agent: over MQTT (`nodes/{id}/set`, sent
// with Mosquitto's own mosquitto_pub by an observer credential, as Node-RED or Home
// Assistant would), over HTTP, and from GPIO edges through gpiomon. A turn opening is seen
// where the hub sees it: `audio/in` frames with the start flag; presence on the retained
// `presence` topic.
import { chmod, writeFile, appendFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { MqttClient } from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'
import { AudioFlags, decodeAudioFrame } from '@mirrormesh/broker'
import { killAll, sleep, startAgent, tempDir, waitFor } from './support/harness.js'
import { brokerKinds, createMesh, metricValue } from './support/mesh.js'
import { liveMic, synth } from './support/voice.js'
import { makeTinyKws } from './support/tiny-kws.js'

interface Seen { flags: number; turnId: number; at: number }

let clients: MqttClient[] = []
const mics: Array<{ stop(): Promise<void> }> = []
afterEach(async () => {
  await Promise.all(mics.splice(0).map((m) => m.stop()))
  await Promise.all(clients.map((c) => c.endAsync().catch(() => undefined)))
  clients = []
  await killAll()
})

/** A node with a live microphone on stdin: silence in real time, as in a quiet room, until `say()`. */
async function quietNode(mesh: Awaited<ReturnType<typeof createMesh>>, env: Record<string, string> = {}) {
  const dir = await tempDir('mm-node-')
  const agent = await startAgent({
    nodeId: 'hall', mqttUrl: mesh.url, password: mesh.passwords.hall, stdin: true,
    env: { AUDIO_SOURCE: 'stdin', AUDIO_SINK: 'none', MIRRORMESH_STATE_DIR: dir, ...env },
  })
  const mic = liveMic(agent.proc.stdin!)
  mics.push(mic)
  await agent.waitState('online')
  return { agent, dir, say: mic.say }
}

/** Watch the node's audio/in as the hub would: start/end flags of each turn. */
async function watchAudioIn(mesh: Awaited<ReturnType<typeof createMesh>>): Promise<Seen[]> {
  const seen: Seen[] = []
  const c = await mesh.client('dash')
  clients.push(c)
  c.on('message', (_t, payload) => {
    const f = decodeAudioFrame(payload)
    if (typeof f !== 'string' && f.flags & (AudioFlags.start | AudioFlags.end)) seen.push({ flags: f.flags, turnId: f.turnId, at: Date.now() })
  })
  await c.subscribeAsync('mirrormesh/nodes/hall/audio/in', { qos: 0 })
  return seen
}

const starts = (seen: Seen[]) => seen.filter((s) => s.flags & AudioFlags.start)
const ends = (seen: Seen[]) => seen.filter((s) => s.flags & AudioFlags.end)

describe.each(brokerKinds)('push-to-talk and presence over MQTT (%s broker)', (kind) => {
  it('{"ptt":true} opens a turn at once, {"ptt":false} ends it; {"present":…} reaches the retained presence topic', async () => {
    const mesh = await createMesh(kind)
    const { agent } = await quietNode(mesh)
    const seen = await watchAudioIn(mesh)

    // Nothing is said: no turn opens by itself.
    await sleep(500)
    expect(seen).toEqual([])

    const pressedAt = Date.now()
    expect((await mesh.pub('mirrormesh/nodes/hall/set', '{"ptt":true}', { username: 'dash' })).code).toBe(0)
    await waitFor(() => starts(seen).length === 1, { timeoutMs: 3000, what: 'audio/in start frame after {"ptt":true}' })
    expect(starts(seen)[0]!.at - pressedAt).toBeLessThan(1000)
    await sleep(300)
    expect(ends(seen)).toEqual([]) // held: silence does not end it yet
    expect((await mesh.pub('mirrormesh/nodes/hall/set', JSON.stringify({ v: 1, ts: Date.now(), ptt: false }), { username: 'dash' })).code).toBe(0)
    await waitFor(() => ends(seen).length === 1, { timeoutMs: 3000, what: 'audio/in end frame after {"ptt":false}' })
    expect(ends(seen)[0]!.turnId).toBe(starts(seen)[0]!.turnId)
    expect(agent.out.text).toContain('"source":"mqtt"')

    expect((await mesh.pub('mirrormesh/nodes/hall/set', '{"present":true}', { username: 'dash' })).code).toBe(0)
    await waitFor(async () => JSON.parse((await mesh.sub('mirrormesh/nodes/hall/presence', { seconds: 1 })) ?? '{}').present === true, { timeoutMs: 5000, what: 'retained presence true' })
    const presence = JSON.parse((await mesh.sub('mirrormesh/nodes/hall/presence'))!)
    expect(presence).toMatchObject({ present: true, source: 'mqtt' })
  })

  it('drops a stale or malformed command with a log line and a metric, and keeps running', async () => {
    const mesh = await createMesh(kind)
    const { agent } = await quietNode(mesh)
    const seen = await watchAudioIn(mesh)

    // A "start listening" delivered a minute late must not open the microphone.
    await mesh.pub('mirrormesh/nodes/hall/set', JSON.stringify({ ptt: true, ts: Date.now() - 60_000 }), { username: 'dash' })
    await mesh.pub('mirrormesh/nodes/hall/set', '{"ptt":"yes"}', { username: 'dash' })
    await mesh.pub('mirrormesh/nodes/hall/set', 'push', { username: 'dash' })
    await waitFor(() => agent.out.text.includes('stale command dropped'), { timeoutMs: 3000, what: 'stale command log line' })
    const metrics = async () => (await fetch(`http://127.0.0.1:${agent.healthPort}/metrics`)).text()
    await waitFor(async () => metricValue(await metrics(), 'mirrormesh_payload_rejected_total', { reason: 'schema' }) >= 1 && metricValue(await metrics(), 'mirrormesh_payload_rejected_total', { reason: 'not_json' }) >= 1, { timeoutMs: 3000, what: 'rejections counted' })
    await sleep(500)
    expect(seen).toEqual([])

    // Still works afterwards.
    await mesh.pub('mirrormesh/nodes/hall/set', '{"ptt":true}', { username: 'dash' })
    await waitFor(() => starts(seen).length === 1, { timeoutMs: 3000, what: 'start frame after a good command' })
    expect((await agent.health()).state).toBe('online')
  })
})

describe('push-to-talk over HTTP', () => {
  it('POST /api/ptt opens a turn; {"pressed":false} ends it; a bad body is a 400', async () => {
    const mesh = await createMesh('embedded')
    const { agent } = await quietNode(mesh)
    const seen = await watchAudioIn(mesh)
    const post = (body?: unknown) => fetch(`http://127.0.0.1:${agent.healthPort}/api/ptt`, body === undefined ? { method: 'POST' } : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    const res = await post()
    expect(res.status).toBe(200)
    const { turnId } = (await res.json()) as { turnId: number }
    await waitFor(() => starts(seen).some((s) => s.turnId === turnId), { timeoutMs: 3000, what: 'start frame of the HTTP push-to-talk turn' })
    expect((await post({ pressed: 'up' })).status).toBe(400)
    expect((await post({ pressed: false })).status).toBe(200)
    await waitFor(() => ends(seen).some((s) => s.turnId === turnId), { timeoutMs: 3000, what: 'end frame after release' })
  })
})

describe('GPIO push-to-talk button and presence sensor (gpiomon)', () => {
  // No GPIO chip exists on a test machine, so `gpiomon` is a script that prints the edges a
  // libgpiod v1 gpiomon prints for the line it was asked to watch.
  it('a held button talks until release, a tap leaves the end to the VAD; PIR edges set presence', async () => {
    const mesh = await createMesh('embedded')
    const dir = await tempDir('mm-gpio-')
    const gpiomon = join(dir, 'gpiomon')
    await writeFile(gpiomon, `#!/bin/sh\n[ "$1" = --version ] && { echo "gpiomon (libgpiod) v1.6.3"; exit 0; }\n# args: --num-events=0 CHIP LINE\ntouch "${dir}/$2-$3"\nexec tail -n 0 -f "${dir}/$2-$3"\n`)
    await chmod(gpiomon, 0o755)
    const edge = (line: number, kind: 'RISING' | 'FALLING') => appendFile(join(dir, `gpiochip0-${line}`), `event: ${kind} EDGE offset: ${line} timestamp: [${Date.now() / 1000}]\n`)
    const { agent } = await quietNode(mesh, { GPIOMON: gpiomon, PTT_GPIO: 'gpiochip0:27', PRESENCE_GPIO: 'gpiochip0:17', VAD_END_SILENCE_MS: '300' })
    const seen = await watchAudioIn(mesh)
    await waitFor(async () => {
      try { await Promise.all([27, 17].map((l) => import('node:fs/promises').then((f) => f.access(join(dir, `gpiochip0-${l}`))))); return true } catch { return false }
    }, { timeoutMs: 5000, what: 'gpiomon started for both lines' })

    // Held for 1.2 s (button to ground: pressed = falling edge).
    await edge(27, 'FALLING')
    await waitFor(() => starts(seen).length === 1, { timeoutMs: 3000, what: 'start frame on button press' })
    await sleep(1200)
    expect(ends(seen)).toEqual([])
    await edge(27, 'RISING')
    await waitFor(() => ends(seen).length === 1, { timeoutMs: 3000, what: 'end frame on release' })

    // A tap: the turn stays open after release, until no speech is heard (the listener's no-speech timeout).
    await edge(27, 'FALLING')
    await sleep(100)
    await edge(27, 'RISING')
    await waitFor(() => starts(seen).length === 2, { timeoutMs: 3000, what: 'start frame on tap' })
    await sleep(1000)
    expect(ends(seen)).toHaveLength(1)
    await waitFor(() => ends(seen).length === 2, { timeoutMs: 8000, what: 'tap turn ended by the listener' })

    // A 5 ms contact bounce is ignored.
    await edge(27, 'FALLING')
    await edge(27, 'RISING')
    await sleep(500)
    expect(starts(seen)).toHaveLength(2)

    await edge(17, 'RISING')
    await waitFor(async () => (await mesh.sub('mirrormesh/nodes/hall/presence', { seconds: 1 }))?.includes('"present":true'), { timeoutMs: 5000, what: 'presence from the PIR line' })
    expect(JSON.parse((await mesh.sub('mirrormesh/nodes/hall/presence'))!)).toMatchObject({ present: true, source: 'gpiomon:gpiochip0/17' })
    expect(agent.out.text).toContain('"source":"gpio"')
  })
})

describe('sherpa-onnx keyword spotter as the wake word', () => {
  // No trained KWS weights can be fetched here: the model is generated at test time and
  // "hears" its keyword in any loud burst after a pause (test/support/tiny-kws.ts).
  it('loads (after a probe in a child process), ignores a quiet room, and opens a turn when the keyword is heard', async () => {
    const mesh = await createMesh('embedded')
    const models = await tempDir('mm-kws-')
    await makeTinyKws(models)
    const { agent, say } = await quietNode(mesh, { KWS_MODEL_DIR: models, LOG_LEVEL: 'debug' })
    expect((await agent.health()).wakeWord).toEqual({ engine: 'sherpa-kws', state: 'ok' })
    const seen = await watchAudioIn(mesh)
    await sleep(1500)
    expect(seen).toEqual([])

    const spokenAt = Date.now()
    void say(await synth('hey jarvis, what time is it', { padMs: 300 }))
    await waitFor(() => starts(seen).length === 1, { timeoutMs: 5000, what: 'start frame after the keyword' })
    expect(starts(seen)[0]!.at - spokenAt).toBeLessThan(1500)
    const opened = agent.out.text.split('\n').filter((l: string) => l.includes('"trigger":"wake"'))
    expect(opened.length).toBeGreaterThanOrEqual(1)
  })
})

describe('a wake word that will not load', () => {
  it('keeps the agent up on push-to-talk only: speech opens no turn (nothing streams unasked), PTT still does, /healthz says why', async () => {
    const mesh = await createMesh('embedded')
    const models = await tempDir('mm-kws-')
    for (const f of ['encoder.onnx', 'decoder.onnx', 'joiner.onnx']) await writeFile(join(models, f), 'not a model')
    await writeFile(join(models, 'tokens.txt'), '<blk> 0\n')
    await writeFile(join(models, 'keywords.txt'), '▁HI @HI\n')
    const { agent, say } = await quietNode(mesh, { KWS_MODEL_DIR: models })
    const health = await agent.health()
    expect(health.wakeWord).toMatchObject({ engine: 'sherpa-kws', state: 'failed' })
    expect(health.wakeWord.reason).toMatch(/keyword spotter model in .* failed to load/)
    expect(agent.out.text).toContain('listening on push-to-talk only')

    const seen = await watchAudioIn(mesh)
    const speech = await synth('what time is it', { padMs: 300 })
    await say(speech)
    await sleep(1000)
    expect(seen).toEqual([])

    await mesh.pub('mirrormesh/nodes/hall/set', '{"ptt":true}', { username: 'dash' })
    await waitFor(() => starts(seen).length === 1, { timeoutMs: 3000, what: 'start frame on push-to-talk' })
  })
})
