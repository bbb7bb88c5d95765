// The hub as features under a thin root, seen from outside with real processes and real
// clients: retained health/{component} (the runbook's mosquitto_sub check), node config
// pushed over MQTT from the admin API, and a feature that fails at start while the rest of
// the hub keeps serving.
import { execFile } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterEach, describe, expect, it } from 'vitest'
import { CredentialStore } from '@mirrormesh/broker'
import { killAll, startHub, tempDir, waitFor } from './support/harness.js'
import { BASE, createMesh } from './support/mesh.js'

const exec = promisify(execFile)

afterEach(async () => {
  await killAll()
})

/** mosquitto_sub -v: up to `count` messages within `seconds`, as topic → payload lines. */
async function subLines(port: number, user: string, password: string, topic: string, count: number, seconds = 5): Promise<string[]> {
  // A node's credential may only use client ids `node-{id}/…`.
  const clientId = `${user === 'dash' ? 'dash' : `node-${user}`}/sub-${Math.random().toString(36).slice(2, 8)}`
  const args = ['-h', '127.0.0.1', '-p', String(port), '-u', user, '-P', password, '-i', clientId, '-V', 'mqttv311', '-t', topic, '-v', '-C', String(count), '-W', String(seconds)]
  const out = await exec('mosquitto_sub', args).then((r) => r.stdout, (err: { code?: number; stdout?: string }) => {
    if (err.code === 27) return err.stdout ?? '' // -W timeout: what arrived so far
    throw err
  })
  return out.split('\n').filter(Boolean)
}

const parseHealth = (lines: string[]) => Object.fromEntries(lines.map((l) => {
  const [topic, ...rest] = l.split(' ')
  return [topic!.slice(`${BASE}/health/`.length), JSON.parse(rest.join(' ')) as { state: string; reason?: string; v: number; ts: number }]
}))

describe('hub health/{component}', () => {
  it('the runbook check prints the retained health of each component on a running hub', async () => {
    const mesh = await createMesh('embedded')
    const port = mesh.hub.mqttPort
    // The runbook line, verbatim: five messages, each `topic payload`.
    const five = await subLines(port, 'dash', mesh.passwords.dash!, `${BASE}/health/#`, 5)
    expect(five).toHaveLength(5)
    for (const line of five) expect(line).toMatch(new RegExp(`^${BASE}/health/[a-z-]+ \\{.*"state":"(ok|degraded|down)"`))
    const all = parseHealth(await subLines(port, 'dash', mesh.passwords.dash!, `${BASE}/health/#`, 6))
    expect(Object.keys(all).sort()).toEqual(['asr', 'broker', 'llm', 'mqtt', 'tts', 'vad'])
    expect(all.broker!.state).toBe('ok')
    expect(all.mqtt!.state).toBe('ok')
    // No sherpa model in tests: pocketsphinx / espeak answer instead.
    expect(all.asr).toMatchObject({ state: 'degraded', reason: expect.stringMatching(/sherpa: model_missing.*pocketsphinx answers/) })
    expect(all.tts).toMatchObject({ state: 'degraded', reason: expect.stringMatching(/espeak answers/) })
    // No LLM_MODEL: the LLM is down on the dashboard, yet the hub is ready (skills answer).
    expect(all.llm).toMatchObject({ state: 'down', reason: expect.stringMatching(/not_configured/) })
    const ready = await mesh.hub.http('/readyz')
    expect(ready.status).toBe(200)
    expect(ready.body.checks).not.toHaveProperty('llm')
    // A node may read health too (the ACL's nodeReads), e.g. to show it on the mirror.
    expect(parseHealth(await subLines(port, 'kitchen', mesh.passwords.kitchen!, `${BASE}/health/broker`, 1))).toMatchObject({ broker: { state: 'ok' } })
  })

  it('a configured LLM that will not load turns health/llm down and /readyz llm false', async () => {
    const dir = await tempDir()
    const bad = join(dir, 'broken.gguf')
    await writeFile(bad, Buffer.from('GGUF but not really a model'))
    const mesh = await createMesh('embedded', { readyPath: '/healthz', hubEnv: { LLM_MODEL: bad, HEALTH_INTERVAL_MS: '500' } })
    await waitFor(async () => parseHealth(await subLines(mesh.hub.mqttPort, 'dash', mesh.passwords.dash!, `${BASE}/health/llm`, 1, 2)).llm?.state === 'down', { what: 'health/llm down', timeoutMs: 20_000, intervalMs: 200 })
    const ready = await mesh.hub.http('/readyz')
    expect(ready.status).toBe(503)
    expect(ready.body.checks.llm).toBe(false)
  })
})

