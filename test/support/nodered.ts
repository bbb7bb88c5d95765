// The Node-RED dashboard as an operator starts it (`npm run dashboard` = flows/run.mjs) against
// a test hub, headless Chromium (Debian's) to look at it, and MQTT.js clients with the
// client ids the broker pins to each credential. Shared by the dashboard tests.
import { existsSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import { freePort, root, spawnTracked, waitFor, type Env, type Tracked } from './harness.js'

export const CHROMIUM = '/usr/bin/chromium'
/** Skipped only on a dev machine without Debian's chromium; CI installs it, and there a missing one fails. */
export const noChromium = !existsSync(CHROMIUM) && !process.env.CI
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']

/** An MQTT.js client; its id starts with the username (README "Security": ids are pinned per credential). */
export function mqttClient(url: string, username: string, password: string, opts: mqtt.IClientOptions = {}): Promise<mqtt.MqttClient> {
  const c = mqtt.connect(url, { username, password, clientId: `${username}-${Math.random().toString(16).slice(2, 10)}`, reconnectPeriod: 0, connectTimeout: 5000, ...opts })
  return new Promise((resolve, reject) => { c.once('connect', () => resolve(c)); c.once('error', reject) })
}

export interface Dashboard extends Tracked { port: number; url: string }

/** flows/run.mjs against the hub in `stateDir` (it creates its own observer and automation credentials); resolves once the page answers. */
export async function startDashboard(hub: { stateDir: string; mqttPort: number }, env: Env = {}): Promise<Dashboard> {
  const port = await freePort()
  const nr = spawnTracked(process.execPath, [join(root, 'flows/run.mjs')], {
    MIRRORMESH_STATE_DIR: hub.stateDir, MQTT_PORT: String(hub.mqttPort), DASHBOARD_PORT: String(port), NODE_RED_LOG_LEVEL: 'warn', ...env,
  })
  const url = `http://127.0.0.1:${port}/dashboard/house`
  await waitFor(async () => (await fetch(url).catch(() => undefined))?.ok, { timeoutMs: 60_000, what: `Node-RED dashboard up:\n${nr.out.text}` })
  return { ...nr, port, url }
}

/** Headless Chromium on its own profile dir (the caller removes `dir` and closes `context`). */
export async function openPage(url: string): Promise<{ context: BrowserContext; page: Page; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'mm-chromium-'))
  const context = await chromium.launchPersistentContext(dir, { executablePath: CHROMIUM, headless: true, args: ARGS, viewport: { width: 1280, height: 1000 } })
  const page = context.pages()[0] ?? (await context.newPage())
  await page.goto(url)
  return { context, page, dir }
}
