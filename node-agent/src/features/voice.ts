// The voice loop: microphone, VAD, wake word and listener (audio-setup.ts) → audio/in to the
// hub; audio/out from the hub → speaker; the hub's turn events → the screen. Loaded only with
// a microphone (VAD, wake word and onnxruntime cost memory a headless node need not pay).
// A microphone or model that fails here leaves the rest of the agent running.
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
    }
  }

  async start(): Promise<void> {
    const { config, client, state, settings, screen, log } = this.deps
    const { buildAudio } = await import('../audio-setup.js')
    const { VoiceLoop } = await import('../voice.js')
    // The hub's wake word (kept from an earlier run) is used when the listener is built; a
    // change while running waits for the next start (see ConfigFeature.wakeWordPending).
    const hubWake = settings.settings.wakeWord
    const wakeWord = (typeof hubWake === 'string' ? wakeWordModel(hubWake) : undefined) ?? config.wakeWord
    this.audio = await buildAudio({ ...config, wakeWord }, log)
    settings.wakeWordInUse = wakeWord
    this.audio.sink.volume = settings.settings.volume
    settings.on('change', this.onSettings)
    this.loop = new VoiceLoop({ nodeId: config.nodeId, client, audioInTopic: topicFor(config.baseTopic, 'nodeAudioIn', { node: config.nodeId }), state, listener: this.audio.listener, sink: this.audio.sink, screen, log: log.child({ component: 'voice' }) })
    this.loop.start()
  }

  async stop(): Promise<void> {
    this.deps.settings.off('change', this.onSettings)
    await this.audio?.close()
  }
}
