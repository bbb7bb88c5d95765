// Offline emergency mode on the node: keeps the hub's reply bundle in sync, answers
// utterances from it while the hub is gone (grammar recogniser + cached audio), journals
// every offline turn, and replays the journal when the hub is back.
//
// Early endpoint: the recognizer may hold a complete, confident phrase ~100 ms after the
// speech stopped (offline/recognizer.ts); the turn then ends at once and the reply plays,
// ~0.5 s sooner than waiting for the listener's end silence. The risk is answering someone who
// only paused. Guarded three ways: a phrase that a longer grammar phrase with another reply
// extends is not answered early (responder.answersEarly); the recognizer refuses phrases that
// look cut short; and speech resuming within the listener's end silence (resumeWindowMs) is
// heard together with the early turn as one utterance — the listener's barge-in has already
// stopped the reply — so the early turn's effects (journal, timers) wait for that window to pass.
// With a wake word, speech during the reply is not barge-in: the early answer stands.
import type { FetchImpl } from './offline/hub-fetch.js'
import { join } from 'node:path'
import { mkdir, rm } from 'node:fs/promises'
import type { ClockSettings, Logger, MeshClient, ReplayResponse } from '@mirrormesh/broker'
import { BundleStore } from './offline/bundle-store.js'
import { FallbackLog, OfflineJournal } from './offline/journal.js'
import { JournalReplayer, replayTurn } from './offline/replay.js'
import { OfflineRecognizer, writeGrammarDictionary, type Recognition } from './offline/recognizer.js'
import { OfflineResponder, type OfflineAnswer } from './offline/responder.js'
import { OfflineTimers } from './offline/timers.js'
import { readDictionaryWords } from '@mirrormesh/speech'
import type { NodeStateMachine } from './state.js'
import type { Screen } from './screen.js'
import type { OfflineAnswerer, OfflineTurn, VoiceLoop } from './voice.js'

/** An early-answered turn whose effects wait for the resume window. */
interface PendingEarly {
  turnId: number
  at: number
  heard: string
  audio: Int16Array[]
  timer: NodeJS.Timeout
  commit: () => Promise<void>
}

export class OfflineMode implements OfflineAnswerer {
  private store!: BundleStore
  journal!: OfflineJournal
  private fallbackLog!: FallbackLog
  private responder: OfflineResponder | undefined
  private recognizer: OfflineRecognizer | undefined
  private loadedVersion: string | undefined
  private replayer: JournalReplayer | undefined
  private readonly timers: OfflineTimers
  private hubHttpUrl = ''
  private pendingEarly: PendingEarly | undefined
  private readonly endpointSilenceMs: number
  private readonly resumeWindowMs: number

  constructor(private readonly opts: {
    dir: string
    nodeId: string
    hubHttpUrl: string
    /** How bundles are fetched (offline/hub-fetch.ts: CA and node credential); default: global fetch. */
    fetch?: FetchImpl
    client: MeshClient
    state: NodeStateMachine
    /**
     * The journal, opened and replayed by the agent's journal feature (features/journal.ts) on
     * every node; without it (unit tests) offline mode opens `<dir>/journal` and replays it itself.
     */
    journal?: OfflineJournal
    voice: VoiceLoop
    screen?: Screen
    log: Logger
    /**
     * Early endpoint (see the header). silenceMs: quiet after a whole phrase that ends the turn
     * (default 100; 0 = off, wait for the listener's VAD). resumeWindowMs: speech opening a turn
     * this soon after an early answer continues it (default 600: what the listener would have waited for).
     */
    endpoint?: { silenceMs?: number; resumeWindowMs?: number }
    /** The node's time zone and 12/24-hour clock (its hub config), read at each answer. */
    clock?: () => ClockSettings
    /** A reply's side effect for the node itself (e.g. the volume skill), as the hub would have sent it. */
    onReplyEvent?: (event: { type: string; [k: string]: unknown }) => void
  }) {
    this.endpointSilenceMs = opts.endpoint?.silenceMs ?? 100
    this.resumeWindowMs = opts.endpoint?.resumeWindowMs ?? 600
    this.hubHttpUrl = opts.hubHttpUrl
    this.timers = new OfflineTimers({ onDone: (t) => this.timerDone(t.label) })
  }

