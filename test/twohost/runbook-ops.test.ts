// Runbook situations on the two-host bed, each done the way an operator does it: the `mirrormesh`
// CLI run on the hub's host with the hub's env file, over TLS with the shipped env files.
// Broker failure (the embedded broker dies with the hub and comes back: retained messages kept),
// node rebuild (cache wiped, bundle fetched again across hosts), new identity (the node comes back
// under the new id, also after a restart with its old env file; the old id is gone and refused).
// Every captured output is searched for the secrets in play: none.
import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { waitFor } from '../support/harness.js'
import { createBed, describeBed, type Bed } from '../support/twohost.js'

const NODES = ['kitchen', 'hall']
const BASE = 'mirrormesh'
let bed: Bed | undefined
let observer = ''
/** Every command's output, for the secret scan at the end. */
const outputs: string[] = []
afterAll(async () => { await bed?.teardown() })

async function online(b: Bed, ids: string[], what: string): Promise<void> {
  await waitFor(async () => {
    const nodes = (await b.http('hub', '/api/nodes')).body.nodes as Array<{ id: string; state: string }>
    return ids.every((id) => nodes.find((n) => n.id === id)?.state === 'online')
  }, { timeoutMs: 60_000, intervalMs: 250, what: `hub lists ${ids.join(', ')} online (${what})` })
}

/** Waits for the retained clients/online list to name exactly `ids` (the hub sends it 250 ms after a change). */
async function onlineList(b: Bed, ids: string[], what: string): Promise<void> {
  await waitFor(async () => {
    const list = JSON.parse((await retained(b))[`${BASE}/clients/online`] ?? '{"nodes":[]}') as { nodes: Array<{ id: string }> }
    return JSON.stringify(list.nodes.map((n) => n.id).sort()) === JSON.stringify([...ids].sort())
  }, { timeoutMs: 20_000, intervalMs: 250, what: `clients/online is ${ids.join(', ')} (${what})` })
}

/** A retained payload without its `ts` (the hub announces the same bundle again at each start, with a new ts). */
const sansTs = (text: string | undefined) => { if (text === undefined) return undefined; const { ts: _ts, ...rest } = JSON.parse(text) as Record<string, unknown>; return rest }

/** `mirrormesh …` on the hub's host, output kept for the secret scan. */
async function op(b: Bed, args: string[]) {
  const r = await b.mirrormesh('hub', args)
  outputs.push(r.stdout, r.stderr)
  console.log(`$ mirrormesh ${args.join(' ')}\n${r.stdout}${r.stderr}`)
  return r
}

/** Retained messages under the base topic, as an observer on the hub's host sees them. */
async function retained(b: Bed): Promise<Record<string, string>> {
  const r = await b.mqttProbe('hub', { url: `mqtt://127.0.0.1:${b.hub.env.MQTT_PORT ?? 1883}`, username: 'dash', password: observer, subscribe: `${BASE}/#`, waitMs: 1500 })
  expect(r.ok, r.error).toBe(true)
  return r.retained
}

/** The agent's "bundle <v> installed" log records (JSON lines). */
const installs = (text: string) => text.split('\n').filter((l) => /bundle \S+ installed/.test(l)).map((l) => JSON.parse(l) as { from: string; msg: string })

