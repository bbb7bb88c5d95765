// The offline journal and its replay to the hub (nodes/{id}/request/replay → response/replay),
// on every node whatever its audio source: a journal left by an earlier run (a node whose
// microphone is gone now, AUDIO_SOURCE=none, or a voice feature that fails) is still replayed
// once the hub is reachable. Offline mode (features/offline.ts) writes to the same journal.
import { join } from 'node:path'
import type { Feature, Handlers, Logger, MeshClient } from '@mirrormesh/broker'
import type { AgentConfig } from '../config.js'
import { OfflineJournal } from '../offline/journal.js'
import { JournalReplayer } from '../offline/replay.js'
import type { NodeStateMachine } from '../state.js'

/** Where the journal lives: the same folder offline mode has always used. */
export const journalDir = (stateDir: string): string => join(stateDir, 'offline', 'journal')

export class JournalFeature implements Feature {
  readonly name = 'journal'
  readonly handlers: Handlers
  journal: OfflineJournal | undefined
  /** Why the journal did not open (offline mode cannot run without it). */
  failure: string | undefined
  private replayer: JournalReplayer | undefined

  constructor(private readonly deps: { config: AgentConfig; client: MeshClient; state: NodeStateMachine; log: Logger }) {
    this.handlers = {
      nodeReplayResponse: (m) => this.replayer?.onResponse(m.data),
    }
  }

  async start(): Promise<void> {
    const { config, client, state, log } = this.deps
    const jlog = log.child({ component: 'offline' })
    try {
      this.journal = await OfflineJournal.open(journalDir(config.stateDir), { maxEntries: 500 }, jlog)
    } catch (err) {
      this.failure = (err as Error)?.message ?? String(err)
      throw err
    }
    this.replayer = new JournalReplayer(this.journal, (req) => client.publish('nodeReplayRequest', { node: config.nodeId }, req), jlog)
    // Runs at every recovery, the first one included (the node starts offline).
    state.addRecoveryTask(this.replayer.task)
  }
}
