// Keeps the mirror screen (served by app.ts) in step with the node: online/offline banner,
// presence, and the room and name the hub gives it. Turn text comes from the voice loop.
// The screen's keyboard: a typed line (POST /text on the screen) goes to the hub as a text
// turn on nodes/{id}/turn/text; the reply comes back as a spoken turn's does (events, audio).
import type { Feature, Handlers, MeshClient } from '@mirrormesh/broker'
import type { Presence, PresenceState } from '../presence.js'
import { OFFLINE_BANNER, TypedTextError, type Screen } from '../screen.js'
import type { NodeStateMachine, StateChange } from '../state.js'
import type { ConfigFeature, NodeSettings } from './config.js'

export class ScreenFeature implements Feature {
  readonly name = 'screen'
  readonly handlers: Handlers
  private readonly onState = (c: StateChange): void => {
    this.deps.screen.update({ state: c.to, banner: c.to === 'online' ? null : OFFLINE_BANNER })
  }
  private readonly onPresence = (p: PresenceState): void => this.deps.screen.update({ presence: p.present })
  private readonly onSettings = (s: NodeSettings): void => this.deps.screen.update({ room: s.room, name: s.name })

  /**
   * `client`/`nodeId`: the keyboard sends text turns. `showReplies`: with no voice loop (which
   * otherwise puts the hub's transcript and reply on the screen), this feature does it.
   */
  constructor(private readonly deps: { screen: Screen; state: NodeStateMachine; presence: Presence; settings: ConfigFeature; client?: MeshClient; nodeId?: string; showReplies?: boolean }) {
    this.handlers = deps.showReplies ? { nodeEvents: (m) => this.onEvent(m.data) } : {}
  }

  start(): void {
    const { screen, state, presence, settings } = this.deps
    const s = settings.settings
    screen.update({ room: s.room, name: s.name, state: state.state, presence: presence.present })
    state.on('state', this.onState)
    presence.on('change', this.onPresence)
    settings.on('change', this.onSettings)
    screen.onText = (text) => this.typed(text)
  }

  /** A line typed on the screen: a text turn for this node. Refused (not queued) while the hub is away. */
  async typed(text: string): Promise<void> {
    const { client, nodeId, state, screen } = this.deps
    if (!client || !nodeId) throw new TypedTextError(503, 'unavailable', 'this mirror cannot send typed turns')
    if (state.state !== 'online') throw new TypedTextError(503, 'offline', 'the hub is unreachable: typed questions need the hub')
    await client.publish('nodeTurnText', { node: nodeId }, { text })
    screen.update({ transcript: text, reply: '', activity: 'thinking' })
  }

  private onEvent(ev: { type: string; text?: string }): void {
    if (ev.type === 'transcript') this.deps.screen.update({ transcript: ev.text ?? '' })
    if (ev.type === 'reply' || ev.type === 'reply_partial') this.deps.screen.update({ reply: ev.text ?? '', activity: 'idle' })
    if (ev.type === 'turn_error') this.deps.screen.update({ activity: 'idle' })
  }

  stop(): void {
    this.deps.screen.onText = undefined
    this.deps.state.off('state', this.onState)
    this.deps.presence.off('change', this.onPresence)
    this.deps.settings.off('change', this.onSettings)
  }
}