describe('node config over MQTT', () => {
  it('PUT /api/nodes/:id/config is validated, persisted, and published retained on nodes/{id}/config', async () => {
    const mesh = await createMesh('embedded')
    const put = (id: string, body: unknown) => mesh.hub.http(`/api/nodes/${id}/config`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

    const bad = await put('kitchen', { volume: 140, colour: 'red' })
    expect(bad.status).toBe(400)
    expect(bad.body).toMatchObject({ error: 'bad_config', message: expect.stringMatching(/volume.*100/) })
    expect(bad.body.message).toMatch(/colour/)
    expect((await put('kitchen', {})).status).toBe(400)
    const unknown = await put('garage', { room: 'garage' })
    expect(unknown.status).toBe(404)
    expect(unknown.body).toMatchObject({ error: 'unknown_node', message: expect.stringMatching(/mirrormesh node add garage/) })
    expect((await mesh.hub.http('/api/nodes/kitchen/config')).body).toEqual({ id: 'kitchen', config: {}, updatedAt: null })

    // A subscriber already there sees the update...
    const early = await mesh.client('kitchen')
    const seen: unknown[] = []
    early.on('message', (_t, p) => seen.push(JSON.parse(p.toString())))
    await early.subscribeAsync(`${BASE}/nodes/kitchen/config`, { qos: 1 })
    const ok = await put('kitchen', { room: 'kitchen', volume: 40 })
    expect(ok.status).toBe(200)
    expect(ok.body).toMatchObject({ id: 'kitchen', config: { room: 'kitchen', volume: 40 } })
    await waitFor(() => seen.length > 0, { what: 'the config on nodes/kitchen/config' })
    expect(seen[0]).toMatchObject({ v: 1, room: 'kitchen', volume: 40 })
    await early.endAsync()
    // ...a partial update keeps the rest, and a late subscriber gets it retained.
    expect((await put('kitchen', { name: 'Kitchen mirror', wakeWord: null })).body.config).toEqual({ room: 'kitchen', volume: 40, name: 'Kitchen mirror', wakeWord: null })
    const configOf = async () => {
      const [line] = await subLines(mesh.hub.mqttPort, 'kitchen', mesh.passwords.kitchen!, `${BASE}/nodes/kitchen/config`, 1, 3)
      return line ? JSON.parse(line.slice(line.indexOf(' ') + 1)) as Record<string, unknown> : null
    }
    const late = await configOf()
    expect(late).toMatchObject({ room: 'kitchen', volume: 40, name: 'Kitchen mirror', wakeWord: null })

    // Kept on disk: a hub restarted on a fresh broker database still pushes it on connect.
    mesh.hub.kill('SIGTERM')
    await mesh.hub.exited
    await mesh.restartHub({ env: { ...mesh.hub.env, BROKER_PERSISTENCE: 'false' } })
    expect(await configOf()).toMatchObject({ room: 'kitchen', name: 'Kitchen mirror' })
    expect((await mesh.hub.http('/api/nodes/kitchen/config')).body.config).toMatchObject({ room: 'kitchen', volume: 40 })
  })
})

describe('a feature that fails at start', () => {
  it('is reported on health/{name} and /readyz while MQTT status, heartbeat and /healthz keep working', async () => {
    const stateDir = await tempDir('mm-hub-')
    const store = new CredentialStore(join(stateDir, 'credentials.json'))
    const dash = await store.add('dash', 'observer')
    // The bundle folder is a file: the bundle service cannot build there.
    await writeFile(join(stateDir, 'bundles'), 'not a folder')
    const hub = await startHub({ stateDir, readyPath: '/healthz', env: { BUNDLE_ENABLED: 'true' } })

    const ready = await waitFor(async () => { const r = await hub.http('/readyz'); return r.body.checks?.bundle === false && r.body.reasons?.bundle && r.body.checks.mqttConnected && r }, { what: 'readyz names the bundle' }) // false with no reason while it is still starting
    expect(ready.status).toBe(503)
    expect(ready.body.reasons.bundle).toMatch(/bundles/)
    expect(ready.body.checks).toMatchObject({ broker: true, mqttConnected: true, voice: true, http: true, presence: true })
    expect((await hub.http('/healthz')).status).toBe(200)

    const health = parseHealth(await subLines(hub.mqttPort, 'dash', dash, `${BASE}/health/bundle`, 1))
    expect(health.bundle).toMatchObject({ state: 'down', reason: expect.stringMatching(/bundles/) })
    expect(await subLines(hub.mqttPort, 'dash', dash, `${BASE}/hub/main/status`, 1)).toEqual([`${BASE}/hub/main/status online`])
    const [hb] = await subLines(hub.mqttPort, 'dash', dash, `${BASE}/hub/main/heartbeat`, 1, 5)
    expect(JSON.parse(hb!.slice(hb!.indexOf(' ') + 1))).toMatchObject({ v: 1, sessions: 0 })
    expect(hub.out.text).toMatch(/"feature":"bundle".*feature failed to start/)
  })
})
