// The mirror screen end to end: a real fastify server with registerScreen and a real
// headless Chromium (playwright-core) rendering mirror-client/public over SSE.
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import Fastify, { type FastifyInstance } from 'fastify'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { defaultPublicDir, OFFLINE_BANNER, registerScreen, type Screen } from '../node-agent/src/screen.js'

const CHROMIUM = '/usr/bin/chromium'
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
const hasChromium = existsSync(CHROMIUM)

let app: FastifyInstance
let screen: Screen
let url: string

beforeAll(async () => {
  app = Fastify({ logger: false })
  screen = registerScreen(app, { publicDir: defaultPublicDir(), initial: { nodeId: 'hall', room: 'Hallway' } })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const addr = app.server.address()
  url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/`
})
afterAll(async () => {
  await app.close()
})

describe('screen server', () => {
  it('serves the static app and the SSE stream with the current state', async () => {
    const html = await fetch(url)
    expect(html.status).toBe(200)
    expect(await html.text()).toContain('<script src="app.js">')
    for (const f of ['app.js', 'style.css']) expect((await fetch(url + f)).status).toBe(200)

    const ac = new AbortController()
    const res = await fetch(url + 'events', { signal: ac.signal })
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/)
    const reader = res.body!.getReader()
    const events: Record<string, unknown>[] = []
    let buf = ''
    const readUntil = async (pred: () => boolean): Promise<void> => {
      while (!pred()) {
        const { value, done } = await reader.read()
        if (done) throw new Error('stream ended')
        buf += new TextDecoder().decode(value)
        const parts = buf.split('\n\n')
        buf = parts.pop()!
        for (const p of parts) if (p.startsWith('data: ')) events.push(JSON.parse(p.slice(6)) as Record<string, unknown>)
      }
    }
    await readUntil(() => events.length >= 1)
    expect(events[0]).toMatchObject({ nodeId: 'hall', room: 'Hallway', state: 'online', banner: null })

    // 50 updates in a burst are coalesced (≤ 20/s), and the last state wins.
    const t0 = Date.now()
    for (let i = 0; i < 50; i++) screen.update({ transcript: `word ${i}` })
    await readUntil(() => events.at(-1)?.transcript === 'word 49')
    expect(events.length - 1).toBeLessThanOrEqual(3)
    expect(Date.now() - t0).toBeLessThan(500)
    ac.abort()
  })

  it('drops a client that stops reading instead of buffering for it', async () => {
    // Real server: a client that never reads, with a large reply pushed repeatedly.
    const before = screen.stats.dropped
    const net = await import('node:net')
    const port = Number(new URL(url).port)
    const sock = net.connect(port, '127.0.0.1')
    await new Promise((r) => sock.once('connect', r))
    sock.write('GET /events HTTP/1.1\r\nHost: x\r\n\r\n')
    sock.pause() // never read
    await new Promise((r) => setTimeout(r, 100))
    const big = 'x'.repeat(200_000)
    for (let i = 0; i < 60 && screen.stats.dropped === before; i++) {
      screen.update({ reply: big + i })
      await new Promise((r) => setTimeout(r, 55))
    }
    expect(screen.stats.dropped).toBeGreaterThan(before)
    // update() itself never waited on the stalled socket.
    const u0 = performance.now()
    screen.update({ reply: '' })
    expect(performance.now() - u0).toBeLessThan(5)
    sock.destroy()
  })
})

// Skipped only on a dev machine without Debian's chromium; CI installs it, and there a missing one fails.
describe.skipIf(!hasChromium && !process.env.CI)('mirror screen in headless Chromium', () => {
  let browser: Browser
  let context: BrowserContext
  let page: Page
  let userDataDir: string

  beforeAll(async () => {
    userDataDir = mkdtempSync(path.join(tmpdir(), 'mm-chromium-'))
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      args: ARGS,
      headless: true,
      viewport: { width: 1080, height: 720 },
    })
    browser = context.browser()!
    page = context.pages()[0] ?? (await context.newPage())
    screen.update({ state: 'online', transcript: '', reply: '', activity: 'idle', presence: true, hubLatencyMs: 42 })
    await page.goto(url)
    await page.waitForFunction(() => (window as unknown as { mirrormesh?: { state(): unknown } }).mirrormesh?.state() != null)
  }, 60_000)

  afterAll(async () => {
    await context?.close()
    void browser
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true })
  })

  it('shows the offline banner within 1 s and hides it when back online', async () => {
    const banner = page.locator('#banner')
    await expect.poll(() => banner.isVisible()).toBe(false)
    let t0 = performance.now()
    screen.update({ state: 'offline' })
    await banner.waitFor({ state: 'visible', timeout: 1000 })
    const offlineMs = performance.now() - t0
    expect(await banner.textContent()).toBe(OFFLINE_BANNER)
    t0 = performance.now()
    screen.update({ state: 'online' })
    await banner.waitFor({ state: 'hidden', timeout: 1000 })
    const onlineMs = performance.now() - t0
    console.log(`SSE update → DOM (seen by playwright): offline banner ${offlineMs.toFixed(1)} ms, online ${onlineMs.toFixed(1)} ms`)
    // Precise: the page stamps DOM changes of #reply with the wall clock (same machine).
    await page.evaluate(() => {
      const w = window as unknown as { seen: Record<string, number> }
      w.seen = {}
      new MutationObserver(() => (w.seen[document.getElementById('reply')!.textContent ?? ''] = Date.now()))
        .observe(document.getElementById('reply')!, { childList: true, characterData: true, subtree: true })
    })
    const lat: number[] = []
    for (let i = 0; i < 20; i++) {
      const text = `probe ${i}`
      const sent = Date.now()
      screen.update({ reply: text })
      await page.waitForFunction((t) => (window as unknown as { seen: Record<string, number> }).seen[t] !== undefined, text)
      lat.push((await page.evaluate((t) => (window as unknown as { seen: Record<string, number> }).seen[t]!, text)) - sent)
      await new Promise((r) => setTimeout(r, 60)) // stay under the 20/s coalescing
    }
    lat.sort((a, b) => a - b)
    console.log(`SSE update → DOM mutation: median ${lat[10]} ms, max ${lat[19]} ms (20 updates)`)
    expect(lat[10]!).toBeLessThan(100)
    // recovering also shows it
    screen.update({ state: 'recovering' })
    await banner.waitFor({ state: 'visible', timeout: 1000 })
    screen.update({ state: 'online' })
    await banner.waitFor({ state: 'hidden', timeout: 1000 })
  })

  it('shows transcript, reply, activity, latency and dims without presence', async () => {
    screen.update({ activity: 'listening', transcript: 'what time is it' })
    await page.locator('#transcript', { hasText: 'what time is it' }).waitFor({ timeout: 1000 })
    expect(await page.locator('#activity').getAttribute('class')).toBe('listening')
    screen.update({ activity: 'speaking', reply: 'It is a quarter past four.' })
    await page.locator('#reply', { hasText: 'It is a quarter past four.' }).waitFor({ timeout: 1000 })
    expect(await page.locator('#activity').getAttribute('class')).toBe('speaking')
    expect(await page.locator('#latency').textContent()).toBe('hub 42 ms')
    expect(await page.locator('#clock').textContent()).toMatch(/^\d\d:\d\d$/)
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor)
    expect(bg).toBe('rgb(0, 0, 0)')
    const clockPx = await page.evaluate(() => parseFloat(getComputedStyle(document.getElementById('clock')!).fontSize))
    expect(clockPx).toBeGreaterThan(80)

    screen.update({ state: 'offline' })
    await page.locator('#banner').waitFor({ state: 'visible', timeout: 1000 })
    await page.screenshot({ path: 'test-results/mirror-screen.png' })

    screen.update({ presence: false })
    await page.waitForFunction(() => document.body.classList.contains('absent'), undefined, { timeout: 1000 })
    screen.update({ presence: true, state: 'online' })
    await page.waitForFunction(() => !document.body.classList.contains('absent'), undefined, { timeout: 1000 })

    // A muted microphone (nodes/{id}/set {"mute":true}) is shown until unmuted.
    expect(await page.locator('#muted').isVisible()).toBe(false)
    screen.update({ muted: true })
    await page.locator('#muted', { hasText: 'microphone off' }).waitFor({ state: 'visible', timeout: 1000 })
    screen.update({ muted: false })
    await page.locator('#muted').waitFor({ state: 'hidden', timeout: 1000 })
  })

  it('reconnects by itself after the stream drops', async () => {
    // Cut every connection from the server side; the page must come back by itself.
    const connects = screen.stats.connects
    app.server.closeAllConnections()
    await expect.poll(() => screen.stats.connects, { timeout: 5000 }).toBeGreaterThan(connects)
    screen.update({ reply: 'back again' })
    await page.locator('#reply', { hasText: 'back again' }).waitFor({ timeout: 5000 })
  })
})

if (!hasChromium) console.warn(`screen browser tests skipped: ${CHROMIUM} not found (apt install chromium)`)
