// Incidents, one record and two views, on a real hub with real MQTT clients: a node's Last Will
// and return make one outage entry (start, end, duration); 50 fast flaps make one incident with
// the count; a killed hub reports "hub restart (unclean)" at its next start, a stopped one
// "clean"; a full disk under the journal leaves the hub running, logs a clear error, writes no
// partial entry, and writes the kept entries once there is room again.
import { readFile, readdir, statfs, writeFile, appendFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'
import { addNode, cliPath, freePorts, killAll, removeDir, sleep, spawnTracked, startAgent, startHub as startHubProc, tempDir, waitFor, type HubOptions, type HubProc } from './support/harness.js'
import { createMesh } from './support/mesh.js'
import { probeUserMountNamespace } from './support/small-disk.js'

const SETTLE_MS = 1500
const env = { INCIDENT_SETTLE_MS: String(SETTLE_MS), NODE_STALE_MS: '3000' }
const clients: mqtt.MqttClient[] = []

const dirs = new Set<string>()
const startHub = async (opts: HubOptions) => { const hub = await startHubProc(opts); dirs.add(hub.stateDir); return hub }

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)))
  await killAll()
  for (const d of dirs) await removeDir(d)
  dirs.clear()
})

interface Rec { type: string; nodeId?: string; start: number; end: number | null; durationMs: number | null; downs?: number; clean?: boolean; states?: string[] }

async function records(stateDir: string): Promise<Rec[]> {
  const dir = join(stateDir, 'incidents')
  const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => /^\d{4}-\d{2}-\d{2}\.jsonl$/.test(f)).sort()
  const out: Rec[] = []
  for (const f of files) for (const line of (await readFile(join(dir, f), 'utf8')).split('\n')) if (line) out.push(JSON.parse(line) as Rec)
  return out
}

