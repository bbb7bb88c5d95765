// Browser turn: end of the WAV's speech -> first reply sample played in the page, over the same
// skill turns as the pipeline bench, with headless Chromium as the node (the hub's own page, a
// WAV as its fake microphone). Hands-free: a tap in the silence after one pass of the looping WAV,
// the hub's VAD ends the turn after the next pass (as the pipeline bench's mode (a), so its client
// TTFA is the figure to compare). Speech end is where the page's level meter fell silent.
//   BENCH_TURNS=20   turns (cycling the utterances; one Chromium per utterance: its mic file is fixed at launch)
//   VAD_END_SILENCE_MS=500 (passed to the hub)
import { startHub } from '../support/dist/harness.js'
import { launchWithMic, pageTurns, removeBrowserDirs, speechEnded, speechWav } from '../support/dist/browser-node.js'

const UTTERANCES = ['what time is it', 'turn on the kitchen light', 'turn off the hall light', 'are you there', 'what is the date']

const quantile = (xs, q) => {
  const s = xs.filter((x) => typeof x === 'number').sort((a, b) => a - b)
  return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))] : undefined
}

export async function main() {
  const turns = Number(process.env.BENCH_TURNS ?? 20)
  const vadEndMs = process.env.VAD_END_SILENCE_MS ?? '500'
  const hub = await startHub({ env: { VAD_END_SILENCE_MS: vadEndMs, ROOMS: 'kitchen,hall' }, timeoutMs: 40_000 })
  const perUtterance = Math.ceil(turns / UTTERANCES.length)
  const recs = []
  for (const text of UTTERANCES) {
    if (recs.length >= turns) break
    const mic = await speechWav(text)
    const context = await launchWithMic(mic.path)
    try {
      const page = context.pages()[0] ?? (await context.newPage())
      await page.goto(`http://127.0.0.1:${hub.httpPort}/`)
      await page.waitForFunction(() => document.body.dataset.state === 'online', undefined, { timeout: 15_000 })
      await page.locator('#handsfree').check()
      await page.evaluate(() => globalThis.mirrormesh.openMic())
      for (let i = 0; i < perUtterance && recs.length < turns; i++) {
        await speechEnded(page)
        await page.locator('#talk-btn').dispatchEvent('pointerdown')
        const eos = await speechEnded(page)
        const deadline = Date.now() + 20_000
        let t
        while (Date.now() < deadline) {
          t = (await pageTurns(page)).at(-1)
          if (t?.firstSampleAt) break
          await new Promise((r) => setTimeout(r, 20))
        }
        const ms = t?.firstSampleAt ? t.firstSampleAt - eos : undefined
        recs.push({ text, ms, turnId: t?.turnId, transcript: t?.transcript, reply: t?.reply })
        if (process.env.BENCH_VERBOSE) console.log(`  "${text}" -> "${t?.transcript}" / "${t?.reply}": ${ms} ms`)
        // Let the reply finish before the next tap (no barge-in in this bench).
        await page.waitForFunction(() => document.getElementById('activity').className === 'idle', undefined, { timeout: 15_000 }).catch(() => undefined)
      }
    } finally {
      await context.close().catch(() => undefined)
      await removeBrowserDirs()
    }
  }
  const ok = recs.filter((r) => typeof r.ms === 'number')
  const heard = recs.filter((r) => r.transcript && r.transcript.toLowerCase() === r.text).length
  console.log(`browser turns: ${recs.length} (${ok.length} answered with audio, ${heard} heard word for word), hands-free, VAD_END_SILENCE_MS=${vadEndMs}`)
  console.log(`browser TTFA, speech end -> first reply sample played in the page (includes the VAD tail): p50 ${Math.round(quantile(ok.map((r) => r.ms), 0.5))} ms, p95 ${Math.round(quantile(ok.map((r) => r.ms), 0.95))} ms, max ${Math.round(Math.max(...ok.map((r) => r.ms)))} ms`)
  // The hub's own share (its histogram): its VAD's end of speech -> first frame sent, mean over the run.
  const metrics = await (await fetch(`http://127.0.0.1:${hub.httpPort}/metrics`)).text()
  const sum = (name) => metrics.split('\n').filter((l) => l.startsWith(name) && l.includes('side="hub"')).reduce((a, l) => a + Number(l.split(' ').at(-1)), 0)
  const hubMean = (sum('mirrormesh_ttfa_seconds_sum') / sum('mirrormesh_ttfa_seconds_count')) * 1000
  console.log(`of which the hub (its VAD's end of speech -> first frame sent): mean ${Math.round(hubMean)} ms; the rest is the VAD tail (VAD_END_SILENCE_MS and Silero's own hangover), capture and playback`)
  console.log(JSON.stringify({ bench: 'browser', turns: recs.length, answered: ok.length, heard, p50: quantile(ok.map((r) => r.ms), 0.5), p95: quantile(ok.map((r) => r.ms), 0.95) }))
}
