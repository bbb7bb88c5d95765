// Keeps the mirror screen (served by app.ts) in step with the node: online/offline banner,
// presence, and the room and name the hub gives it. Turn text comes from the voice loop.
import type { Feature } from '@mirrormesh/broker'
import type { Presence, PresenceState } from '../presence.js'
import { OFFLINE_BANNER, type Screen } from '../screen.js'
import type { NodeStateMachine, StateChange } from '../state.js'
import type { ConfigFeature, NodeSettings } from './config.js'

export class ScreenFeature implements Feature {
  readonly name = 'screen'
  private readonly onState = (c: StateChange): void => {
    this.deps.screen.update({ state: c.to, banner: c.to === 'online' ? null : OFFLINE_BANNER })
  }
  private readonly onPresence = (p: PresenceState): void => this.deps.screen.update({ presence: p.present })
  private readonly onSettings = (s: NodeSettings): void => this.deps.screen.update({ room: s.room, name: s.name })

  constructor(private readonly deps: { screen: Screen; state: NodeStateMachine; presence: Presence; settings: ConfigFeature }) {}

  start(): void {
    const { screen, state, presence, settings } = this.deps
    const s = settings.settings
    screen.update({ room: s.room, name: s.name, state: state.state, presence: presence.present })
    state.on('state', this.onState)
    presence.on('change', this.onPresence)
    settings.on('change', this.onSettings)
  }

  stop(): void {
    this.deps.state.off('state', this.onState)
    this.deps.presence.off('change', this.onPresence)
    this.deps.settings.off('change', this.onSettings)
  }
}