/** The runbook once it has `entries` entries (each record's entry follows its JSON line). */
async function runbookWith(stateDir: string, entries: number): Promise<string> {
  return waitFor(async () => { const md = await runbook(stateDir); return (md.match(/^## /gm)?.length ?? 0) >= entries && md }, { timeoutMs: 5000, what: `${entries} runbook entries` })
}

async function runbook(stateDir: string): Promise<string> {
  const dir = join(stateDir, 'entries')
  const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('-runbook.md')).sort()
  let text = ''
  for (const f of files) text += await readFile(join(dir, f), 'utf8')
  return text
}

/** A node as a plain MQTT client: retained status + heartbeats, as the agent publishes them. */
async function fakeNode(hub: HubProc, id: string) {
  const password = await addNode(hub.stateDir, id)
  const c = await mqtt.connectAsync(hub.mqttUrl, { clientId: `node-${id}`, username: id, password, reconnectPeriod: 0,
    will: { topic: `mirrormesh/nodes/${id}/status`, payload: Buffer.from('offline'), qos: 1, retain: true } })
  clients.push(c)
  let seq = 0
  const heartbeat = () => c.publishAsync(`mirrormesh/nodes/${id}/heartbeat`, JSON.stringify({
    v: 1, ts: Date.now(), seq: seq++, uptimeS: 1, cpuPct: 1, memPct: 1, rssMb: 50, temperatureC: null, versions: { agent: '0.0.0' }, mode: 'online' }), { qos: 1 }) // QoS 1: kept in order with the status messages
  const status = (s: 'online' | 'offline') => c.publishAsync(`mirrormesh/nodes/${id}/status`, s, { qos: 1, retain: true })
  return { client: c, heartbeat, status }
}

const nodeState = async (hub: HubProc, id: string) => ((await hub.node(id)) as { state?: string }).state

describe('incidents: records and runbook entries written by the hub', () => {
  it('a node lost (Last Will) and back makes one outage entry with start, end and duration', async () => {
    const hub = await startHub({ env })
    const password = await addNode(hub.stateDir, 'hall')
    const opts = { nodeId: 'hall', mqttUrl: hub.mqttUrl, password }
    let agent = await startAgent(opts)
    await waitFor(async () => (await nodeState(hub, 'hall')) === 'online', { what: 'hall online' })
    agent.kill('SIGKILL') // the broker publishes its Last Will: offline
    await waitFor(async () => (await nodeState(hub, 'hall')) === 'offline', { what: 'hall offline' })
    await sleep(1000)
    // The node-offline alert's gauge counts while it is down.
    const down = /^mirrormesh_node_down_seconds\{node="hall"\} (\S+)$/m.exec(String((await hub.http('/metrics')).body))
    expect(Number(down?.[1])).toBeGreaterThanOrEqual(0.9)
    agent = await startAgent({ ...opts, healthPort: agent.healthPort })
    await waitFor(async () => (await nodeState(hub, 'hall')) === 'online', { what: 'hall back online' })
    const [rec] = await waitFor(async () => { const r = (await records(hub.stateDir)).filter((x) => x.type === 'node_outage'); return r.length > 0 && r }, { timeoutMs: 10_000, what: 'outage record' })
    expect(rec).toMatchObject({ nodeId: 'hall', downs: 1, states: ['offline'] })
    expect(rec!.end! - rec!.start).toBe(rec!.durationMs)
    expect(rec!.durationMs).toBeGreaterThanOrEqual(1000)
    expect(rec!.durationMs).toBeLessThan(15_000)
    const md = await runbookWith(hub.stateDir, 1)
    expect(md).toMatch(/^# Runbook journal \d{4}-\d{2}-\d{2} \(UTC\)/)
    expect(md.match(/^## /gm)).toHaveLength(1)
    expect(md).toMatch(/^## .* — node hall outage$/m)
    expect(md).toMatch(/- \*\*Date:\*\* \d{4}-\d{2}-\d{2} [\d:]+ UTC → \d{4}-\d{2}-\d{2} [\d:]+ UTC \(\d+ s\)/)
    expect(md).toMatch(/- \*\*Systems affected:\*\* node `hall`/)
    expect(md).toMatch(/- \*\*Actions taken:\*\* automatic/)
    expect(md).toMatch(/- \*\*Recovery confirmed by:\*\* `state` online, `mirrormesh_node_heartbeat_age_seconds` [\d.]+/)
    // Back online, it reads 0.
    const metrics = String((await hub.http('/metrics')).body)
    expect(metrics).toMatch(/^mirrormesh_node_down_seconds\{node="hall"\} 0$/m)
  })

  it('50 fast flaps fold into one incident with the count', async () => {
    const hub = await startHub({ env })
    const node = await fakeNode(hub, 'kitchen')
    await node.status('online')
    await waitFor(async () => { await node.heartbeat(); return (await nodeState(hub, 'kitchen')) === 'online' }, { what: 'kitchen online' })
    // MQTT orders messages per topic only: the broker persists a retained status before passing it
    // on while a heartbeat goes straight through, so each flap waits for the hub to see it (a real
    // node heartbeats once a second, never in the same breath as its status).
    for (let i = 0; i < 50; i++) {
      await node.status('offline')
      await waitFor(async () => (await nodeState(hub, 'kitchen')) === 'offline', { what: `flap ${i + 1}: offline` })
      await node.status('online')
      await waitFor(async () => (await nodeState(hub, 'kitchen')) === 'recovering', { what: `flap ${i + 1}: status online` })
      await node.heartbeat()
      await waitFor(async () => (await nodeState(hub, 'kitchen')) === 'online', { what: `flap ${i + 1}: online` })
    }
    // Stay up (heartbeats) past the settle window: the incident closes.
    const beat = setInterval(() => void node.heartbeat(), 300)
    try {
      const recs = await waitFor(async () => { const r = (await records(hub.stateDir)).filter((x) => x.type === 'node_outage'); return r.length > 0 && r }, { timeoutMs: 15_000, what: 'flap record' })
      await sleep(SETTLE_MS * 2)
      expect(await records(hub.stateDir)).toHaveLength(1)
      expect(recs[0]).toMatchObject({ nodeId: 'kitchen', downs: 50, states: ['offline'] })
    } finally {
      clearInterval(beat)
    }
    const md = await runbookWith(hub.stateDir, 1)
    expect(md.match(/^## /gm)).toHaveLength(1)
    expect(md).toMatch(/^## .* — node kitchen flapping \(50 outages\)$/m)
  })

  it('a killed hub reports an unclean restart at its next start; a stopped one a clean restart', async () => {
    const first = await startHub({ env })
    const again = { stateDir: first.stateDir, mqttPort: first.mqttPort, httpPort: first.httpPort, wsPort: first.wsPort, env }
    await sleep(300)
    first.kill('SIGKILL')
    await first.exited
    const second = await startHub(again)
    await waitFor(async () => (await records(second.stateDir)).some((r) => r.type === 'hub_restart'), { what: 'restart record' })
    second.kill('SIGTERM')
    expect(await second.exited).toEqual({ code: 0, signal: null })
    const third = await startHub(again)
    await waitFor(async () => (await records(third.stateDir)).filter((r) => r.type === 'hub_restart').length === 2, { what: 'second restart record' })
    const restarts = (await records(third.stateDir)).filter((r) => r.type === 'hub_restart')
    expect(restarts.map((r) => r.clean)).toEqual([false, true])
    const md = await runbookWith(third.stateDir, 2)
    expect(md).toMatch(/^## .* — hub restart \(unclean\)$/m)
    expect(md).toMatch(/ended without stopping: crash, kill or power loss/)
    expect(md).toMatch(/^## .* — hub restart \(clean\)$/m)
    expect(md).toMatch(/- \*\*Recovery confirmed by:\*\* `mqtt connected` true/)
  })

  it('an external broker restarted under the hub makes one broker outage entry', async () => {
    const mesh = await createMesh('mosquitto', { hubEnv: env })
    dirs.add(mesh.stateDir)
    dirs.add(mesh.mosq!.dir)
    await sleep(500)
    await mesh.restartBroker() // Mosquitto stopped and started again on the same port
    const [rec] = await waitFor(async () => { const r = (await records(mesh.stateDir)).filter((x) => x.type === 'broker_outage'); return r.length > 0 && r }, { timeoutMs: 20_000, what: 'broker outage record' })
    expect(rec).toMatchObject({ external: true })
    await sleep(1000)
    expect((await records(mesh.stateDir)).filter((x) => x.type === 'broker_outage')).toHaveLength(1)
    expect(rec!.end).not.toBeNull()
    expect(rec!.durationMs).toBeGreaterThan(0)
    const md = await runbookWith(mesh.stateDir, 1)
    expect(md).toMatch(/^## .* — broker connection lost \(external broker\)$/m)
    expect(md).toMatch(/- \*\*Recovery confirmed by:\*\* `mqtt connected` true/)
  })
})

describe.skipIf(!process.env.CI && process.platform !== 'linux')('incidents on a full disk', () => {
  it('the hub keeps running, logs a clear error, writes no partial entry, and writes it once there is room', async () => {
    const probe = await probeUserMountNamespace()
    if (!probe.ok) throw new Error(probe.reason)
    const stateDir = await tempDir('mm-hub-full-')
    dirs.add(stateDir)
    const [mqttPort, httpPort, wsPort] = (await freePorts(3)) as [number, number, number]
    // The hub in its own user + mount namespace, with small tmpfs disks on its two journal folders.
    const script = 'set -e; for d in incidents entries; do mkdir -p "$0/$d"; mount -t tmpfs -o size=64k,mode=0755 tmpfs "$0/$d"; done; exec "$@"'
    const hubEnv = { MIRRORMESH_STATE_DIR: stateDir, MQTT_HOST: '127.0.0.1', MQTT_PORT: String(mqttPort), MQTT_WS_PORT: String(wsPort),
      HTTP_HOST: '127.0.0.1', HTTP_PORT: String(httpPort), LOG_LEVEL: 'info', BUNDLE_ENABLED: 'false', ...env }
    const { proc, out } = spawnTracked('unshare', ['-rm', 'sh', '-c', script, stateDir, process.execPath, cliPath, 'hub'], hubEnv)
    const http = (p: string) => fetch(`http://127.0.0.1:${httpPort}${p}`, { signal: AbortSignal.timeout(3000) })
    await waitFor(async () => (await http('/readyz').catch(() => null))?.status === 200, { timeoutMs: 15_000, what: 'hub ready' })
    // The test sees the hub's disks through its root.
    const inside = (p: string) => join(`/proc/${proc.pid}/root`, stateDir, p)
    for (const d of ['incidents', 'entries']) await fill(inside(d))
    const hub = { stateDir, mqttUrl: `mqtt://127.0.0.1:${mqttPort}`, node: async (id: string) => (await (await http(`/api/nodes/${id}`)).json()) as unknown } as HubProc
    const node = await fakeNode(hub, 'attic')
    // A heartbeat in each poll, as a real node beats every second: the broker may pass the first
    // one on before the retained status it persists first (MQTT orders per topic only).
    await node.status('online')
    await waitFor(async () => { await node.heartbeat(); return ((await hub.node('attic')) as { state?: string }).state === 'online' }, { what: 'attic online' })
    await node.status('offline'); await node.status('online'); await node.heartbeat()
    const beat = setInterval(() => void node.heartbeat(), 300)
    try {
      await waitFor(() => out.text.includes('incident journal not written: disk full (ENOSPC)'), { timeoutMs: 10_000, what: 'ENOSPC logged' })
      expect((await http('/healthz')).status).toBe(200)
      // Nothing partial: the full disks hold only the filler.
      for (const d of ['incidents', 'entries']) for (const f of (await readdir(inside(d))).filter((x) => x !== 'filler')) expect((await readFile(join(inside(d), f), 'utf8'))).toBe('')
      // Room again: the next incident writes the kept one first, whole.
      for (const d of ['incidents', 'entries']) await rm(join(inside(d), 'filler'))
      await node.status('offline'); await node.status('online'); await node.heartbeat()
      const recs = await waitFor(async () => { const r = await records(join(`/proc/${proc.pid}/root`, stateDir)); return r.length === 2 && r }, { timeoutMs: 10_000, what: 'both records written' })
      expect(recs.map((r) => r.type)).toEqual(['node_outage', 'node_outage'])
      const md = await runbookWith(join(`/proc/${proc.pid}/root`, stateDir), 2)
      expect(md.match(/^## .* — node attic outage$/gm)).toHaveLength(2)
      expect(out.text).toContain('incident journal writable again')
    } finally {
      clearInterval(beat)
    }
  })
})

/** Fills the tmpfs at `dir` with a file called filler, up to the last byte. */
async function fill(dir: string): Promise<void> {
  const s = await statfs(dir)
  await writeFile(join(dir, 'filler'), Buffer.alloc(Math.max(0, s.bavail * s.bsize - 4096)))
  for (;;) {
    try { await appendFile(join(dir, 'filler'), Buffer.alloc(512)) } catch { break }
  }
}
