// Builds the node's microphone, speaker, VAD, wake word and listener from config.
import { existsSync } from 'node:fs'
import type { Logger } from '@mirrormesh/broker'
import { Listener } from './audio/listener.js'
import { aplaySink, fileSink, type AudioSink } from './audio/sink.js'
import { arecordSource, stdinSource, wavFileSource, type AudioSource } from './audio/source.js'
import { WakeWord } from './audio/wakeword.js'
import type { AgentConfig } from './config.js'
import { SileroVad } from './speech/vad-silero.js'

export interface AudioParts {
  listener: Listener
  sink: AudioSink
  close(): Promise<void>
}

export async function buildAudio(config: AgentConfig, log: Logger): Promise<AudioParts> {
  const ctl = new AbortController()
  const source: AudioSource =
    config.audioSource === 'arecord' ? arecordSource({ device: config.audioDevice, signal: ctl.signal })
      : config.audioSource === 'file' ? wavFileSource(config.audioFile!, { realtime: true, signal: ctl.signal })
        : stdinSource()
  const sink: AudioSink =
    config.audioSink === 'aplay' ? aplaySink({ device: config.audioDevice, onError: (err) => log.error({ err }, 'speaker error') })
      : fileSink(config.audioSink === 'file' ? config.audioSinkFile ?? null : null)
  const vad = await SileroVad.load({ endSilenceMs: config.vadEndSilenceMs })
  let wakeWord: WakeWord | undefined
  if (config.wakeWordModelDir) {
    if (!existsSync(config.wakeWordModelDir)) throw new Error(`WAKE_WORD_MODEL_DIR ${config.wakeWordModelDir} does not exist`)
    wakeWord = await WakeWord.load({ modelDir: config.wakeWordModelDir, keyword: config.wakeWord, threshold: config.wakeThreshold })
  }
  // 500 ms of pre-roll: Silero reports onset a few hundred ms into speech, and a clipped first word breaks recognition.
  const listener = new Listener({ source, vad, wakeWord, bargeIn: wakeWord ? 'wake' : 'vad', preRollMs: 500 })
  log.info({ source: config.audioSource, sink: config.audioSink, wakeWord: wakeWord ? config.wakeWord : 'none (VAD + push-to-talk)' }, 'audio ready')
  return {
    listener,
    sink,
    async close() {
      ctl.abort()
      // An open stdin would keep the process alive after SIGTERM (seen in the offline benchmark).
      if (config.audioSource === 'stdin') process.stdin.destroy()
      await listener.stop().catch(() => undefined)
      await sink.close().catch(() => undefined)
      await wakeWord?.close?.()
    },
  }
}
