// The Node-RED dashboard as an operator starts it (`npm run dashboard` = flows/run.mjs) against
// a real hub: real Node-RED with the shipped flows, real MQTT clients as two mirrors (one dies
// and its Last Will marks it offline), real headless Chromium looking at the page, and the
// light automation's zigbee2mqtt command read back from the broker.
import { mkdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { execFileSync } from 'node:child_process'
import { createServer } from 'node:http'
import type mqtt from 'mqtt'
import type { BrowserContext, Page } from 'playwright-core'
import { afterAll, describe, expect, it } from 'vitest'
import { addNode, killAll, removeDir, root, startHub, waitFor } from './support/harness.js'
import { mqttClient, noChromium, openPage, startDashboard } from './support/nodered.js'

const ARTIFACTS = join(root, 'test-results')
const dirs: string[] = []
const clients: mqtt.MqttClient[] = []
let context: BrowserContext | undefined
const after: Array<() => Promise<void>> = []

afterAll(async () => {
  await context?.close().catch(() => undefined)
  for (const c of clients) c.end(true)
  for (const f of after) await f()
  await killAll()
  for (const d of dirs) await removeDir(d)
})

async function client(url: string, username: string, password: string, opts: mqtt.IClientOptions = {}): Promise<mqtt.MqttClient> {
  const c = await mqttClient(url, username, password, opts)
  clients.push(c)
  return c
}

const row = (page: Page, id: string, cls: string) => page.locator(`tr[data-node="${id}"] .${cls}`).textContent()

describe.skipIf(noChromium)('Node-RED dashboard and light automation (needs Debian chromium)', () => {
  it('flows.json is built from flows/src', () => {
    execFileSync(process.execPath, [join(root, 'flows/build.mjs'), '--check'])
    const flows = JSON.parse(execFileSync('cat', [join(root, 'flows/flows.json')], { encoding: 'utf8' })) as Array<{ type: string; credentials?: Record<string, string> }>
    // No secret in the flow file: broker credentials are environment references only.
    for (const n of flows.filter((x) => x.type === 'mqtt-broker')) {
      for (const v of Object.values(n.credentials ?? {})) expect(v).toMatch(/^\$\{[A-Z_]+\}$/)
    }
  })

  it('shows every mirror, room, hub and engine as published; a light action comes out on zigbee2mqtt', async () => {
    const hub = await startHub({ env: { HEARTBEAT_INTERVAL_MS: '500' }, timeoutMs: 40_000 })
    dirs.push(hub.stateDir)
    const pw = { kitchen: await addNode(hub.stateDir, 'kitchen'), hall: await addNode(hub.stateDir, 'hall'), ops: await addNode(hub.stateDir, 'ops-test', 'hub') }
    // Home Assistant's REST API as far as the light flow uses it: a loopback server that records service calls.
    const haCalls: Array<{ url: string; auth: string; body: unknown }> = []
    const ha = createServer((req, res) => {
      let body = ''
      req.on('data', (c: Buffer) => { body += c.toString() })
      req.on('end', () => { haCalls.push({ url: req.url ?? '', auth: req.headers.authorization ?? '', body: JSON.parse(body || 'null') }); res.setHeader('content-type', 'application/json'); res.end('[]') })
    })
    await new Promise<void>((r) => ha.listen(0, '127.0.0.1', r))
    after.push(() => new Promise((r) => ha.close(() => r())))
    const haPort = (ha.address() as { port: number }).port
    const nr = await startDashboard(hub, { OFFLINE_ALERT_MIN: '0.05', STALE_AFTER_S: '4', HA_URL: `http://127.0.0.1:${haPort}`, HA_TOKEN: 'test-ha-token' })
    // The operator's ops credential watches what the automation publishes.
    const ops = await client(hub.mqttUrl, 'ops-test', pw.ops)
    const z2m: Array<{ topic: string; payload: unknown }> = []
    ops.on('message', (topic, p) => { if (topic.startsWith('zigbee2mqtt/')) z2m.push({ topic, payload: JSON.parse(p.toString()) }) })
    await ops.subscribeAsync('zigbee2mqtt/#')
    const health = new Map<string, string>()
    ops.on('message', (topic, p) => { if (topic.startsWith('mirrormesh/health/')) health.set(topic.split('/')[2]!, JSON.parse(p.toString()).state) })
    await ops.subscribeAsync('mirrormesh/health/+')

    // Two mirrors as MQTT clients with their real credentials; hall gets a Last Will.
    const kitchen = await client(hub.mqttUrl, 'kitchen', pw.kitchen, { clientId: 'node-kitchen', will: { topic: 'mirrormesh/nodes/kitchen/status', payload: Buffer.from('offline'), retain: true, qos: 1 } })
    const hall = await client(hub.mqttUrl, 'hall', pw.hall, { clientId: 'node-hall', will: { topic: 'mirrormesh/nodes/hall/status', payload: Buffer.from('offline'), retain: true, qos: 1 } })
    const hb = (id: string, extra: object) => JSON.stringify({ v: 1, ts: Date.now(), seq: 1, uptimeS: 5, cpuPct: 12, memPct: 30, rssMb: 80, temperatureC: 41.5, versions: {}, mode: 'online', ...extra })
    await kitchen.publishAsync('mirrormesh/nodes/kitchen/status', 'online', { retain: true, qos: 1 })
    await hall.publishAsync('mirrormesh/nodes/hall/status', 'online', { retain: true, qos: 1 })
    await kitchen.publishAsync('mirrormesh/nodes/kitchen/presence', JSON.stringify({ v: 1, ts: Date.now(), present: true, since: Date.now(), source: 'radar' }), { retain: true, qos: 1 })
    const beat = setInterval(() => {
      kitchen.publish('mirrormesh/nodes/kitchen/heartbeat', hb('kitchen', { room: 'kitchen', cpuPct: 37, temperatureC: 52.5 }))
      hall.publish('mirrormesh/nodes/hall/heartbeat', hb('hall', { room: 'hall', mode: 'recovering' }))
    }, 500)
    try {
      const opened = await openPage(nr.url)
      dirs.push(opened.dir)
      context = opened.context
      const page = opened.page
      await page.locator('tr[data-node="kitchen"][data-state="online"]').waitFor({ timeout: 20_000 })
      await page.locator('tr[data-node="hall"][data-state="online"]').waitFor({ timeout: 5000 })
      // A turn and its measurements, as the hub and the node publish them.
      await ops.publishAsync('mirrormesh/nodes/kitchen/events', JSON.stringify({ v: 1, ts: Date.now(), type: 'transcript', turnId: 1, text: 'turn on the kitchen light' }), { qos: 1 })
      await ops.publishAsync('mirrormesh/nodes/kitchen/events', JSON.stringify({ v: 1, ts: Date.now(), type: 'reply', turnId: 1, text: 'Turning the kitchen light on.', kind: 'skill', audio: true }), { qos: 1 })
      await ops.publishAsync('mirrormesh/nodes/hall/events', JSON.stringify({ v: 1, ts: Date.now(), type: 'reply', turnId: 4, text: 'Sorry, I cannot answer that right now.', kind: 'unavailable', audio: true }), { qos: 1 })
      await kitchen.publishAsync('mirrormesh/nodes/kitchen/events', JSON.stringify({ v: 1, ts: Date.now(), type: 'ttfa', turnId: 1, ms: 640, kind: 'skill' }), { qos: 1 })
      await ops.publishAsync('mirrormesh/nodes/hall/response/replay', JSON.stringify({ transaction: 't1', status: 'ok', data: { kept: 3, duplicate: 0, invalid: [] } }), { qos: 1 })
      // The light action exactly as the hub's light skill publishes it.
      await ops.publishAsync('mirrormesh/actions/light', JSON.stringify({ v: 1, ts: Date.now(), action: 'set', room: 'kitchen', state: 'on', nodeId: 'kitchen' }), { qos: 1 })
      // (the automation's subscription may still be on its way: the light is asked again until it answers)
      await waitFor(async () => z2m.length > 0 || void (await ops.publishAsync('mirrormesh/actions/light', JSON.stringify({ v: 1, ts: Date.now(), action: 'set', room: 'kitchen', state: 'on', nodeId: 'kitchen' }), { qos: 1 })), { timeoutMs: 20_000, intervalMs: 2000, what: `zigbee2mqtt command:\n${nr.out.text}` })
      expect(z2m[0]).toEqual({ topic: 'zigbee2mqtt/kitchen_light/set', payload: { state: 'ON' } })
      // ... and, with HA_URL set, the same light as a Home Assistant service call.
      await waitFor(() => haCalls.length > 0, { what: 'Home Assistant service call' })
      expect(haCalls[0]).toEqual({ url: '/api/services/light/turn_on', auth: 'Bearer test-ha-token', body: { entity_id: 'light.kitchen' } })

      expect(await row(page, 'kitchen', 'node-mode')).toBe('online')
      expect(await row(page, 'hall', 'node-mode')).toBe('recovering')
      expect(await row(page, 'kitchen', 'node-cpu')).toBe('37 %')
      expect(await row(page, 'kitchen', 'node-temp')).toBe('52.5 °C')
      expect(await row(page, 'kitchen', 'node-age')).toMatch(/^[0-2] s$/)
      expect(Math.abs(parseInt((await row(page, 'kitchen', 'node-skew'))!, 10))).toBeLessThan(2000)
      expect(await row(page, 'kitchen', 'node-present')).toBe('yes')
      expect(await page.locator('.mm-room[data-room="kitchen"]').getAttribute('data-present')).toBe('true')
      expect(await page.locator('.mm-room[data-room="hall"]').getAttribute('data-present')).toBe('false')
      await page.locator('tr[data-hub="main"] .hub-status', { hasText: 'online' }).waitFor({ timeout: 5000 })
      expect(await page.locator('tr[data-hub="main"] .hub-sessions').textContent()).toBe('0')
      expect(await page.locator('tr[data-hub="main"] .hub-queue').textContent()).toBe('0')
      expect(health.size).toBeGreaterThan(0)
      for (const [name, state] of health) expect(await page.locator(`.mm-engine[data-engine="${name}"]`).getAttribute('data-state')).toBe(state)
      expect(await page.locator('.mm-turns tr[data-turn-node="kitchen"] .turn-transcript').first().textContent()).toBe('turn on the kitchen light')
      expect(await page.locator('.mm-turns tr[data-turn-node="kitchen"] .turn-reply').first().textContent()).toBe('Turning the kitchen light on.')
      expect(await page.locator('.mm-voice .ttfa b').textContent()).toBe('640 ms')
      // Fallbacks are what the hub counts (its heartbeat), not guessed from reply kinds: no turn ran here.
      expect(await page.locator('.mm-voice .fallbacks b').textContent()).toBe('0')
      expect(await page.locator('.mm-voice .replayed b').textContent()).toBe('3')
      expect(await page.locator('.mm-banner').count()).toBe(0)
      await mkdir(ARTIFACTS, { recursive: true })
      await page.screenshot({ path: join(ARTIFACTS, 'dashboard-online.png'), fullPage: true })

      // Push-to-talk from the dashboard reaches the mirror's command topic.
      const sets: string[] = []
      kitchen.on('message', (topic, p) => { if (topic.endsWith('/set')) sets.push(p.toString()) })
      await kitchen.subscribeAsync('mirrormesh/nodes/kitchen/set')
      await page.locator('tr[data-node="kitchen"] button.presence').click()
      await waitFor(() => sets.length > 0, { timeoutMs: 5000, what: 'nodes/kitchen/set from the dashboard' })
      expect(JSON.parse(sets[0]!)).toEqual({ present: false })

      // hall dies without a word: its Last Will marks it offline, then the banner after N minutes.
      clearInterval(beat)
      const keep = setInterval(() => kitchen.publish('mirrormesh/nodes/kitchen/heartbeat', hb('kitchen', { room: 'kitchen' })), 500)
      try {
        hall.stream.destroy()
        await page.locator('tr[data-node="hall"][data-state="offline"]').waitFor({ timeout: 10_000 })
        await page.locator('.mm-banner[data-kind="node-offline"]', { hasText: 'hall offline' }).waitFor({ timeout: 10_000 })
        expect(await page.locator('tr[data-node="kitchen"]').getAttribute('data-state')).toBe('online')
        await page.screenshot({ path: join(ARTIFACTS, 'dashboard-offline.png'), fullPage: true })
        // Draining hub: its banner. An idle hub drains at once and stops (status offline), so the
        // banner may be up for a moment only: the page records every banner it shows.
        await page.evaluate(() => {
          const w = window as unknown as { banners: string[] }
          w.banners = []
          const seen = () => document.querySelectorAll<HTMLElement>('.mm-banner').forEach((b) => { if (!w.banners.includes(b.dataset.kind!)) w.banners.push(b.dataset.kind!) })
          new MutationObserver(seen).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true })
        })
        expect((await hub.http('/api/drain', { method: 'POST' })).status).toBeLessThan(300)
        await page.waitForFunction(() => (window as unknown as { banners: string[] }).banners.includes('hub-draining'), undefined, { timeout: 10_000 })
      } finally { clearInterval(keep) }
      // The hub dies (and its embedded broker with it): "hub down" banner and notification.
      hub.kill('SIGKILL')
      await page.locator('.mm-banner[data-kind="hub-down"]').waitFor({ timeout: 20_000 })
      expect(await page.locator('.mm-banner[data-kind="hub-down"]').count()).toBe(1)
      await page.screenshot({ path: join(ARTIFACTS, 'dashboard-hub-down.png'), fullPage: true })
    } finally { clearInterval(beat) }
    // The credentials the launcher created (mode 0600) appear in no log and no flow file.
    const userDir = join(hub.stateDir, 'nodered')
    const made = JSON.parse(await readFile(join(userDir, 'credentials.json'), 'utf8')) as Record<string, string>
    expect(Object.keys(made).sort()).toEqual(['nodered', 'nodered-automation'])
    expect((await stat(join(userDir, 'credentials.json'))).mode & 0o077).toBe(0)
    const flowFiles = (await readFile(join(userDir, 'flows.json'), 'utf8')) + (await readFile(join(userDir, 'flows_cred.json'), 'utf8'))
    for (const secret of Object.values(made)) {
      expect(nr.out.text).not.toContain(secret)
      expect(flowFiles).not.toContain(secret)
    }
  }, 150_000)
})
