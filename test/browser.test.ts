// The hub's own page as a node, in a real browser: headless Chromium (Debian's chromium) whose
// microphone is a WAV of "what time is it" (espeak-ng), against a real hub (embedded broker,
// voice pipeline). Push-to-talk asks the time: the transcript and the reply show and the reply's
// audio reaches the page's speaker; pressing again while it speaks stops it (barge-in) and asks
// again; the hub going down shows the offline banner. Also what a pairing gives: node rights only.
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import mqtt from 'mqtt'
import type { BrowserContext, Page } from 'playwright-core'
import { afterEach, describe, expect, it } from 'vitest'
import { killAll, startHub, waitFor } from './support/harness.js'
import { CHROMIUM, PLAIN_HOST, launchWithMic, removeBrowserDirs, pageTurns, pushToTalk, speechEnded, speechWav } from './support/browser-node.js'

let context: BrowserContext | undefined

afterEach(async () => {
  await context?.close().catch(() => undefined)
  context = undefined
  await killAll()
  await removeBrowserDirs()
})

const hour12 = (d: Date): number => d.getHours() % 12 || 12
const shot = async (page: Page, name: string) => {
  await mkdir('test-results', { recursive: true })
  await page.screenshot({ path: `test-results/browser-${name}.png` })
}

describe.skipIf(!existsSync(CHROMIUM) && !process.env.CI)('the hub\'s page as a node in Chromium (needs Debian chromium)', () => {
  it('push-to-talk asks the time and plays the answer; pressing during the reply barges in; the hub going down shows the banner', async () => {
    const hub = await startHub({ env: { VAD_END_SILENCE_MS: '500' }, timeoutMs: 40_000 })
    const mic = await speechWav('what time is it')
    context = await launchWithMic(mic.path)
    const page = context.pages()[0] ?? (await context.newPage())
    const errors: string[] = []
    page.on('pageerror', (e) => errors.push(e.message))
    await page.goto(`http://127.0.0.1:${hub.httpPort}/`)

    // Paired at once on loopback, connected as its own node, the hub online: no banner, button live.
    await page.waitForFunction(() => document.body.dataset.state === 'online', undefined, { timeout: 10_000 })
    await page.locator('#banner').waitFor({ state: 'hidden', timeout: 2000 })
    const nodeId = await page.evaluate(() => (JSON.parse(localStorage.getItem('mirrormesh.node')!) as { nodeId: string }).nodeId)
    expect(nodeId).toMatch(/^browser-[0-9a-f]{8}$/)
    expect(await page.locator('#talk-btn').isEnabled()).toBe(true)
    // The hub's engine health is on screen (from its heartbeat).
    await waitFor(async () => /asr:/.test((await page.locator('#engines').textContent()) ?? ''), { timeoutMs: 15_000, what: 'engine health on the page' })
    await page.evaluate(() => (window as unknown as { mirrormesh: { openMic(): Promise<void> } }).mirrormesh.openMic())

    // Turn 1: push-to-talk, "what time is it".
    const before = new Date()
    await pushToTalk(page)
    await waitFor(async () => /It's \d{1,2}:\d{2} (AM|PM)/.test((await page.locator('#reply').textContent()) ?? ''), { timeoutMs: 25_000, what: 'the reply on the page' })
      .catch(async (err: Error) => { throw new Error(`${err.message}\npage turns: ${JSON.stringify(await pageTurns(page))}\nhub: ${hub.out.text.split("\n").filter((l) => /turn|audio|transcript/i.test(l)).slice(-8).join('\n')}`) })
    expect(((await page.locator('#transcript').textContent()) ?? '').toLowerCase()).toContain('what time is it')
    const hours = [...new Set([hour12(before), hour12(new Date())])]
    expect(await page.locator('#reply').textContent()).toMatch(new RegExp(`^It's (${hours.join('|')}):\\d{2} (AM|PM)\\.$`))
    // The reply's audio was played in the page (samples scheduled on Web Audio), and the page settles to idle.
    await waitFor(async () => (await pageTurns(page)).at(-1)!.firstSampleAt !== null, { timeoutMs: 10_000, what: 'reply audio in the page' })
    await page.waitForFunction(() => document.getElementById('activity')!.className === 'idle', undefined, { timeout: 10_000 })
    const t1 = (await pageTurns(page)).at(-1)!
    expect(t1.samples).toBeGreaterThan(16_000 * 0.5) // at least half a second of speech came back
    expect(await page.locator('#latency').textContent()).toMatch(/^hub \d+ ms$/)
    await shot(page, 'answered')

    // Turn 2 with barge-in: ask again, and press while the answer is being spoken.
    await page.evaluate(() => {
      const w = window as unknown as { acts: string[] }
      w.acts = []
      new MutationObserver(() => { const a = document.getElementById('activity')!.className; if (w.acts.at(-1) !== a) w.acts.push(a) }).observe(document.getElementById('activity')!, { attributes: true })
    })
    await pushToTalk(page)
    await page.waitForFunction(() => document.getElementById('activity')!.className === 'speaking', undefined, { timeout: 25_000, polling: 10 })
      .catch(async (err: Error) => { throw new Error(`${err.message}\nactivity: ${await page.evaluate(() => (window as unknown as { acts: string[] }).acts.join(' '))}\npage turns: ${JSON.stringify(await pageTurns(page))}\n${await page.evaluate(() => JSON.stringify((window as unknown as { mirrormesh: object }).mirrormesh))}\n${hub.out.text.split("\n").filter((l) => /browser-|warn|error/i.test(l)).slice(-10).join('\n')}`) })
    const interrupted = (await pageTurns(page)).at(-1)!
    await page.locator('#talk-btn').dispatchEvent('pointerdown')
    // Playback stopped at once: the page is listening again, not speaking.
    await page.waitForFunction(() => document.getElementById('activity')!.className === 'listening', undefined, { timeout: 2000 })
    const afterBarge = await pageTurns(page)
    expect(afterBarge.find((t) => t.turnId === interrupted.turnId)!.bargeIn).not.toBeNull()
    await shot(page, 'barge-in')
    // The hub heard the barge-in frame for that reply.
    await waitFor(async () => /mirrormesh_barge_in_seconds_count [1-9]/.test((await fetch(`http://127.0.0.1:${hub.httpPort}/metrics`).then((r) => r.text()))), { timeoutMs: 10_000, what: 'the hub counting the barge-in' })
    await speechEnded(page)
    await page.locator('#talk-btn').dispatchEvent('pointerup')
    await waitFor(async () => (await pageTurns(page)).at(-1)!.reply.startsWith("It's"), { timeoutMs: 25_000, what: 'the reply after the barge-in' })

    // The browser's credential is a node's: its own topics only, nothing of other nodes or the hub.
    const cred = await page.evaluate(() => JSON.parse(localStorage.getItem('mirrormesh.node')!) as { nodeId: string; password: string })
    const c = await mqtt.connectAsync(`ws://127.0.0.1:${hub.httpPort}/mqtt`, { username: cred.nodeId, password: cred.password, clientId: `node-${cred.nodeId}/probe`, reconnectPeriod: 0 })
    expect((await c.subscribeAsync(`mirrormesh/nodes/${cred.nodeId}/events`))[0]!.qos).toBe(0)
    await expect(c.subscribeAsync('mirrormesh/#')).rejects.toThrow(/Subscribe error/)
    await expect(c.subscribeAsync('mirrormesh/nodes/kitchen/events')).rejects.toThrow(/Subscribe error/)
    await c.endAsync()
    // …and never another node's client id.
    await expect(mqtt.connectAsync(`ws://127.0.0.1:${hub.httpPort}/mqtt`, { username: cred.nodeId, password: cred.password, clientId: 'node-kitchen', reconnectPeriod: 0 })).rejects.toThrow()

    // Over plain http from a name that is not localhost the browser gives no microphone: the page says why.
    const plain = await context.newPage()
    await plain.goto(`http://${PLAIN_HOST}:${hub.httpPort}/`)
    await plain.locator('#mic-note').waitFor({ state: 'visible', timeout: 10_000 })
    expect(await plain.locator('#mic-note').textContent()).toMatch(/only on https:\/\/ or localhost.*https:\/\/mirror\.test:8443\//)
    await plain.waitForFunction(() => document.body.dataset.state === 'online', undefined, { timeout: 10_000 })
    expect(await plain.locator('#talk-btn').isDisabled()).toBe(true)
    await shot(plain, 'plain-http')
    await plain.close()

    // The hub goes away: the page says so.
    hub.kill('SIGKILL')
    await page.locator('#banner').waitFor({ state: 'visible', timeout: 10_000 })
    expect(await page.locator('#banner').textContent()).toMatch(/Offline/)
    expect(await page.locator('#talk-btn').isDisabled()).toBe(true)
    await shot(page, 'offline')
    expect(errors).toEqual([])
  }, 120_000)
})
