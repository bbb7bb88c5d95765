// Runbook situations on the two-host bed, part 2, each done as an operator does it (the
// `mirrormesh` CLI on the hub's host with the hub's env file, over TLS with the shipped env files):
// key rotation with a grace period (real MQTT connects from the mirror's host), drain and upgrade
// (the contract's `v`: a hub one version ahead keeps serving v1 nodes; `restart --safe` with nodes
// connected, which follow without a restart), and restore from backup onto a wiped state dir.
// Every captured output is searched for the secrets in play: none.
import { mkdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { sleep, waitFor } from '../support/harness.js'
import { createBed, describeBed, type Bed } from '../support/twohost.js'

const NODES = ['kitchen', 'hall']
const BASE = 'mirrormesh'
let bed: Bed | undefined
let hubNext = ''
/** Every command's output, for the secret scan at the end (keys rotate's one line aside). */
const outputs: string[] = []
const secrets: Record<string, string> = {}
afterAll(async () => { await bed?.teardown() })

async function online(b: Bed, ids: string[], what: string): Promise<void> {
  await waitFor(async () => {
    const nodes = (await b.http('hub', '/api/nodes')).body.nodes as Array<{ id: string; state: string }>
    return ids.every((id) => nodes.find((n) => n.id === id)?.state === 'online')
  }, { timeoutMs: 60_000, intervalMs: 250, what: `hub lists ${ids.join(', ')} online (${what})` })
  for (const id of ids) await waitFor(async () => (await b.http(id, '/healthz')).body.state === 'online', { timeoutMs: 30_000, intervalMs: 250, what: `${id} online by its /healthz (${what})` })
}

async function op(b: Bed, args: string[], { keep = true } = {}) {
  const r = await b.mirrormesh('hub', args)
  if (keep) outputs.push(r.stdout, r.stderr)
  else outputs.push(r.stderr)
  console.log(`$ mirrormesh ${args.join(' ')}\n${keep ? r.stdout : '(output with the new password, not kept)\n'}${r.stderr}`)
  return r
}

/** A retained payload without its `ts` (the hub announces the same bundle again at each start, with a new ts). */
const sansTs = (text: string | undefined) => { if (text === undefined) return undefined; const { ts: _ts, ...rest } = JSON.parse(text) as Record<string, unknown>; return rest }

const mqtts = (b: Bed) => `mqtts://hub.lan:${b.hub.env.MQTT_TLS_PORT ?? 8883}`
/** A real MQTT connect as `id` from that node's host, over TLS, with its CA. */
const connects = async (b: Bed, host: string, id: string, password: string) => {
  const r = await b.mqttProbe(host, { url: mqtts(b), ca: b.nodes[host]!.env.MQTT_CA, username: id, password, clientId: `node-${id}/probe` })
  if (!r.ok) expect(r.error).toMatch(/Not authorized|Bad username or password/i)
  return r.ok
}
const rejected = async (b: Bed, topic: string): Promise<number> => {
  const text = String((await b.http('hub', '/metrics')).body)
  const line = text.split('\n').find((l) => l.startsWith('mirrormesh_payload_rejected_total{') && l.includes(`topic="${topic}"`))
  return line ? Number(line.split(' ').at(-1)) : 0
}

describeBed('two hosts: runbook operations (key rotation, drain and upgrade, restore from backup)', () => {
  beforeAll(async () => {
    bed = await createBed({
      nodes: NODES, restart: true,
      nodeEnv: { AUDIO_SOURCE: 'stdin', AUDIO_SINK: 'none' },
      why: { AUDIO_SOURCE: 'no microphone on a test machine: the mic is stdin (the offline bundle needs a voice loop)', AUDIO_SINK: 'no speaker on a test machine', MQTT_PASSWORD: 'from `mirrormesh node add`, then `keys rotate`' },
    })
    await bed.startHub()
    for (const id of NODES) secrets[`${id} password`] = await bed.addNode(id)
    // A second hub-role credential: it publishes what a hub one version ahead would.
    const next = await bed.mirrormesh('hub', ['node', 'add', 'hub-next', '--role', 'hub'])
    expect(next.code, next.stderr).toBe(0)
    hubNext = secrets['hub-next password'] = next.stdout.trim().split('\n').at(-1)!
    await Promise.all(NODES.map((id) => bed!.startNode(id, { stdin: true })))
    await online(bed, NODES, 'first start')
  }, 180_000)

  it('key rotation: old password works during the grace, the node restarted with the new one is online, then the old one is refused', { timeout: 120_000 }, async () => {
    const b = bed!
    const old = secrets['kitchen password']!
    const r = await op(b, ['keys', 'rotate', 'kitchen', '--grace', '20s'], { keep: false })
    expect(r.code, r.stderr).toBe(0)
    const fresh = secrets['kitchen new password'] = r.stdout.trim().split('\n').at(-1)!
    expect(fresh).not.toBe(old)
    expect(r.stdout.split(fresh).length - 1, 'the new password printed once').toBe(1)
    expect(r.stdout).not.toContain(old)
    const until = Date.parse(/works until (\S+)/.exec(r.stdout)![1]!)
    console.log(r.stdout.replace(fresh, '<new password>'))

    expect(await connects(b, 'kitchen', 'kitchen', old), 'old password during the grace').toBe(true)
    expect(await connects(b, 'kitchen', 'kitchen', fresh), 'new password').toBe(true)
    // The operator puts the new password in the node's env file and restarts the agent.
    await b.setEnv('kitchen', { MQTT_PASSWORD: fresh })
    await b.stopNode('kitchen')
    await b.startNode('kitchen', { stdin: true })
    await online(b, NODES, 'kitchen with its new password')
    await sleep(Math.max(0, until - Date.now()) + 500)
    expect(await connects(b, 'kitchen', 'kitchen', old), 'old password after the grace').toBe(false)
    expect(await connects(b, 'kitchen', 'kitchen', fresh), 'new password after the grace').toBe(true)
    expect(b.hub.proc!.out.text).toMatch(/mqtt connection refused/)
  })

  it('drain and upgrade: v1 nodes take a newer hub\'s payloads (unknown fields ignored, v:2 refused), and follow `restart --safe` without a restart', { timeout: 150_000 }, async () => {
    const b = bed!
    const hub = `mqtt://127.0.0.1:${b.hub.env.MQTT_PORT ?? 1883}`
    const ts = Date.now()
    // A hub one version ahead: node config with fields a v1 node does not know.
    const ahead = { v: 1, ts, room: 'kitchen', name: 'Kitchen Next', volume: 35, theme: 'dark', brightness: { day: 80, night: 20 } }
    let p = await b.mqttProbe('hub', { url: hub, username: 'hub-next', password: hubNext, clientId: 'hub-next', publish: [{ topic: `${BASE}/nodes/kitchen/config`, payload: JSON.stringify(ahead), retain: true }] })
    expect(p.ok, p.error).toBe(true)
    await waitFor(async () => (await b.http('kitchen', '/healthz')).body.config?.name === 'Kitchen Next', { timeoutMs: 15_000, what: 'kitchen applied the newer hub\'s config' })
    expect((await b.http('kitchen', '/healthz')).body.config).toMatchObject({ name: 'Kitchen Next', volume: 35 })
    expect((await b.http('kitchen', '/healthz')).body.config).not.toHaveProperty('theme')
    // …and one that is not v1 any more: refused by the node, which keeps what it had.
    p = await b.mqttProbe('hub', { url: hub, username: 'hub-next', password: hubNext, clientId: 'hub-next', publish: [{ topic: `${BASE}/nodes/kitchen/config`, payload: JSON.stringify({ ...ahead, v: 2, name: 'Kitchen Two' }), retain: false }] })
    expect(p.ok, p.error).toBe(true)
    const kitchen = b.nodes.kitchen!.proc!
    await waitFor(() => /payload rejected/.test(kitchen.out.text) && kitchen.out.text.includes('nodes/kitchen/config'), { timeoutMs: 15_000, what: 'kitchen refused the v:2 config' })
    expect((await b.http('kitchen', '/healthz')).body.config?.name).toBe('Kitchen Next')

    // A node one version ahead: a heartbeat with a field this hub does not know is taken, not dropped.
    const before = await rejected(b, 'nodeHeartbeat')
    const hb = { v: 1, ts: Date.now(), seq: 1, uptimeS: 1, cpuPct: null, memPct: null, rssMb: 50, temperatureC: null, versions: { agent: '0.2.0' }, mode: 'online', room: 'hall', battery: { pct: 90 } }
    p = await b.mqttProbe('hall', { url: mqtts(b), ca: b.nodes.hall!.env.MQTT_CA, username: 'hall', password: secrets['hall password']!, clientId: 'node-hall/next', publish: [{ topic: `${BASE}/nodes/hall/heartbeat`, payload: JSON.stringify(hb) }, { topic: `${BASE}/nodes/hall/heartbeat`, payload: JSON.stringify({ ...hb, v: 2 }) }] })
    expect(p.ok, p.error).toBe(true)
    await waitFor(async () => await rejected(b, 'nodeHeartbeat') === before + 1, { timeoutMs: 10_000, what: 'the v:2 heartbeat (only) counted as rejected' })
    await online(b, NODES, 'after the newer payloads')

    // The upgrade itself: a safe restart with both nodes connected; they follow by themselves.
    const agents = NODES.map((id) => b.nodes[id]!.proc!)
    const runs = b.hub.runs.length
    const r = await op(b, ['restart', '--safe'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/exited after [\d.]+ s and is back and ready after [\d.]+ s/)
    expect(b.hub.runs.length).toBe(runs + 1)
    await online(b, NODES, 'after restart --safe')
    expect(NODES.map((id) => b.nodes[id]!.proc), 'the agents were not restarted').toEqual(agents)
  })

  it('restore from backup: backup of the running hub, hub stopped, state dir wiped, restore, hub started → every node online with its credential, config and retained messages', { timeout: 180_000 }, async () => {
    const b = bed!
    const put = await b.http('hub', '/api/nodes/hall/config', { method: 'PUT', body: JSON.stringify({ name: 'Hall Mirror', volume: 30 }) }, { timeoutMs: 30_000 })
    expect(put.status, JSON.stringify(put.body)).toBe(200)
    await waitFor(async () => (await b.http('hall', '/healthz')).body.config?.name === 'Hall Mirror', { timeoutMs: 15_000, what: 'config on hall' })
    const manifest = await waitFor(async () => { const r = await b.http('hub', '/api/bundle/manifest'); return r.status === 200 && r.body }, { timeoutMs: 120_000, intervalMs: 500, what: 'hub built the offline bundle' })
    const probe = { url: `mqtt://127.0.0.1:${b.hub.env.MQTT_PORT ?? 1883}`, username: 'hub-next', password: hubNext, clientId: 'hub-next', subscribe: `${BASE}/#` }
    const before = (await b.mqttProbe('hub', probe)).retained

    const file = join(b.hub.root, 'var/backups/hub.tar.gz')
    await mkdir(join(file, '..'), { recursive: true })
    const backup = await op(b, ['backup', file])
    expect(backup.code, backup.stderr).toBe(0)
    expect(backup.stdout).toMatch(/^backed up \d+ files \(\d+ bytes\) and \d+ retained messages \(from the running hub\)/m)

    await b.stopHub()
    await rm(b.hub.stateDir, { recursive: true, force: true })
    await mkdir(b.hub.stateDir, { recursive: true, mode: 0o750 })
    const restore = await op(b, ['restore', file])
    expect(restore.code, restore.stderr).toBe(0)
    expect(restore.stdout).toMatch(/^restored \d+ files and \d+ retained messages/m)
    const since = Date.now()
    await b.startHub()
    expect(b.hub.notify.with('READY', since).length).toBeGreaterThanOrEqual(1)
    await online(b, NODES, 'after the restore')
    // Same bundle (not rebuilt), the node config and the retained messages found again.
    expect((await b.http('hub', '/api/bundle/manifest')).body.version).toBe(manifest.version)
    expect((await b.http('hub', '/api/nodes/hall/config')).body.config).toMatchObject({ name: 'Hall Mirror', volume: 30 })
    const after = (await b.mqttProbe('hub', probe)).retained
    expect(after[`${BASE}/nodes/hall/config`]).toBe(before[`${BASE}/nodes/hall/config`])
    expect(sansTs(after[`${BASE}/cache/manifest`])).toEqual(sansTs(before[`${BASE}/cache/manifest`]))
    expect(JSON.parse(after[`${BASE}/cache/manifest`]!).version).toBe(manifest.version)
    // Credentials: kitchen's rotated one and hall's original both still open the broker.
    expect(await connects(b, 'kitchen', 'kitchen', secrets['kitchen new password']!)).toBe(true)
    expect(await connects(b, 'hall', 'hall', secrets['hall password']!)).toBe(true)

    // No secret in anything captured: process logs, command output.
    secrets['admin token'] = (await readFile(join(b.hub.stateDir, 'admin-token'), 'utf8')).trim()
    const logs = await Promise.all([b.hub, ...Object.values(b.nodes)].flatMap((h) => h.runs.map((s) => readFile(s.log, 'utf8'))))
    const captured = [...outputs, ...logs].join('\n')
    for (const [what, s] of Object.entries(secrets)) expect(captured.includes(s), `${what} in captured output`).toBe(false)
    expect(captured).not.toMatch(/PRIVATE KEY/)
  })
})
