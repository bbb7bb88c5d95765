// Offline emergency mode on the node: keeps the hub's reply bundle in sync, answers
// utterances from it while the hub is gone (grammar recogniser + cached audio), journals
// every offline turn, and replays the journal when the hub is back.
import { join } from 'node:path'
import { mkdir, rm } from 'node:fs/promises'
import type { Logger, MeshClient } from '@mirrormesh/broker'
import { BundleStore } from './offline/bundle-store.js'
import { AckWaiter, FallbackLog, OfflineJournal, journalReplayTask, offlineTurnEvent } from './offline/journal.js'
import { OfflineRecognizer } from './offline/recognizer.js'
import { OfflineResponder } from './offline/responder.js'
import { OfflineTimers } from './offline/timers.js'
import { readDictionaryWords } from './speech/asr-pocketsphinx.js'
import type { NodeStateMachine } from './state.js'
import type { Screen } from './screen.js'
import type { OfflineAnswerer, OfflineTurn, VoiceLoop } from './voice.js'

export class OfflineMode implements OfflineAnswerer {
  private store!: BundleStore
  journal!: OfflineJournal
  private fallbackLog!: FallbackLog
  private responder: OfflineResponder | undefined
  private recognizer: OfflineRecognizer | undefined
  private loadedVersion: string | undefined
  private readonly acks = new AckWaiter()
  private readonly timers: OfflineTimers
  private hubHttpUrl = ''

  constructor(private readonly opts: {
    dir: string
    nodeId: string
    hubHttpUrl: string
    client: MeshClient
    state: NodeStateMachine
    voice: VoiceLoop
    screen?: Screen
    log: Logger
  }) {
    this.hubHttpUrl = opts.hubHttpUrl
    this.timers = new OfflineTimers({ onDone: (t) => this.timerDone(t.label) })
  }

  async start(): Promise<void> {
    const { dir, log } = this.opts
    await mkdir(dir, { recursive: true })
    this.store = await BundleStore.open(join(dir, 'bundle'), log)
    this.journal = await OfflineJournal.open(join(dir, 'journal'), { maxEntries: 500 }, log)
    this.fallbackLog = new FallbackLog(join(dir, 'journal'))
    // A bundle that cannot be made ready (e.g. no room for its grammar on a full disk) must not
    // stop the agent: it runs without offline answers and tries again at the next announcement.
    await this.reload().catch((err: unknown) => this.reloadFailed(err))
    this.opts.state.addRecoveryTask(journalReplayTask(this.journal,
      (ev) => this.opts.client.publish('nodeEvents', { node: this.opts.nodeId }, ev as never),
      this.acks.wait, log))
  }

  /** A hub event for this node: journal acks trim the journal. */
  onEvent(ev: { type: string; ids?: unknown }): void {
    if (ev.type === 'journal_ack' && Array.isArray(ev.ids)) this.acks.onAck(ev.ids.filter((x): x is string => typeof x === 'string'))
  }

  /** cache/manifest announced a bundle: fetch it if new, then rebuild the grammar. */
  async onManifest(m: { version: string; sha256: string; url?: string }): Promise<void> {
    await this.store.sync({ version: m.version, sha256: m.sha256, url: m.url ?? `/api/bundle/${m.version}/manifest.json` }, this.hubHttpUrl)
    // Also when the bundle was already installed: an earlier reload may have failed (disk full).
    await this.reload().catch((err: unknown) => this.reloadFailed(err))
  }

  private reloadFailed(err: unknown): void {
    const version = this.store.current()?.manifest.version
    const why = (err as NodeJS.ErrnoException)?.code === 'ENOSPC' ? 'disk full (ENOSPC)' : (err as Error)?.message
    this.opts.log.error({ version, using: this.loadedVersion ?? null, err: (err as Error)?.message },
      `offline reply bundle ${version} not made ready: ${why}; offline answers use ${this.loadedVersion ?? 'no bundle'}`)
    // The grammar is written to a temp file first: do not leave a partial one taking space.
    void rm(`${join(this.opts.dir, 'offline-grammar.gram')}.tmp`, { force: true }).catch(() => undefined)
  }

  get bundleVersion(): string | undefined {
    return this.loadedVersion
  }

  private async reload(): Promise<void> {
    const cur = this.store.current()
    if (!cur || cur.manifest.version === this.loadedVersion) return
    const responder = new OfflineResponder(cur, this.opts.log)
    await responder.preload()
    const grammarPath = join(this.opts.dir, 'offline-grammar.gram')
    let dictionary: Set<string> | undefined
    try { dictionary = readDictionaryWords() } catch { dictionary = undefined }
    await responder.recognizerGrammar(grammarPath, { dictionary })
    this.recognizer = new OfflineRecognizer({ grammarPath, log: this.opts.log })
    this.responder = responder
    this.loadedVersion = cur.manifest.version
    this.opts.log.info({ version: cur.manifest.version, replies: cur.manifest.replies.length }, 'offline reply bundle ready')
  }

  /** Start recognising an utterance as it is spoken; undefined while no bundle is ready. */
  begin(turnId: number): OfflineTurn | undefined {
    const { responder, recognizer } = this
    if (!responder || !recognizer) return undefined
    const ctl = new AbortController()
    const session = recognizer.start(ctl.signal)
    return {
      write: (pcm) => session.write(pcm),
      finish: async (endOfSpeechAt) => {
        const rec = await session.finish()
        const out = responder.answerFor(rec, new Date())
        this.opts.screen?.update({ transcript: rec.confident ? rec.text : '', reply: out.text })
        if (out.pcm.length) this.opts.voice.play(out.pcm, turnId)
        const reply = out.reply
        if (reply?.timerMs) this.timers.set(reply.timerMs, reply.text)
        if (reply?.stop) this.timers.cancelAll()
        // The journal keeps the turn in memory when the disk is full (and logs it); the
        // fallback log is best effort. Neither may cost the user the answer or the turn.
        await this.journal.append({ transcript: rec.confident ? rec.text : '', reply: out.text, ...(out.matched && reply ? { skill: reply.skill } : {}), ...(out.matched && reply?.action ? { action: reply.action } : {}), at: endOfSpeechAt })
        await this.fallbackLog.write(this.opts.state.state, rec.text, out.text).catch((err: unknown) => this.opts.log.warn(
          { file: this.fallbackLog.file, err: (err as Error)?.message },
          `fallback log not written: ${(err as NodeJS.ErrnoException)?.code === 'ENOSPC' ? 'disk full (ENOSPC)' : (err as Error)?.message}`))
        this.opts.log.info({ turnId, matched: out.matched, confident: rec.confident, reason: rec.reason, recognitionMs: rec.latencyMs, pii: { heard: rec.text, replied: out.text } }, 'offline turn answered')
      },
    }
  }

  private timerDone(label: string): void {
    this.opts.screen?.update({ reply: `${label}: done` })
    const r = this.responder?.answer('timer done')
    if (r?.pcm.length) this.opts.voice.play(r.pcm, 0)
  }

  close(): void {
    this.timers.cancelAll()
  }

  /** For tests and the bug bundle: the journal entries not yet acknowledged. */
  pending() {
    return this.journal.pending().map((e) => offlineTurnEvent(e))
  }
}
