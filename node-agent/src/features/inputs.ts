// Push-to-talk and presence from every input: GPIO (gpiomon or a value file), MQTT
// (`nodes/{id}/set` from Node-RED / Home Assistant) and HTTP (app.ts calls ptt() and
// presence.set()). Presence changes go out on the retained presence topic.
import type { Feature, Handlers, Logger, MeshClient, Payload } from '@mirrormesh/broker'
import { PushButton } from '../button.js'
import type { AgentConfig } from '../config.js'
import { fileSource, gpiomonSource, type Presence, type PresenceState } from '../presence.js'
import type { Screen } from '../screen.js'
import type { VoiceFeature } from './voice.js'

/** A queued "start listening" delivered long after the click would open the mic unasked. */
export const COMMAND_MAX_AGE_MS = 10_000

export class InputsFeature implements Feature {
  readonly name = 'inputs'
  readonly handlers: Handlers
  private button: PushButton | undefined
  /** The turn a held push-to-talk opened: releasing ends that turn only. */
  private pttTurn: number | undefined
  /** Microphone muted by {"mute":true}; the heartbeat reports it, the screen shows it. */
  muted = false
  private readonly publishPresence = (p: PresenceState): void => {
    this.deps.client.publish('nodePresence', { node: this.deps.config.nodeId }, { v: 1, ts: Date.now(), present: p.present, since: p.since, source: p.source.slice(0, 64) }).catch(() => undefined)
  }

  /** A change made while MQTT was down never reached the retained topic: send the current state on each connect. */
  private readonly republish = (): void => {
    const p = this.deps.presence.state
    if (p.source !== 'initial') this.publishPresence(p)
  }

  constructor(private readonly deps: { config: AgentConfig; client: MeshClient; presence: Presence; voice: VoiceFeature | undefined; log: Logger; screen?: Screen; onMute?: () => void }) {
    this.handlers = { nodeSet: (m) => this.onCommand(m.data) }
  }

  start(): void {
    const { config, presence, voice, log } = this.deps
    presence.on('change', this.publishPresence)
    this.deps.client.on('connect', this.republish)
    presence.on('error', (err, source) => log.warn({ err, source }, 'presence input failed'))
    if (config.presenceFile) presence.add(fileSource(config.presenceFile))
    if (config.presenceGpio) presence.add(gpiomonSource({ ...gpioLine(config.presenceGpio), activeHigh: config.presenceGpioActive === 'high', bin: config.gpiomon }))
    if (config.pttGpio && voice) {
      const button = new PushButton(gpiomonSource({ ...gpioLine(config.pttGpio), activeHigh: config.pttGpioActive === 'high', bin: config.gpiomon }))
      button.on('press', () => this.ptt(true, 'gpio'))
      // A tap leaves the turn to the VAD; a hold ends it on release.
      button.on('release', (r) => { if (r.held) this.ptt(false, 'gpio') })
      button.on('error', (err) => log.warn({ err, input: button.name }, 'push-to-talk button input failed'))
      this.button = button.start()
    }
  }

  /** Push-to-talk from any input: pressed opens a turn now (no wake word); released ends the turn it opened. Null without a running voice loop. */
  ptt(pressed: boolean, source: string): number | null {
    const loop = this.deps.voice?.loop
    const listener = this.deps.voice?.audio?.listener
    if (!loop || !listener) return null
    if (pressed && this.muted) {
      this.deps.log.info({ source }, 'push-to-talk ignored: microphone muted')
      return null
    }
    if (pressed) {
      this.pttTurn = loop.pushToTalk()
      this.deps.log.info({ source, turnId: this.pttTurn }, 'push-to-talk')
      return this.pttTurn
    }
    if (this.pttTurn !== undefined && listener.currentTurnId === this.pttTurn) listener.endUtterance('manual')
    this.pttTurn = undefined
    return null
  }

  setMuted(muted: boolean): void {
    if (muted === this.muted) return
    this.muted = muted
    if (this.deps.voice?.loop) this.deps.voice.loop.muted = muted
    this.deps.screen?.update({ muted })
    this.deps.log.info({ muted }, muted ? 'microphone muted' : 'microphone unmuted')
    this.deps.onMute?.()
  }

  /** `nodes/{id}/set` from Node-RED / Home Assistant. */
  private onCommand(c: Payload<'nodeSet'>): void {
    const { presence, voice, log } = this.deps
    if (c.ts !== undefined && Date.now() - c.ts > COMMAND_MAX_AGE_MS) {
      log.warn({ ageMs: Date.now() - c.ts, command: c }, 'stale command dropped')
      return
    }
    if (c.present !== undefined) presence.set(c.present, 'mqtt')
    if (c.mute !== undefined) this.setMuted(c.mute)
    if (c.ptt !== undefined) {
      if (voice?.loop) this.ptt(c.ptt, 'mqtt')
      else log.warn(voice ? 'push-to-talk command ignored: the voice feature is not running (see /healthz)' : 'push-to-talk command ignored: this node has no microphone (AUDIO_SOURCE=none)')
    }
  }

  stop(): void {
    this.button?.stop()
    this.deps.presence.off('change', this.publishPresence)
    this.deps.client.off('connect', this.republish)
    this.deps.presence.close()
  }
}

function gpioLine(spec: string): { chip: string; line: number } {
  const i = spec.lastIndexOf(':')
  return { chip: spec.slice(0, i), line: Number(spec.slice(i + 1)) }
}