  async start(): Promise<void> {
    const { dir, log } = this.opts
    await mkdir(dir, { recursive: true })
    this.store = await BundleStore.open(join(dir, 'bundle'), log)
    this.journal = this.opts.journal ?? await OfflineJournal.open(join(dir, 'journal'), { maxEntries: 500 }, log)
    this.fallbackLog = new FallbackLog(join(dir, 'journal'))
    // A bundle that cannot be made ready (e.g. no room for its grammar on a full disk) must not
    // stop the agent: it runs without offline answers and tries again at the next announcement.
    await this.reload().catch((err: unknown) => this.reloadFailed(err))
    if (this.opts.journal) return
    this.replayer = new JournalReplayer(this.journal,
      (req) => this.opts.client.publish('nodeReplayRequest', { node: this.opts.nodeId }, req), log)
    this.opts.state.addRecoveryTask(this.replayer.task)
  }

  /** The hub's answer on nodes/{id}/response/replay: the journal loses what it answered. */
  onReplayResponse(res: ReplayResponse): void {
    this.replayer?.onResponse(res)
  }

  /** cache/manifest announced a bundle: fetch it if new (from `hubHttpUrl`: the manifest may name the hub's port), then rebuild the grammar. */
  async onManifest(m: { version: string; sha256: string; url?: string }, hubHttpUrl = this.hubHttpUrl): Promise<void> {
    await this.store.sync({ version: m.version, sha256: m.sha256, url: m.url ?? `/api/bundle/${m.version}/manifest.json` }, hubHttpUrl, this.opts.fetch)
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
    const responder = new OfflineResponder(cur, this.opts.log, this.opts.clock)
    await responder.preload()
    const grammarPath = join(this.opts.dir, 'offline-grammar.gram')
    let dictionary: Set<string> | undefined
    try { dictionary = readDictionaryWords() } catch { dictionary = undefined }
    const phrases = await responder.recognizerGrammar(grammarPath, { dictionary })
    // The grammar's words only: pocketsphinx starts in ~30 ms instead of ~150 ms (two run per turn).
    let dictPath: string | undefined = join(this.opts.dir, 'offline-grammar.dict')
    await writeGrammarDictionary(phrases, dictPath).catch((err: unknown) => {
      this.opts.log.warn({ err: (err as Error)?.message }, 'grammar dictionary not written; the recognizer uses the full one')
      dictPath = undefined
    })
    this.recognizer = new OfflineRecognizer({ grammarPath, dictPath, endpointSilenceMs: this.endpointSilenceMs, log: this.opts.log })
    this.responder = responder
    this.loadedVersion = cur.manifest.version
    this.opts.log.info({ version: cur.manifest.version, replies: cur.manifest.replies.length }, 'offline reply bundle ready')
  }

