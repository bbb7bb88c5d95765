// `mirrormesh backup` / `restore` with real hub processes: a hub with nodes, node config, a
// retained node message, a built offline bundle and a replayed offline turn is backed up while it
// runs, restored into a fresh state dir, and a hub started there serves all of it. Corrupt and
// truncated archives are refused and leave the target as it was.
import { copyFile, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import mqtt from 'mqtt'
import { addNode, cli, killAll, startHub, tempDir, waitFor } from './support/harness.js'

const BASE = 'mirrormesh'
const dirs: string[] = []
const temp = async () => { const d = await tempDir('mm-backup-'); dirs.push(d); return d }

afterEach(async () => { await killAll() })
afterAll(async () => { for (const d of dirs) await rm(d, { recursive: true, force: true }) })

const connectNode = (url: string, id: string, password: string) =>
  mqtt.connectAsync(url, { clientId: `node-${id}`, username: id, password, reconnectPeriod: 0, connectTimeout: 5000 })

/** A listing of every file under `dir` with its bytes, to compare before and after. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (e.isFile()) out[join(e.parentPath, e.name)] = (await readFile(join(e.parentPath, e.name))).toString('base64')
  }
  return out
}

describe('mirrormesh backup / restore', () => {
  it('restores credentials, node config, retained messages, the bundle and offline turns into a fresh state dir', { timeout: 180_000 }, async () => {
    const src = await temp()
    const passwords = { kitchen: await addNode(src, 'kitchen'), hall: await addNode(src, 'hall') }
    const dash = await addNode(src, 'dash', 'observer')
    const hubEnv = { BUNDLE_ENABLED: 'true' }
    const hub = await startHub({ stateDir: src, env: hubEnv, readyPath: '/healthz' })
    await waitFor(async () => (await hub.http('/api/bundle/manifest')).status === 200, { timeoutMs: 90_000, what: 'offline bundle built' })
    const manifest = (await hub.http('/api/bundle/manifest')).body

    const put = await hub.http('/api/nodes/kitchen/config', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ room: 'kitchen', name: 'Kitchen Mirror', volume: 35 }) })
    expect(put.status).toBe(200)
    const config = (await hub.http('/api/nodes/kitchen/config')).body

    const kitchen = await connectNode(hub.mqttUrl, 'kitchen', passwords.kitchen)
    const presence = JSON.stringify({ present: true, since: Date.now(), source: 'backup-test' })
    await kitchen.publishAsync(`${BASE}/nodes/kitchen/presence`, presence, { qos: 1, retain: true })
    await kitchen.publishAsync(`${BASE}/nodes/kitchen/request/replay`, JSON.stringify({ v: 1, ts: Date.now(), transaction: 't1', turns: [{ id: 'turn-1', at: Date.now() - 60_000, transcript: 'what time is it', reply: "It's noon" }] }), { qos: 1 })
    await waitFor(async () => (await hub.http('/api/offline-turns')).body.turns?.length === 1, { what: 'offline turn journaled' })
    await kitchen.endAsync()

    // Backup of the running hub: retained messages come from its API, the rest from disk.
    const archive = join(await temp(), 'hub.tar.gz')
    let t0 = Date.now()
    const b = await cli(['backup', archive, '--json'], { MIRRORMESH_STATE_DIR: src })
    const backupMs = Date.now() - t0
    expect(b.code, b.stderr).toBe(0)
    const summary = JSON.parse(b.stdout)
    expect(summary).toMatchObject({ hubWasRunning: true })
    expect(summary.retained).toBeGreaterThan(0)
    expect((await stat(archive)).mode & 0o777).toBe(0o600)

    hub.kill('SIGTERM')
    await hub.exited
    // A stopped hub's LevelDB is read directly and gives the same retained messages.
    const offline = join(await temp(), 'stopped.tar.gz')
    const b2 = await cli(['backup', offline, '--json'], { MIRRORMESH_STATE_DIR: src })
    expect(b2.code, b2.stderr).toBe(0)
    expect(JSON.parse(b2.stdout)).toMatchObject({ hubWasRunning: false })

    const fresh = join(await temp(), 'state')
    t0 = Date.now()
    const r = await cli(['restore', archive, '--state-dir', fresh, '--json'])
    const restoreMs = Date.now() - t0
    expect(r.code, r.stderr).toBe(0)
    console.log(`backup of a running hub: ${summary.files} files, ${summary.bytes} bytes, ${summary.retained} retained -> ${(await stat(archive)).size} bytes archive in ${backupMs} ms; restore ${restoreMs} ms (CLI start included)`)
    expect(JSON.parse(r.stdout)).toMatchObject({ stateDir: fresh, previous: null })

    const restored = await startHub({ stateDir: fresh, env: hubEnv, readyPath: '/healthz' })
    for (const [id, password] of Object.entries(passwords)) {
      const c = await connectNode(restored.mqttUrl, id, password)
      expect(c.connected).toBe(true)
      await c.endAsync()
    }
    expect((await restored.http('/api/nodes/kitchen/config')).body).toEqual(config)
    // A dashboard (observer credential, restored too) subscribing after the restore gets the retained message.
    const sub = await mqtt.connectAsync(restored.mqttUrl, { clientId: 'dash-1', username: 'dash', password: dash, reconnectPeriod: 0 })
    const got = new Promise<string>((resolve) => sub.on('message', (topic, payload, packet) => { if (topic.endsWith('/nodes/kitchen/presence') && packet.retain) resolve(payload.toString()) }))
    await sub.subscribeAsync(`${BASE}/nodes/kitchen/presence`, { qos: 1 })
    expect(await Promise.race([got, new Promise((r) => setTimeout(() => r('(no retained message)'), 5000))])).toBe(presence)
    await sub.endAsync()
    await waitFor(async () => (await restored.http('/api/bundle/manifest')).status === 200, { timeoutMs: 90_000, what: 'restored bundle served' })
    expect((await restored.http('/api/bundle/manifest')).body).toEqual(manifest)
    expect((await restored.http('/api/offline-turns')).body.turns).toMatchObject([{ nodeId: 'kitchen', transcript: 'what time is it' }])

    // Refused while a hub runs on the target.
    const busy = await cli(['restore', archive, '--state-dir', fresh])
    expect(busy.code).not.toBe(0)
    expect(busy.stderr).toMatch(/hub \(pid \d+\) is running/)
  })

  it('refuses a flipped byte and a truncated archive, and leaves the target untouched', { timeout: 60_000 }, async () => {
    const src = await temp()
    await addNode(src, 'kitchen')
    await writeFile(join(src, 'node-config.json'), JSON.stringify({ version: 1, nodes: {} }))
    const archive = join(await temp(), 'good.tar.gz')
    const b = await cli(['backup', archive], { MIRRORMESH_STATE_DIR: src })
    expect(b.code, b.stderr).toBe(0)
    expect(b.stdout).toMatch(/0600/)

    const target = await temp()
    await writeFile(join(target, 'credentials.json'), '{"version":1,"users":{}}\n')
    await writeFile(join(target, 'keep.txt'), 'untouched')
    const before = await snapshot(target)
    const siblings = async () => (await readdir(join(target, '..'))).filter((n) => n.startsWith(`.${target.split('/').at(-1)}`))

    const bytes = await readFile(archive)
    const flipped = join(await temp(), 'flipped.tar.gz')
    const copy = Buffer.from(bytes)
    copy[Math.floor(copy.length / 2)]! ^= 0x01
    await writeFile(flipped, copy)
    const truncated = join(await temp(), 'truncated.tar.gz')
    await copyFile(archive, truncated)
    await truncate(truncated, Math.floor(bytes.length * 0.7))

    for (const bad of [flipped, truncated]) {
      const r = await cli(['restore', bad, '--state-dir', target])
      expect(r.code, bad).not.toBe(0)
      expect(r.stderr).toMatch(/corrupt or truncated|failed verification/)
      expect(await snapshot(target)).toEqual(before)
      expect(await siblings()).toEqual([]) // no scratch dir left beside it
    }
    const missing = await cli(['restore', join(target, 'nope.tar.gz'), '--state-dir', target])
    expect(missing.code).not.toBe(0)
    expect(missing.stderr).toMatch(/does not exist/)

    // The good archive restores over it; what a backup does not hold stays.
    const ok = await cli(['restore', archive, '--state-dir', target, '--json'])
    expect(ok.code, ok.stderr).toBe(0)
    const res = JSON.parse(ok.stdout)
    expect(res.previous).toMatch(/pre-restore/)
    dirs.push(res.previous)
    expect(await readFile(join(target, 'keep.txt'), 'utf8')).toBe('untouched')
    expect(await readFile(join(target, 'credentials.json'), 'utf8')).toBe(await readFile(join(src, 'credentials.json'), 'utf8'))
    expect((await stat(join(target, 'credentials.json'))).mode & 0o777).toBe(0o600)
  })
})
