// The hub's page as a node in headless Chromium (Debian's chromium via playwright-core), with a
// WAV file as its microphone. Chromium plays the file in a loop from the moment the page opens
// the microphone, so a turn is timed against the loop: the page's own level meter (capture.js
// RMS) tells when the speech in the file has just ended; a press lands in the silence after it
// and a release just after the next pass of the speech.
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import { removeDir, tempDir } from './harness.js'
import { synth } from './voice.js'

export const CHROMIUM = '/usr/bin/chromium'
/** Resolves to 127.0.0.1 in the launched browser only. */
export const PLAIN_HOST = 'mirror.test'

const dirs: string[] = []
const ownDir = async (prefix: string): Promise<string> => { const d = await tempDir(prefix); dirs.push(d); return d }
/** Remove the WAV and Chromium profile folders made so far (after the browser is closed). */
export async function removeBrowserDirs(): Promise<void> {
  for (const d of dirs.splice(0)) await removeDir(d)
}

/** 16 kHz mono PCM16 as a WAV file. */
export function wav(pcm: Int16Array): Buffer {
  const data = Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength)
  const h = Buffer.alloc(44)
  h.write('RIFF', 0); h.writeUInt32LE(36 + data.length, 4); h.write('WAVE', 8)
  h.write('fmt ', 12); h.writeUInt32LE(16, 16); h.writeUInt16LE(1, 20); h.writeUInt16LE(1, 22)
  h.writeUInt32LE(16000, 24); h.writeUInt32LE(32000, 28); h.writeUInt16LE(2, 32); h.writeUInt16LE(16, 34)
  h.write('data', 36); h.writeUInt32LE(data.length, 40)
  return Buffer.concat([h, data])
}

/** The spoken request with `leadMs` of silence before it and `tailMs` after (one loop of the fake mic). */
export async function speechWav(text: string, { leadMs = 800, tailMs = 2600 } = {}): Promise<{ path: string; speechMs: number }> {
  const speech = await synth(text)
  const pcm = new Int16Array(Math.round(leadMs * 16) + speech.length + Math.round(tailMs * 16))
  pcm.set(speech, Math.round(leadMs * 16))
  const path = join(await ownDir('mm-wav-'), 'mic.wav')
  await writeFile(path, wav(pcm))
  return { path, speechMs: speech.length / 16 }
}

/** Quiet, headless-friendly Chromium flags every browser test starts with. */
const QUIET_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']

/** Headless Chromium without a microphone, to look at a page (a mirror's screen). */
export async function launchPlain(): Promise<BrowserContext> {
  return chromium.launchPersistentContext(await ownDir('mm-chromium-'), { executablePath: CHROMIUM, headless: true, args: QUIET_ARGS, viewport: { width: 1080, height: 1200 } })
}

/** Opens a node agent's screen (in the first tab, or a new one) and waits until it shows the node online. */
export async function openScreen(context: BrowserContext, healthPort: number, { newTab = false } = {}): Promise<Page> {
  const page = (!newTab && context.pages()[0]) || (await context.newPage())
  await page.goto(`http://127.0.0.1:${healthPort}/`)
  await page.waitForFunction("document.body.dataset.state === 'online'", undefined, { timeout: 5000 })
  return page
}

export async function launchWithMic(wavPath: string): Promise<BrowserContext> {
  const userDataDir = await ownDir('mm-chromium-')
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM, headless: true, viewport: { width: 1080, height: 1200 },
    args: [...QUIET_ARGS,
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', `--use-file-for-fake-audio-capture=${wavPath}`, '--autoplay-policy=no-user-gesture-required',
      // A name that is not localhost: a page loaded through it over http is not a secure context.
      `--host-resolver-rules=MAP ${PLAIN_HOST} 127.0.0.1`],
  })
}

/** One turn as the page recorded it (node.js: window.mirrormesh.turns). */
export interface PageTurn { turnId: number; startedAt: number; endOfSpeechAt: number | null; firstSampleAt: number | null; samples: number; transcript: string; reply: string; bargeIn: number | null }

export const pageTurns = (page: Page): Promise<PageTurn[]> => page.evaluate(() => (globalThis as unknown as { mirrormesh: { turns: PageTurn[] } }).mirrormesh.turns.map((t) => ({ ...t })))

/** Resolves (with the page's clock) when the fake mic's speech has just ended: loud, then quiet for `quietMs`. */
export function speechEnded(page: Page, { quietMs = 400, timeoutMs = 15_000 } = {}): Promise<number> {
  return page.evaluate(({ quietMs, timeoutMs }) => new Promise<number>((resolve, reject) => {
    const mm = (globalThis as unknown as { mirrormesh: { level: number } }).mirrormesh
    let loud = false
    let quietSince = 0
    const start = Date.now()
    const timer = setInterval(() => {
      const now = Date.now()
      if (mm.level > 0.03) { loud = true; quietSince = 0 } else if (loud && !quietSince) quietSince = now
      if (loud && quietSince && now - quietSince >= quietMs) { clearInterval(timer); resolve(quietSince) }
      if (now - start > timeoutMs) { clearInterval(timer); reject(new Error('the fake microphone never went loud then quiet')) }
    }, 10)
  }), { quietMs, timeoutMs })
}

/**
 * Push-to-talk one pass of the looping WAV: press in the silence after a pass, release once the
 * next pass has been spoken (`holdAfterMs` after its end, the time a person lets go).
 */
export async function pushToTalk(page: Page, { holdAfterMs = 400 } = {}): Promise<void> {
  const btn = page.locator('#talk-btn')
  await speechEnded(page)
  await btn.dispatchEvent('pointerdown')
  await speechEnded(page, { quietMs: holdAfterMs })
  await btn.dispatchEvent('pointerup')
}
