// The mirror screen during an ONLINE turn, end to end: real hub (embedded broker, voice
// pipeline), real node agent (microphone on stdin, speaker recorded to a file), real
// Chromium looking at the agent's screen. "what time is it" (espeak-ng, synthesized now)
// goes into the microphone; the user must see what they said and the answer with the
// current hour, with the node online the whole time (no offline banner).
import { existsSync } from 'node:fs'
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { BrowserContext } from 'playwright-core'
import { afterEach, describe, expect, it } from 'vitest'
import { killAll, startAgent, tempDir, waitFor } from './support/harness.js'
import { CHROMIUM, launchPlain, openScreen, removeBrowserDirs } from './support/browser-node.js'
import { createMesh } from './support/mesh.js'
import { liveMic, synth } from './support/voice.js'

let context: BrowserContext | undefined
let mic: ReturnType<typeof liveMic> | undefined

afterEach(async () => {
  await mic?.stop()
  mic = undefined
  await context?.close().catch(() => undefined)
  context = undefined
  await killAll()
  await removeBrowserDirs()
})

/** What the page shows, as the user sees it (DOM text and visibility, not the SSE payload). */
interface Seen { t: number; activity: string; transcript: string; reply: string; banner: boolean; state: string }

const hour12 = (d: Date): number => d.getHours() % 12 || 12

// Skipped only on a dev machine without Debian's chromium; CI installs it, and there a missing one fails.
describe.skipIf(!existsSync(CHROMIUM) && !process.env.CI)('mirror screen during an online turn (needs Debian chromium)', () => {
  it('"what time is it": the screen shows the transcript, then the reply with the current hour while it is spoken; never offline', async () => {
    const mesh = await createMesh('embedded')
    const dir = await tempDir('mm-node-')
    const played = join(dir, 'played.jsonl')
    const agent = await startAgent({
      nodeId: 'kitchen', mqttUrl: mesh.url, password: mesh.passwords.kitchen, stdin: true,
      env: { AUDIO_SOURCE: 'stdin', AUDIO_SINK: 'file', AUDIO_SINK_FILE: played, MIRRORMESH_STATE_DIR: dir, HUB_HTTP_URL: `http://127.0.0.1:${mesh.hub.httpPort}`, VAD_END_SILENCE_MS: '500', ROOM: 'kitchen' },
    })
    mic = liveMic(agent.proc.stdin!)
    const speech = await synth('what time is it', { padMs: 300 })
    await agent.waitState('online', 15_000)
    await mesh.waitNode('kitchen', 'online')

    context = await launchPlain()
    // The page is live (SSE state rendered) and online before anyone speaks.
    const page = await openScreen(context, agent.healthPort)
    await page.locator('#banner').waitFor({ state: 'hidden', timeout: 2000 })
    expect(await page.locator('#transcript').textContent()).toBe('')
    expect(await page.locator('#reply').textContent()).toBe('')

    // Record every change of what the screen shows, in the page itself.
    await page.evaluate(() => {
      const w = window as unknown as { seen: Seen[] }
      const $ = (id: string) => document.getElementById(id)!
      w.seen = []
      const snap = () => {
        const s = { t: Date.now(), activity: $('activity').className, transcript: $('transcript').textContent ?? '', reply: $('reply').textContent ?? '', banner: !$('banner').hidden, state: document.body.dataset.state ?? '' }
        const last = w.seen.at(-1)
        if (!last || last.activity !== s.activity || last.transcript !== s.transcript || last.reply !== s.reply || last.banner !== s.banner || last.state !== s.state) w.seen.push(s)
      }
      snap()
      new MutationObserver(snap).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true })
    })

    const before = new Date()
    await mic.say(speech)
    const transcript = page.locator('#transcript')
    const reply = page.locator('#reply')
    const hubLog = () => mesh.hub.out.text.split('\n').filter((l: string) => l.includes('turn finished')).join('\n')
    await waitFor(async () => /It's \d{1,2}:\d{2} (AM|PM)/.test((await reply.textContent()) ?? ''), { timeoutMs: 20_000, what: `reply on the screen (hub: ${hubLog()})` })
    const after = new Date()
    // The turn has played out on the speaker: the screen settles back to idle.
    await waitFor(async () => existsSync(played) && (await readFile(played, 'utf8')).trim().length > 0, { timeoutMs: 10_000, what: 'reply audio played' })
    await page.waitForFunction(() => document.getElementById('activity')!.className === 'idle', undefined, { timeout: 10_000 })

    // What the user sees at the end of the turn.
    const shownTranscript = ((await transcript.textContent()) ?? '').toLowerCase()
    const shownReply = (await reply.textContent()) ?? ''
    expect(shownTranscript).toContain('what time is it')
    const hours = [...new Set([hour12(before), hour12(after)])]
    expect(shownReply).toMatch(new RegExp(`^It's (${hours.join('|')}):\\d{2} (AM|PM)\\.$`))
    expect(await transcript.isVisible()).toBe(true)
    expect(await reply.isVisible()).toBe(true)
    await expect(page.locator('#banner').isHidden()).resolves.toBe(true)
    expect(await page.evaluate(() => document.body.dataset.state)).toBe('online')
    await mkdir('test-results', { recursive: true })
    await page.screenshot({ path: 'test-results/mirror-online.png' })

    // The whole turn as the screen showed it.
    const seen = await page.evaluate(() => (window as unknown as { seen: Seen[] }).seen)
    const trace = seen.map((s) => `${s.t - seen[0]!.t}ms ${s.activity} ${JSON.stringify(s.transcript)} ${JSON.stringify(s.reply)}${s.banner ? ' BANNER' : ''} ${s.state}`).join('\n')
    // Online throughout: no banner, no other mode, at any moment of the turn.
    expect(seen.every((s) => !s.banner && s.state === 'online'), trace).toBe(true)
    // Activity went listening → thinking → speaking → idle, in that order.
    const acts = seen.map((s) => s.activity).filter((a, i, all) => a !== all[i - 1])
    const at = (a: string) => acts.indexOf(a)
    expect(at('listening'), trace).toBeGreaterThanOrEqual(0)
    expect(at('thinking'), trace).toBeGreaterThan(at('listening'))
    expect(at('speaking'), trace).toBeGreaterThan(at('thinking'))
    expect(acts.at(-1), trace).toBe('idle')
    // The transcript came up no later than the answer, and the reply text was on the screen
    // while it was being spoken, not only as the speaker fell silent.
    const transcriptFrom = seen.find((s) => s.transcript.toLowerCase().includes('what time is it'))!.t
    expect(transcriptFrom, trace).toBeLessThanOrEqual(seen.find((s) => s.reply !== '')!.t)
    const speakingFrom = seen.find((s) => s.activity === 'speaking')!.t
    const speakingTo = seen.find((s) => s.t > speakingFrom && s.activity === 'idle')!.t
    const replyFrom = seen.find((s) => s.reply === shownReply)!.t
    const shownWhileSpeaking = (speakingTo - Math.max(speakingFrom, replyFrom)) / (speakingTo - speakingFrom)
    expect(shownWhileSpeaking, `reply shown for ${Math.round(shownWhileSpeaking * 100)}% of the time it was spoken\n${trace}`).toBeGreaterThan(0.8)
    // The node reported the hub's latency for this turn in the footer.
    expect(await page.locator('#latency').textContent()).toMatch(/^hub \d+ ms$/)
    console.log(`online turn on the screen:\n${trace}`)
  }, 60_000)
})
