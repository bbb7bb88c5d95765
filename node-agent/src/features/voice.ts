// The voice loop: microphone, VAD, wake word and listener (audio-setup.ts) → audio/in to the
// hub; audio/out from the hub → speaker; the hub's turn events → the screen. Loaded only with
// a microphone (VAD, wake word and onnxruntime cost memory a headless node need not pay).
// A microphone or model that fails here leaves the rest of the agent running.
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { topicFor, type Feature, type Handlers, type Logger, type MeshClient } from '@mirrormesh/broker'
import type { AudioParts } from '../audio-setup.js'
import type { AgentConfig } from '../config.js'
import type { Screen } from '../screen.js'
import type { NodeStateMachine } from '../state.js'
import type { VoiceLoop } from '../voice.js'
import { wakeWordModel, type ConfigFeature, type NodeSettings } from './config.js'

export class VoiceFeature implements Feature {
  readonly name = 'voice'
  readonly handlers: Handlers
  loop: VoiceLoop | undefined
  audio: AudioParts | undefined
  private readonly onSettings = (s: NodeSettings, changed: (keyof NodeSettings)[]): void => {
    if (changed.includes('volume') && this.audio) this.audio.sink.volume = s.volume
  }

  constructor(private readonly deps: { config: AgentConfig; client: MeshClient; state: NodeStateMachine; settings: ConfigFeature; screen: Screen; log: Logger }) {
    this.handlers = {
      nodeAudioOut: (m) => this.loop?.onAudioOut(m.data),
      nodeEvents: (m) => this.loop?.onEvent(m.data),
      nodeTurnEnd: (m) => this.loop?.onTurnEnd(m.data.turnId),
    }
  }

  async start(): Promise<void> {
    const { config, client, state, settings, screen, log } = this.deps
    const { buildAudio } = await import('../audio-setup.js')
    const { VoiceLoop } = await import('../voice.js')
    // The hub's wake word (kept from an earlier run) is used when the listener is built; a
    // change while running waits for the next start (see ConfigFeature.wakeWordPending).
    const pushToTalkOnly = settings.settings.wakeWord === null
    const wakeWord = this.hubWakeWord() ?? config.wakeWord
    this.audio = await buildAudio({ ...config, wakeWord }, log, { pushToTalkOnly })
    // What the listener really uses: none for push-to-talk only; the word only when openWakeWord
    // loaded it (the keyword spotter has its own keywords file and ignores WAKE_WORD).
    const wake = this.audio.wake
    settings.wakeWordInUse = pushToTalkOnly ? null : wake.engine === 'openwakeword' && wake.state === 'ok' ? wakeWord : undefined
    this.audio.sink.volume = settings.settings.volume
    settings.on('change', this.onSettings)
    this.loop = new VoiceLoop({ nodeId: config.nodeId, client, audioInTopic: topicFor(config.baseTopic, 'nodeAudioIn', { node: config.nodeId }), state, listener: this.audio.listener, sink: this.audio.sink, screen, log: log.child({ component: 'voice' }) })
    this.loop.start()
  }

  /** The hub's wake word, if this node has an openWakeWord model for it: a name without one would leave the mirror on push-to-talk only. */
  private hubWakeWord(): string | undefined {
    const { config, settings, log } = this.deps
    const asked = settings.settings.wakeWord
    if (typeof asked !== 'string') return undefined
    const name = wakeWordModel(asked)
    const dir = config.wakeWordModelDir
    if (name && dir && [`${name}.onnx`, `${name}_v0.1.onnx`].some((f) => existsSync(join(dir, f)))) return name
    log.warn({ wakeWord: asked, modelDir: dir ?? null, using: config.wakeWord }, 'no wake word model for the hub\'s wake word on this node; keeping WAKE_WORD')
    return undefined
  }

  async stop(): Promise<void> {
    this.deps.settings.off('change', this.onSettings)
    await this.audio?.close()
  }
}
