// `mirrormesh ask` against a real hub with its real default engines (pocketsphinx grammar
// fallback, espeak-ng): one turn end to end as a node over MQTT, and each way it can fail.
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterEach, describe, expect, it } from 'vitest'
import { cli, freePort, killAll, removeDir, tempDir, waitFor } from './support/harness.js'
import { createMesh, type Mesh } from './support/mesh.js'
import { VoiceNode, synth } from './support/voice.js'

const exec = promisify(execFile)
const dirs: string[] = []

afterEach(async () => {
  await killAll()
  for (const d of dirs.splice(0)) await removeDir(d)
})

async function mesh(env: Record<string, string> = {}): Promise<Mesh> {
  const m = await createMesh('embedded', { hubEnv: env })
  dirs.push(m.stateDir)
  return m
}

const ask = (m: Mesh, args: string[], node = 'kitchen') =>
  cli(['ask', ...args, '--node', node, '--url', m.url], { MQTT_PASSWORD: m.passwords[node as 'kitchen'] }, { timeoutMs: 40_000 })

describe('mirrormesh ask', () => {
  it('speaks the words as the node and prints transcript, reply and timings; the node\'s own session stays connected', async () => {
    const m = await mesh()
    // The node's live session (client id node-kitchen, as the agent uses): ask must not take it over.
    const live = await m.client('kitchen', { clientId: 'node-kitchen' })
    let kicked = false
    live.on('close', () => { kicked = true })

    const r = await ask(m, ['what time is it'])
    expect(r.code, r.stderr).toBe(0)
    const hour = new Date().getHours() % 12 || 12
    expect(r.stdout).toMatch(/^node: +kitchen \(turn \d+\)$/m)
    expect(r.stdout).toMatch(/^heard: +"what time is it"$/m)
    expect(r.stdout).toMatch(new RegExp(`^reply: +"It's ${hour}:\\d{2} (AM|PM)\\." \\(skill, [\\d.]+ s of audio\\)$`, 'm'))
    expect(r.stdout).toMatch(/^timings: +first audio \d+ ms after the last frame sent; total \d+ ms \(speech \d+ ms\)$/m)
    expect(r.stdout).not.toContain(m.passwords.kitchen)

    const j = await ask(m, ['turn on the kitchen light', '--json'])
    expect(j.code).toBe(0)
    const out = JSON.parse(j.stdout)
    expect(out).toMatchObject({ ok: true, exitCode: 0, node: 'kitchen', outcome: 'reply', transcript: 'turn on the kitchen light', reply: 'Turning on the kitchen light.', kind: 'skill' })
    expect(out.ttfaMs).toBeGreaterThanOrEqual(0)
    expect(out.totalMs).toBeGreaterThan(out.speechMs)
    expect(out.audioS).toBeGreaterThan(0.8)
    // The hub counted both as turns of node kitchen.
    expect(await m.metric('mirrormesh_turns_total', { outcome: 'ok' })).toBe(2)
    expect(m.hub.out.text).toContain(`"turnId":${out.turnId},"nodeId":"kitchen"`)
    expect(kicked).toBe(false)
    expect(live.connected).toBe(true)
    live.end(true)
  }, 60_000)

  it('--wav sends a recording (any rate, resampled to 16 kHz)', async () => {
    const m = await mesh()
    const dir = await tempDir()
    dirs.push(dir)
    const wav = join(dir, 'light.wav')
    await exec('espeak-ng', ['-v', 'en-us', '-w', wav, 'turn off the kitchen light']) // 22050 Hz
    const r = await ask(m, ['--wav', wav, '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({ transcript: 'turn off the kitchen light', reply: 'Turning off the kitchen light.' })
    const bad = await ask(m, ['--wav', join(dir, 'missing.wav')])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toMatch(/--wav .*missing\.wav: .*no such file/i)
  }, 60_000)

  it('exits 3 when the hub answers busy, 2 on turn_error, 4 when no reply comes', async () => {
    const m = await mesh({ MAX_CONCURRENT_SESSIONS: '1', QUEUE_MAX: '0', ESPEAK_SPEED_WPM: '80' })
    // The one slot taken by another node's turn, still speaking (its reply is slow).
    const hall = new VoiceNode(await m.client('hall'), 'hall')
    await hall.ready()
    void hall.say(await synth('what is the weather like in the kitchen', { padMs: 300 }))
    await waitFor(async () => (await m.hub.http('/api/status')).body.sessions === 1, { what: 'hall turn admitted' })
    const busy = await ask(m, ['are you there', '--json'])
    expect(busy.code).toBe(3)
    expect(JSON.parse(busy.stdout)).toMatchObject({ ok: false, exitCode: 3, outcome: 'busy' })

    // A long utterance outlives TURN_TIMEOUT_MS: the hub aborts the turn with turn_error.
    const m1 = await mesh({ TURN_TIMEOUT_MS: '1000' })
    const slow = await ask(m1, ['what is the weather like in the kitchen today and tomorrow morning please'])
    expect(slow.code).toBe(2)
    expect(slow.stderr).toMatch(/turn_error: turn_timeout/)

    const m2 = await mesh({ PIPELINE_ENABLED: 'false' })
    const none = await ask(m2, ['are you there', '--timeout-ms', '1500'])
    expect(none.code).toBe(4)
    expect(none.stderr).toMatch(/no complete reply within 1500 ms/)
  }, 90_000)

  it('exits 1 with the reason on a wrong password, an unreachable broker or missing credentials', async () => {
    const m = await mesh({ PIPELINE_ENABLED: 'false' })
    const wrong = await cli(['ask', 'hello', '--node', 'kitchen', '--url', m.url, '--password', 'not-the-password'])
    expect(wrong.code).toBe(1)
    expect(wrong.stderr).toMatch(/cannot connect to mqtt:\/\/127\.0\.0\.1:\d+: refused .*wrong username or password/)
    expect(wrong.stderr).not.toContain('not-the-password')
    const port = await freePort()
    const down = await cli(['ask', 'hello', '--node', 'kitchen', '--url', `mqtt://127.0.0.1:${port}`, '--password', 'x', '--json'])
    expect(down.code).toBe(1)
    expect(JSON.parse(down.stdout)).toMatchObject({ ok: false, error: expect.stringMatching(/ECONNREFUSED/) })
    const nocreds = await cli(['ask', 'hello', '--node', 'kitchen', '--url', m.url])
    expect(nocreds.code).toBe(1)
    expect(nocreds.stderr).toMatch(/credentials needed/)
  })
})
