import { describe, expect, it } from 'vitest'
import { formatBanner } from './banner.js'

describe('start banner', () => {
  it('says where to open the page, what is live, and the one command for each missing engine', () => {
    const text = formatBanner({
      http: { host: '127.0.0.1', port: 8080 }, https: { host: '0.0.0.0', port: 8443 },
      engines: { 'vad:silero': 'ok', 'asr:sherpa': 'down', 'asr:pocketsphinx': 'ok', 'tts:sherpa': 'down', 'tts:espeak': 'down', 'llm:llama': 'down' },
    })
    expect(text).toContain('http://127.0.0.1:8080/')
    expect(text).toContain(':8443/  from the LAN (pair the browser: mirrormesh pair)')
    expect(text).toMatch(/ASR\s+pocketsphinx\s+add sherpa: mirrormesh models pull whisper-tiny\.en/)
    expect(text).toMatch(/TTS\s+none\s+MISSING, bring it with sherpa: mirrormesh models pull piper-en_US-amy-low; espeak: apt-get install espeak-ng/)
    expect(text).toMatch(/LLM\s+none\s+skills only; add llama: mirrormesh models pull qwen2\.5-0\.5b-instruct/)
    expect(text).toMatch(/VAD\s+silero\n/)
  })

  it('without HTTPS it says how the LAN gets the page; without a pipeline it says so', () => {
    const text = formatBanner({ http: { host: '127.0.0.1', port: 9 }, https: undefined, engines: undefined })
    expect(text).toContain('mirrormesh tls init')
    expect(text).toContain('PIPELINE_ENABLED=false')
  })
})
