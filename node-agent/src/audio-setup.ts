// Builds the node's microphone, speaker, VAD, wake word and listener from config.
import { existsSync } from 'node:fs'
import { access } from 'node:fs/promises'
import type { Logger } from '@mirrormesh/broker'
import { Listener } from './audio/listener.js'
import { aplaySink, fileSink, type AudioSink } from './audio/sink.js'
import { arecordSource, stdinSource, wavFileSource, type AudioSource } from './audio/source.js'
import { KeywordSpotterWake } from './audio/kws.js'
import type { WakeDetector } from './audio/listener.js'
import { WakeWord } from './audio/wakeword.js'
import type { AgentConfig } from './config.js'
import { SileroVad } from '@mirrormesh/speech'

export interface WakeStatus {
  engine: 'sherpa-kws' | 'openwakeword' | 'none'
  /** failed: a wake word was configured but would not load; only push-to-talk opens a turn. */
  state: 'ok' | 'failed' | 'off'
  reason?: string
}

export interface AudioParts {
  listener: Listener
  sink: AudioSink
  wake: WakeStatus
  close(): Promise<void>
}

/** pushToTalkOnly: the hub set this mirror's wake word to none — no detector, and no open mic either. */
export async function buildAudio(config: AgentConfig, log: Logger, opts: { pushToTalkOnly?: boolean } = {}): Promise<AudioParts> {
  // The file source reads lazily; a missing file must fail here, where the voice feature reports it.
  if (config.audioSource === 'file') await access(config.audioFile!).catch((err: Error) => { throw new Error(`AUDIO_FILE ${config.audioFile}: ${err.message}`) })
  const ctl = new AbortController()
  const source: AudioSource =
    config.audioSource === 'arecord' ? arecordSource({ device: config.audioDevice, signal: ctl.signal })
      : config.audioSource === 'file' ? wavFileSource(config.audioFile!, { realtime: true, signal: ctl.signal })
        : stdinSource(ctl.signal)
  const sink: AudioSink =
    config.audioSink === 'aplay' ? aplaySink({ device: config.audioDevice, onError: (err) => log.error({ err }, 'speaker error') })
      : fileSink(config.audioSink === 'file' ? config.audioSinkFile ?? null : null)
  const vad = await SileroVad.load({ endSilenceMs: config.vadEndSilenceMs })
  const wake = opts.pushToTalkOnly
    ? { detector: pushToTalkOnly, status: { engine: 'none', state: 'off', reason: 'push-to-talk only (wake word set to none by the hub)' } as WakeStatus }
    : await loadWake(config, log)
  const wakeWord = wake.detector
  // 500 ms of pre-roll: Silero reports onset a few hundred ms into speech, and a clipped first word breaks recognition.
  const listener = new Listener({ source, vad, wakeWord, bargeIn: wakeWord ? 'wake' : 'vad', preRollMs: 500 })
  log.info({ source: config.audioSource, sink: config.audioSink, wakeWord: wake.status }, 'audio ready')
  return {
    listener,
    sink,
    wake: wake.status,
    async close() {
      // Abort first: the stdin source then takes the close below as the stop it is.
      ctl.abort()
      // An open stdin would keep the process alive after SIGTERM (seen in the offline benchmark).
      if (config.audioSource === 'stdin') process.stdin.destroy()
      await listener.stop().catch(() => undefined)
      await sink.close().catch(() => undefined)
      await wakeWord?.close?.()
    },
  }
}

/** Never fires: a mirror whose wake word failed must not fall back to streaming everything it hears. */
const pushToTalkOnly: WakeDetector = { lastScore: 0, push: () => Promise.resolve(false), reset: () => undefined }

/**
 * The sherpa keyword spotter when KWS_MODEL_DIR is set, else openWakeWord when
 * WAKE_WORD_MODEL_DIR is set, else none (every utterance the VAD hears is a turn).
 * A configured engine that fails to load falls to the next configured one, and past the
 * last to push-to-talk only, with the reason on /healthz: the agent keeps running.
 */
async function loadWake(config: AgentConfig, log: Logger): Promise<{ detector: WakeDetector | undefined; status: WakeStatus }> {
  const tries: Array<[WakeStatus['engine'], () => Promise<WakeDetector>]> = []
  if (config.kwsModelDir) {
    const modelDir = config.kwsModelDir
    tries.push(['sherpa-kws', () => KeywordSpotterWake.load({ modelDir, keywordsFile: config.kwsKeywordsFile, threshold: config.kwsThreshold })])
  }
  if (config.wakeWordModelDir) {
    const modelDir = config.wakeWordModelDir
    tries.push(['openwakeword', async () => {
      if (!existsSync(modelDir)) throw new Error(`WAKE_WORD_MODEL_DIR ${modelDir} does not exist`)
      return WakeWord.load({ modelDir, keyword: config.wakeWord, threshold: config.wakeThreshold })
    }])
  }
  if (!tries.length) return { detector: undefined, status: { engine: 'none', state: 'off' } }
  const reasons: string[] = []
  for (const [engine, load] of tries) {
    try {
      return { detector: await load(), status: { engine, state: 'ok' } }
    } catch (err) {
      const reason = `${engine}: ${(err as Error).message}`
      reasons.push(reason)
      log.error({ err, engine }, 'wake word failed to load')
    }
  }
  log.error({ reasons }, 'no wake word could be loaded: listening on push-to-talk only')
  return { detector: pushToTalkOnly, status: { engine: tries[0]![0], state: 'failed', reason: reasons.join('; ') } }
}
