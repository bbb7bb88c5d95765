// Text turns: a turn typed instead of spoken (the mirror's keyboard, Node-RED, Home Assistant,
// `mirrormesh ask --typed`), by MQTT (nodes/{node}/turn/text) or HTTP (POST /api/turns). It runs
// the pipeline after ASR (memory, skills, LLM, TTS to that node), so no ASR model is involved.
import type { Feature, Handlers, Logger } from '@mirrormesh/broker'
import { userKey } from '../memory/keys.js'
import type { Pipeline } from '../pipeline/index.js'
import type { TextTurnResult } from '../pipeline/turns.js'
import type { NodeRegistry } from '../registry.js'

export class TextTurnError extends Error {
  constructor(readonly code: 'unknown_node' | 'unavailable' | 'bad_user', message: string) { super(message) }
}

export class TextTurnsFeature implements Feature {
  readonly name = 'text-turns'
  readonly handlers: Handlers = {
    nodeTurnText: (m) => {
      // Several hubs see every typed turn on the broker: only the node's hub answers it.
      if (this.serves && !this.serves(m.params.node!)) return
      // The broker let only that node (or an observer) publish here: no registry entry needed,
      // so the hub's own page, a node that never heartbeats, can send typed turns too.
      this.turn(m.params.node!, m.data.text, m.data.user, false)
        .catch((err: unknown) => this.log.warn({ nodeId: m.params.node, err: (err as Error).message }, 'text turn refused'))
    },
  }

  /** Scale-out (assignment.ts): whether this hub serves the node now; unset, it serves every node. */
  serves: ((node: string) => boolean) | undefined

  constructor(private readonly pipeline: () => Pipeline | undefined, private readonly registry: NodeRegistry, private readonly log: Logger) {}

  /** Runs one typed turn for a known node; resolves with its reply once it has ended. */
  async turn(nodeId: string, text: string, user?: string, mustBeKnown = true): Promise<TextTurnResult> {
    const p = this.pipeline()
    if (!p) throw new TextTurnError('unavailable', 'the voice pipeline is not running (PIPELINE_ENABLED=false, or it failed to start)')
    if (mustBeKnown && !this.registry.get(nodeId)) throw new TextTurnError('unknown_node', `node ${nodeId} is not known to this hub (it registers when it first connects)`)
    const key = user === undefined ? undefined : userKey(user)
    if (user !== undefined && !key) throw new TextTurnError('bad_user', 'user must have letters or digits in it')
    return p.turns.textTurn(nodeId, text.trim(), key)
  }
}
