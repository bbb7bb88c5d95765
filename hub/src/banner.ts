// What `npm start` (mirrormesh hub) says to a person once the hub is up: where to open the page,
// which engines are live, and for each one missing the one command that brings it. Written to
// stderr, apart from the JSON log on stdout. The commands here match .ci/run's apt line and the
// README's fresh-machine section.
import { isLoopback } from './http/auth.js'

export interface BannerInfo {
  http: { host: string; port: number } | undefined
  https: { host: string; port: number } | undefined
  /** pipeline.health(): 'stage:engine' → state; undefined with PIPELINE_ENABLED=false. */
  engines: Record<string, 'ok' | 'degraded' | 'down'> | undefined
}

/** The one command that brings a missing engine. */
export const ENGINE_FIX: Record<string, string> = {
  'asr:pocketsphinx': 'apt-get install pocketsphinx pocketsphinx-en-us',
  'asr:sherpa': 'mirrormesh models pull whisper-tiny.en',
  'tts:espeak': 'apt-get install espeak-ng',
  'tts:sherpa': 'mirrormesh models pull piper-en_US-amy-low',
  'llm:llama': 'mirrormesh models pull qwen2.5-0.5b-instruct',
  'vad:silero': 'npm ci',
}

const STAGES: Array<[string, string]> = [['asr', 'ASR'], ['tts', 'TTS'], ['llm', 'LLM'], ['vad', 'VAD']]

export function formatBanner(info: BannerInfo): string {
  const lines = ['', 'mirrormesh hub is up.']
  if (info.http) {
    const host = isLoopback(info.http.host) ? '127.0.0.1' : info.http.host
    lines.push(`  Open  http://${host}:${info.http.port}/  on this machine, then hold "Hold to talk" and ask "what time is it".`)
  }
  if (info.https) lines.push(`        https://<this machine>:${info.https.port}/  from the LAN (pair the browser: mirrormesh pair)`)
  else lines.push('        From the LAN: mirrormesh tls init first (README "Talk from a browser").')
  if (!info.engines) {
    lines.push('  Voice pipeline off (PIPELINE_ENABLED=false).', '')
    return lines.join('\n')
  }
  lines.push('  Engines:')
  for (const [stage, label] of STAGES) {
    const all = Object.entries(info.engines).filter(([k]) => k.startsWith(`${stage}:`))
    const live = all.filter(([, s]) => s !== 'down').map(([k]) => k.slice(stage.length + 1))
    const missing = all.filter(([, s]) => s === 'down').map(([k]) => k)
    const head = `    ${label.padEnd(10)}${live.length ? live.join(', ') : 'none'}`
    const fixes = missing.map((k) => `${k.slice(stage.length + 1)}: ${ENGINE_FIX[k] ?? 'see README'}`)
    // A stage with a live engine works; the missing ones are upgrades. One with none is the gap.
    const word = live.length ? 'add' : stage === 'llm' ? 'skills only; add' : 'MISSING, bring it with'
    lines.push(fixes.length ? `${head.padEnd(30)}${word} ${fixes.join('; ')}` : head)
  }
  lines.push(`    ${'Wake word'.padEnd(10)}on mirrors (node agent, WAKE_WORD); the page uses push-to-talk or hands-free`, '')
  return lines.join('\n')
}