describeBed('two hosts: runbook operations (broker failure, node rebuild, new identity)', () => {
  beforeAll(async () => {
    bed = await createBed({
      nodes: NODES, restart: true,
      // No microphone on a test machine: without a voice loop a node keeps no offline bundle.
      nodeEnv: { AUDIO_SOURCE: 'stdin', AUDIO_SINK: 'none' },
      why: { AUDIO_SOURCE: 'no microphone on a test machine: the mic is stdin (the offline bundle needs a voice loop)', AUDIO_SINK: 'no speaker on a test machine' },
    })
    await bed.startHub()
    for (const id of NODES) await bed.addNode(id)
    const dash = await bed.mirrormesh('hub', ['node', 'add', 'dash', '--role', 'observer'])
    expect(dash.code, dash.stderr).toBe(0)
    observer = dash.stdout.trim().split('\n').at(-1)!
    await Promise.all(NODES.map((id) => bed!.startNode(id, { stdin: true })))
    await online(bed, NODES, 'first start')
  }, 180_000)

  it('broker failure: the embedded broker dies with the hub; retained status, config and bundle manifest survive; every node back; an incident entry', { timeout: 180_000 }, async () => {
    const b = bed!
    const manifest = await waitFor(async () => { const r = await b.http('hub', '/api/bundle/manifest'); return r.status === 200 && r.body }, { timeoutMs: 120_000, intervalMs: 500, what: 'hub built the offline bundle' })
    for (const id of NODES) await waitFor(async () => (await b.http(id, '/healthz')).body.offline?.bundleVersion === manifest.version, { timeoutMs: 120_000, intervalMs: 500, what: `bundle on ${id}` })
    // (After the bundle: building it keeps a shared 2-core machine busy for a while.)
    const put = await b.http('hub', '/api/nodes/kitchen/config', { method: 'PUT', body: JSON.stringify({ name: 'Kitchen Mirror', volume: 40 }) }, { timeoutMs: 30_000 })
    expect(put.status, JSON.stringify(put.body)).toBe(200)
    await waitFor(async () => (await b.http('kitchen', '/healthz')).body.config?.name === 'Kitchen Mirror', { timeoutMs: 20_000, what: 'config on kitchen' })
    const before = await retained(b)
    const kept = [`${BASE}/nodes/kitchen/status`, `${BASE}/nodes/hall/status`, `${BASE}/nodes/kitchen/config`, `${BASE}/cache/manifest`]
    for (const t of kept) expect(before[t], `retained ${t} before`).toBeDefined()

    // The hub (and its broker) is SIGKILLed; the nodes are down too, so nothing they publish can
    // refill the broker: what is there after the restart came from the broker's own store.
    const first = b.hub.proc!
    await b.killHub()
    await Promise.all(NODES.map((id) => b.stopNode(id, 'SIGKILL')))
    const second = await waitFor(() => b.hub.runs.length === 2 && b.hub.runs[1], { timeoutMs: 30_000, what: 'hub restarted by Restart=always' })
    expect(second.pid).not.toBe(first.pid)
    await b.hub.notify.waitFor('READY', second.startedAt, { timeoutMs: 120_000 })
    const after = await retained(b)
    // Status and config come back byte for byte from the broker's store; the manifest is the same bundle, announced again.
    for (const t of kept.slice(0, 3)) expect(after[t], `retained ${t} after the broker died`).toBe(before[t])
    expect(sansTs(after[`${BASE}/cache/manifest`])).toEqual(sansTs(before[`${BASE}/cache/manifest`]))
    const status = await op(b, ['status'])
    expect(status.stdout).toMatch(/^broker: +embedded, up/m)

    // The incident journal has the unclean restart, for people.
    const entriesDir = join(b.hub.stateDir, 'entries')
    const entry = await waitFor(async () => {
      for (const f of await readdir(entriesDir).catch(() => [] as string[])) {
        const text = await readFile(join(entriesDir, f), 'utf8')
        if (text.includes('hub restart (unclean)')) return text
      }
      return undefined
    }, { timeoutMs: 30_000, what: 'runbook entry for the unclean hub restart' })
    console.log(`runbook entry:\n${entry.slice(entry.lastIndexOf('## '))}`)

    await Promise.all(NODES.map((id) => b.startNode(id, { stdin: true })))
    await online(b, NODES, 'after the broker came back')
    for (const id of NODES) expect((await b.http(id, '/healthz')).body.offline?.bundleVersion).toBe(manifest.version)
    expect((await b.http('kitchen', '/healthz')).body.config?.name).toBe('Kitchen Mirror')
  })

  it('node rebuild: kitchen wipes its cache, fetches the bundle again from hub.lan, takes its config again, back in clients/online', { timeout: 120_000 }, async () => {
    const b = bed!
    const agent = b.nodes.kitchen!.proc!
    const fetched = installs(agent.out.text).length
    const r = await op(b, ['node', 'rebuild', 'kitchen'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^node kitchen rebuilt: cache wiped, config resynced, re-registered \(\d+\.\d s\)$/m)
    expect(agent.out.text).toMatch(/rebuild: cache wiped, restarting/)
    expect(b.nodes.kitchen!.proc, 'same process (in-process restart)').toBe(agent)
    await waitFor(() => installs(agent.out.text).length === fetched + 1, { timeoutMs: 60_000, what: 'bundle fetched again after the wipe' })
    expect(installs(agent.out.text).at(-1)!.from).toBe(`https://hub.lan:${b.hub.env.HTTPS_PORT ?? 8443}`)
    await waitFor(async () => (await b.http('kitchen', '/healthz')).body.config?.name === 'Kitchen Mirror', { what: 'config resynced from the hub' })
    await online(b, NODES, 'after the rebuild')
    await onlineList(b, ['hall', 'kitchen'], 'after the rebuild')
  })

  it('new identity: hall becomes hall-2 across hosts, hall is gone and refused, and a restart with the old env file comes back as hall-2', { timeout: 150_000 }, async () => {
    const b = bed!
    const hall = b.nodes.hall!
    const oldPassword = hall.password!
    const r = await op(b, ['node', 'rebuild', 'hall', '--new-identity', 'hall-2'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^node hall is now hall-2: cache wiped, config resynced, registered under the new id/m)
    await online(b, ['kitchen', 'hall-2'], 'after the move')
    expect(((await b.http('hub', '/api/nodes')).body.nodes as Array<{ id: string }>).map((n) => n.id).sort()).toEqual(['hall-2', 'kitchen'])
    expect((await b.http('hall', '/healthz')).body.nodeId).toBe('hall-2')

    // The old credential is gone: a real connect from the mirror's host is refused.
    const mqtts = `mqtts://hub.lan:${b.hub.env.MQTT_TLS_PORT ?? 8883}`
    const refused = await b.mqttProbe('hall', { url: mqtts, ca: hall.env.MQTT_CA, username: 'hall', password: oldPassword, clientId: 'node-hall/probe' })
    expect(refused.ok).toBe(false)
    expect(refused.error).toMatch(/Not authorized|Bad username or password/i)

    // The env file still says NODE_ID=hall with the old password: the identity the hub gave wins.
    await b.stopNode('hall')
    expect(hall.env.NODE_ID).toBe('hall')
    const again = await b.startNode('hall', { stdin: true })
    expect(again.out.text).toMatch(/node identity from the state dir \(given by the hub\)/)
    await online(b, ['kitchen', 'hall-2'], 'hall-2 after a restart with the old env file')
    expect(((await b.http('hub', '/api/nodes')).body.nodes as Array<{ id: string }>).map((n) => n.id)).not.toContain('hall')
    await onlineList(b, ['hall-2', 'kitchen'], 'hall-2 after a restart with the old env file')

    // A key rotated after the move: the operator catches the env file up (NODE_ID and the new
    // password); from then on the env file is the truth again.
    const identity = JSON.parse(await readFile(join(hall.stateDir, 'identity.json'), 'utf8')) as { password: string }
    const rot = await b.mirrormesh('hub', ['keys', 'rotate', 'hall-2', '--grace', '0'])
    expect(rot.code, rot.stderr).toBe(0)
    outputs.push(rot.stderr)
    const rotated = rot.stdout.trim().split('\n').at(-1)!
    await b.setEnv('hall', { NODE_ID: 'hall-2', MQTT_PASSWORD: rotated })
    await b.stopNode('hall')
    const caught = await b.startNode('hall', { stdin: true })
    expect(caught.out.text).toMatch(/node identity from the environment/)
    await online(b, ['kitchen', 'hall-2'], 'hall-2 with its rotated key from the env file')
    expect(await b.mqttProbe('hall', { url: mqtts, ca: hall.env.MQTT_CA, username: 'hall-2', password: identity.password, clientId: 'node-hall-2/probe' })).toMatchObject({ ok: false })

    // No secret in anything captured: process logs, command output.
    const secrets = {
      'kitchen password': b.nodes.kitchen!.password!, 'hall password': oldPassword, 'hall-2 password': identity.password, 'hall-2 rotated password': rotated, 'observer password': observer,
      'admin token': (await readFile(join(b.hub.stateDir, 'admin-token'), 'utf8')).trim(),
    }
    const logs = await Promise.all([b.hub, ...Object.values(b.nodes)].flatMap((h) => h.runs.map((s) => readFile(s.log, 'utf8'))))
    const captured = [...outputs, ...logs].join('\n')
    for (const [what, s] of Object.entries(secrets)) expect(captured.includes(s), `${what} in captured output`).toBe(false)
    expect(captured).not.toMatch(/PRIVATE KEY/)
  })
})