  /** Start recognising an utterance as it is spoken; undefined while no bundle is ready. */
  begin(turnId: number, opts: { resumable?: boolean } = {}): OfflineTurn | undefined {
    const { responder, recognizer } = this
    const log = this.opts.log
    if (!responder || !recognizer) return undefined
    // The user going on after an early answer: withdraw it, hear both parts as one utterance.
    const prev = this.pendingEarly
    const resumed = prev && opts.resumable && Date.now() - prev.at <= this.resumeWindowMs ? prev : undefined
    if (prev) {
      this.pendingEarly = undefined
      clearTimeout(prev.timer)
      if (resumed) log.info({ turnId, withdrawn: resumed.turnId, afterMs: Date.now() - prev.at, pii: { heard: prev.heard } }, 'speech resumed after an early offline answer: withdrawn, heard with the new turn')
      else void prev.commit().catch((err: unknown) => log.error({ err }, 'offline turn not journaled'))
    }
    const ctl = new AbortController()
    const audio: Int16Array[] = resumed ? [...resumed.audio] : []
    const turn: OfflineTurn = {
      write: (pcm) => {
        audio.push(pcm)
        session.write(pcm)
      },
      finish: async (endOfSpeechAt) => {
        const rec = await session.finish()
        const out = responder.answerFor(rec, new Date())
        this.opts.screen?.update({ transcript: rec.confident ? rec.text : '', reply: out.text })
        if (out.pcm.length) this.opts.voice.play(out.pcm, turnId)
        const commit = (): Promise<void> => this.commit(turnId, rec, out, endOfSpeechAt)
        if (!rec.early) return commit()
        this.pendingEarly = { turnId, at: Date.now(), heard: rec.text, audio, commit, timer: setTimeout(() => {
          if (this.pendingEarly?.commit === commit) this.pendingEarly = undefined
          void commit().catch((err: unknown) => log.error({ err }, 'offline turn not journaled'))
        }, this.resumeWindowMs).unref() }
      },
    }
    const session = recognizer.start(ctl.signal, { prefix: resumed?.audio, onEndpoint: (r) => responder.answersEarly(r.text) && turn.onEndpoint?.() === true })
    return turn
  }

  /** A turn's effects: timers, the journal and the fallback log; then the "answered" log line. */
  private async commit(turnId: number, rec: Recognition, out: OfflineAnswer, at: number): Promise<void> {
    const reply = out.reply
    if (reply?.timerMs) this.timers.set(reply.timerMs, reply.text)
    // "stop" only stops what is playing, as on the hub; "cancel the timer" cancels them (issue #12).
    if (reply?.event?.type === 'timer_cancel') this.timers.cancelAll()
    else if (reply?.event) this.opts.onReplyEvent?.(reply.event)
    // The journal keeps the turn in memory when the disk is full (and logs it); the
    // fallback log is best effort. Neither may cost the user the answer or the turn.
    await this.journal.append({ transcript: rec.confident ? rec.text : '', reply: out.text, ...(out.matched && reply ? { skill: reply.skill } : {}), ...(out.matched && reply?.action ? { action: reply.action } : {}), at })
    await this.fallbackLog.write(this.opts.state.state, rec.text, out.text).catch((err: unknown) => this.opts.log.warn(
      { file: this.fallbackLog.file, err: (err as Error)?.message },
      `fallback log not written: ${(err as NodeJS.ErrnoException)?.code === 'ENOSPC' ? 'disk full (ENOSPC)' : (err as Error)?.message}`))
    // endpoint/at: what ended the utterance and when (early: the reply started then, this line comes after the resume window).
    this.opts.log.info({ turnId, matched: out.matched, confident: rec.confident, reason: rec.reason, recognitionMs: rec.latencyMs, endpoint: rec.early ? 'early' : 'vad', at, pii: { heard: rec.text, replied: out.text } }, 'offline turn answered')
  }

  /** A timer ended (an offline one, or the hub's `timer_done` online): show it and play the bundle's "timer done". */
  timerDone(label: string): void {
    this.opts.screen?.update({ reply: `${label}: done` })
    // The bundle's own clip; a bundle from before it existed plays nothing rather than a fallback reply.
    const pcm = this.responder?.fragment('timer_done')
    if (pcm?.length) this.opts.voice.play(pcm, 0)
  }

  close(): void {
    const p = this.pendingEarly
    this.pendingEarly = undefined
    if (p) {
      clearTimeout(p.timer)
      void p.commit().catch(() => undefined)
    }
    this.timers.cancelAll()
  }

  /** For tests and the bug bundle: the journal entries the hub has not answered, as replayed. */
  pending() {
    return this.journal.pending().map((e) => replayTurn(e))
  }
}
