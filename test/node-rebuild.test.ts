// `mirrormesh node rebuild` with a real hub and a real agent process: the node wipes its cache,
// takes its config from the hub, re-registers and fetches the bundle again without its process
// exiting; with --new-identity it comes back under the new id (also after a restart of the
// agent with the old NODE_ID in its env) and the old id is gone everywhere. An offline node
// makes the command fail with a clear message and changes nothing.
import { readFile, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import mqtt, { type MqttClient } from 'mqtt'
import { addNode, cli, killAll, startAgent, startHub, tempDir, waitFor, sleep } from './support/harness.js'

const BASE = 'mirrormesh'
const dirs: string[] = []
afterEach(async () => { await killAll() })
afterAll(async () => { for (const d of dirs) await rm(d, { recursive: true, force: true }) })

const count = (text: string, re: RegExp) => text.split('\n').filter((l) => re.test(l)).length

async function accepted(url: string, id: string, password: string): Promise<boolean> {
  try {
    const c = await mqtt.connectAsync(url, { clientId: `node-${id}/probe`, username: id, password, reconnectPeriod: 0, connectTimeout: 5000 })
    await c.endAsync()
    return true
  } catch {
    return false
  }
}

/** The retained message on `topic` now, or null when the broker keeps none. */
async function retained(c: MqttClient, topic: string): Promise<string | null> {
  const got = new Promise<string>((resolve) => {
    const on = (t: string, p: Buffer, packet: { retain?: boolean }) => { if (t === topic && packet.retain) { c.off('message', on); resolve(p.toString()) } }
    c.on('message', on)
  })
  await c.subscribeAsync(topic, { qos: 1 })
  const r = await Promise.race([got, sleep(1000).then(() => null)])
  await c.unsubscribeAsync(topic)
  return r
}

describe('mirrormesh node rebuild', () => {
  it('rebuilds in place, then moves the node to a new identity that survives a restart; an offline node fails cleanly', { timeout: 240_000 }, async () => {
    const hubDir = await tempDir('mm-rebuild-hub-')
    const agentDir = await tempDir('mm-rebuild-agent-')
    dirs.push(hubDir, agentDir)
    const password = await addNode(hubDir, 'kitchen')
    const dashPassword = await addNode(hubDir, 'dash', 'observer')
    const hub = await startHub({ stateDir: hubDir, env: { BUNDLE_ENABLED: 'true', NODE_STALE_MS: '3000' }, readyPath: '/healthz' })
    const env = { HUB_URL: `http://127.0.0.1:${hub.httpPort}` }
    const put = await hub.http('/api/nodes/kitchen/config', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ room: 'hall', name: 'Hall Mirror', volume: 40 }) })
    expect(put.status).toBe(200)
    const config = put.body.config

    const dash = await mqtt.connectAsync(hub.mqttUrl, { clientId: 'dash-1', username: 'dash', password: dashPassword, reconnectPeriod: 0 })
    let online: string[] = []
    dash.on('message', (t, p) => { if (t === `${BASE}/clients/online` && p.length) online = (JSON.parse(p.toString()).nodes as Array<{ id: string }>).map((n) => n.id) })
    await dash.subscribeAsync(`${BASE}/clients/online`, { qos: 1 })

    const agentEnv = { AUDIO_SOURCE: 'stdin', AUDIO_SINK: 'none', MIRRORMESH_STATE_DIR: agentDir, HUB_HTTP_URL: `http://127.0.0.1:${hub.httpPort}` }
    const agent = await startAgent({ nodeId: 'kitchen', mqttUrl: hub.mqttUrl, password, stdin: true, env: agentEnv })
    expect(agent.out.text).toMatch(/node identity from the environment/)
    await waitFor(async () => (await agent.health()).offline?.bundleVersion, { timeoutMs: 90_000, what: 'bundle on the node' })
    await waitFor(async () => (await agent.health()).config?.name === 'Hall Mirror', { what: 'config from the hub applied' })
    await waitFor(() => online.includes('kitchen'), { what: 'kitchen in clients/online' })
    const bundleVersion = (await agent.health()).offline.bundleVersion
    expect(count(agent.out.text, /bundle \S+ installed/)).toBe(1)
    expect(JSON.parse(await readFile(join(agentDir, 'node-config.json'), 'utf8'))).toMatchObject({ name: 'Hall Mirror' })

    // 1. Rebuild in place: same process, cache wiped and fetched again, registered again.
    const r1 = await cli(['node', 'rebuild', 'kitchen', '--json'], env, { timeoutMs: 60_000 })
    expect(r1.code, r1.stderr).toBe(0)
    expect(JSON.parse(r1.stdout)).toMatchObject({ id: 'kitchen', op: 'rebuild' })
    console.log(`node rebuild: confirmed after ${JSON.parse(r1.stdout).ms} ms`)
    expect(agent.proc.exitCode).toBeNull()
    expect(agent.out.text).toMatch(/rebuild: cache wiped, restarting/)
    expect(agent.out.text).toMatch(/rebuild confirmed to the hub/)
    await waitFor(() => count(agent.out.text, /bundle \S+ installed/) === 2, { timeoutMs: 30_000, what: 'bundle fetched again after the wipe' })
    await waitFor(async () => (await agent.health()).offline?.bundleVersion === bundleVersion, { what: 'the same bundle in use again' })
    await waitFor(async () => (await agent.health()).config?.name === 'Hall Mirror', { what: 'config taken from the hub again' })
    await waitFor(async () => (await hub.node('kitchen'))?.state === 'online', { what: 'kitchen online again' })
    await waitFor(() => online.includes('kitchen'), { what: 'kitchen back in clients/online' })

    // 2. A new identity.
    const r2 = await cli(['node', 'rebuild', 'kitchen', '--new-identity', 'hall-1', '--json'], env, { timeoutMs: 60_000 })
    expect(r2.code, r2.stderr).toBe(0)
    expect(JSON.parse(r2.stdout)).toMatchObject({ id: 'hall-1', previousId: 'kitchen', op: 'identity' })
    console.log(`node rebuild --new-identity: confirmed after ${JSON.parse(r2.stdout).ms} ms`)
    const identity = JSON.parse(await readFile(join(agentDir, 'identity.json'), 'utf8'))
    expect(identity).toMatchObject({ nodeId: 'hall-1', previousId: 'kitchen' })
    expect((await stat(join(agentDir, 'identity.json'))).mode & 0o777).toBe(0o600)
    expect((await agent.health()).nodeId).toBe('hall-1')
    await waitFor(async () => (await hub.node('hall-1'))?.state === 'online', { what: 'hall-1 online' })
    await waitFor(() => online.includes('hall-1') && !online.includes('kitchen'), { what: 'clients/online: hall-1, not kitchen' })
    expect((await hub.http('/api/nodes')).body.nodes.map((n: { id: string }) => n.id)).toEqual(['hall-1'])
    expect((await hub.http('/api/nodes/hall-1/config')).body.config).toEqual(config)
    expect((await hub.http('/api/nodes/kitchen/config')).status).toBe(404)
    expect(await accepted(hub.mqttUrl, 'kitchen', password)).toBe(false)
    expect(await accepted(hub.mqttUrl, 'hall-1', identity.password)).toBe(true)
    for (const t of ['status', 'config', 'presence']) expect(await retained(dash, `${BASE}/nodes/kitchen/${t}`)).toBeNull()
    expect(await retained(dash, `${BASE}/nodes/hall-1/status`)).toBe('online')

    // 3. Restarted with the old NODE_ID/MQTT_PASSWORD in its env, it is still hall-1.
    agent.kill('SIGTERM')
    expect((await agent.exited).code).toBe(0)
    const again = await startAgent({ nodeId: 'kitchen', mqttUrl: hub.mqttUrl, password, stdin: true, env: agentEnv })
    expect(again.out.text).toMatch(/node identity from the state dir/)
    await waitFor(async () => (await again.health()).state === 'online', { timeoutMs: 15_000, what: 'hall-1 back online after a restart' })
    expect((await again.health()).nodeId).toBe('hall-1')

    // 4. Offline node: the command fails with a reason, nothing changes.
    again.kill('SIGTERM')
    await again.exited
    const r3 = await cli(['node', 'rebuild', 'hall-1', '--new-identity', 'hall-2', '--timeout', '2s'], env, { timeoutMs: 30_000 })
    expect(r3.code).toBe(1)
    expect(r3.stderr).toMatch(/node hall-1 did not confirm the identity within 2 s/)
    const list = await cli(['node', 'list', '--json'], { MIRRORMESH_STATE_DIR: hubDir })
    expect(JSON.parse(list.stdout).map((c: { id: string }) => c.id).sort()).toEqual(['dash', 'hall-1'])
    const r4 = await cli(['node', 'rebuild', 'nobody'], env)
    expect(r4.code).toBe(1)
    expect(r4.stderr).toMatch(/no node "nobody"/)
    await dash.endAsync()

    // No password in anything captured (the hub's and agents' logs, command output).
    const captured = [hub.out.text, agent.out.text, again.out.text, r1.stdout, r1.stderr, r2.stdout, r2.stderr, r3.stderr, list.stdout].join('\n')
    for (const secret of [password, identity.password]) expect(captured).not.toContain(secret)
  })
})
