// The node's voice loop: microphone → listener (VAD, wake word, push-to-talk) → either
// audio/in frames to the hub (online) or the offline answerer (hub gone); audio/out
// frames → speaker. Barge-in stops playback at once and tells the hub. The node reports
// its own TTFA (end of speech → first sample played).
import { AudioFlags, decodeAudioFrame, encodeAudioFrame, type Logger, type MeshClient, type NodeEvent } from '@mirrormesh/broker'
import type { AudioSink } from './audio/sink.js'
import type { Listener } from './audio/listener.js'
import type { Screen } from './screen.js'
import type { NodeStateMachine } from './state.js'

/** One offline utterance: recognition runs while the user speaks; finish() answers and plays. */
export interface OfflineTurn {
  write(pcm: Int16Array): void
  finish(endOfSpeechAt: number): Promise<void>
  /**
   * Set by the voice loop: the answerer calls it when it already holds a complete, confident
   * grammar phrase and a short silence followed (offline early endpoint). It ends the
   * listener's utterance now (reason 'endpoint'; finish() follows at once) instead of after
   * the VAD's full end silence, and returns true; false if the utterance is no longer open.
   */
  onEndpoint?: () => boolean
}

/** Answers utterances from the offline reply bundle (offline mode); undefined until a bundle is ready. */
export interface OfflineAnswerer {
  /**
   * `resumable`: opened by speech alone (no wake word, no button), so it may be the user going
   * on after an early endpoint cut in ("what time … is it"); the answerer then hears it as one.
   */
  begin(turnId: number, opts?: { resumable?: boolean }): OfflineTurn | undefined
}

/**
 * `audio`: what an online turn sent so far, kept (bounded) so that if the hub goes away before
 * it answers, the turn can still be answered offline instead of being lost. `lost`: the hub went
 * away mid-turn and no offline answer is possible (no reply bundle): recorded as failed at its end.
 */
/** `wireId`: the turn id on the wire — the listener's, or an early-ended turn's that this speech continues (onTurnEnd). */
interface Utterance { turnId: number; wireId: number; online: boolean; seq: number; offline?: OfflineTurn; audio: Int16Array[]; samples: number; lost?: boolean; endedByHub?: boolean; continues?: boolean }

/** An online turn whose speech has ended, waiting for the hub's reply. */
interface Awaiting { turnId: number; audio: Int16Array[]; endOfSpeechAt: number }

/**
 * Speech this soon after the hub ended a turn early continues that turn. Generous: the hub applies
 * its own window (EARLY_END_RESUME_MS) and treats a later one as a new turn.
 */
const RESUME_MS = 1000

/** 30 s at 16 kHz: longer online turns are not kept for an offline retry (the listener caps utterances well below this). */
const MAX_KEPT_SAMPLES = 30 * 16_000

export class VoiceLoop {
  private utterance: Utterance | undefined
  /** End of speech per turn, for the TTFA report; bounded. */
  private readonly eos = new Map<number, { at: number; kind: string }>()
  private replyTurn: number | undefined
  /** The reply a barge-in stopped: its frames still in flight are not played (a straggler after the stop). */
  private stoppedTurn: number | undefined
  /** The last turn the hub ended early, for speech that goes on right after it (see onTurnEnd). */
  private hubEnded: { wireId: number; at: number } | undefined
  private awaiting: Awaiting | undefined
  offline: OfflineAnswerer | undefined
  /** Microphone muted (nodes/{id}/set {"mute":true}): no utterance opens, nothing leaves the node. */
  muted = false

  constructor(private readonly opts: {
    nodeId: string
    client: MeshClient
    audioInTopic: string
    state: NodeStateMachine
    listener: Listener
    sink: AudioSink
    screen?: Screen
    log: Logger
  }) {}

  start(): void {
    const { listener, sink, log } = this.opts
    listener.on('utterance-start', (u) => {
      if (this.muted) return void log.debug({ turnId: u.turnId, trigger: u.trigger }, 'utterance ignored: microphone muted')
      const online = this.opts.state.state === 'online'
      // Online, the hub does its own endpointing: only offline turns can end early.
      const offline = online ? undefined : this.offline?.begin(u.turnId, { resumable: u.score === undefined && (u.trigger === 'vad' || u.trigger === 'barge-in') })
      if (offline) offline.onEndpoint = () => {
        if (this.utterance?.offline !== offline) return false
        listener.endUtterance('endpoint')
        return true
      }
      // Speech alone (no wake word, no button) right after the hub ended a turn early is the user going
      // on: it is sent under that turn's id, and the hub hears both parts as one utterance (README "End of turn").
      const h = this.hubEnded
      this.hubEnded = undefined
      const continues = online && h !== undefined && Date.now() - h.at <= RESUME_MS && u.score === undefined && (u.trigger === 'vad' || u.trigger === 'barge-in')
      if (continues && this.stoppedTurn === h.wireId) this.stoppedTurn = undefined
      this.utterance = { turnId: u.turnId, wireId: continues ? h.wireId : u.turnId, continues, online, seq: 0, offline, audio: [], samples: 0 }
      // Arbitration evidence: mirrors of one room that all woke compare wake-word scores at the hub.
      if (online && u.trigger === 'wake' && u.score !== undefined) this.opts.client.publish('nodeEvents', { node: this.opts.nodeId }, { v: 1, ts: Date.now(), type: 'wake', turnId: this.utterance.wireId, score: Math.min(1, Math.max(0, u.score)) }).catch(() => undefined)
      log.debug({ turnId: u.turnId, trigger: u.trigger, online: this.utterance.online }, 'utterance started')
      this.opts.screen?.update({ activity: 'listening', transcript: '', reply: '' })
    })
    listener.on('frame', (pcm) => {
      const u = this.utterance
      if (!u) return
      if (u.online) {
        // A continuation's first frame also cancels the early turn, in case the hub is still answering it.
        this.send(u, pcm, u.seq === 0 ? AudioFlags.start | (u.continues ? AudioFlags.cancel : 0) : 0)
        if (u.samples + pcm.length <= MAX_KEPT_SAMPLES) { u.audio.push(pcm); u.samples += pcm.length }
      } else u.offline?.write(pcm)
    })
    listener.on('utterance-end', (e) => {
      const u = this.utterance
      this.utterance = undefined
      if (!u || u.turnId !== e.turnId) return
      log.debug({ turnId: e.turnId, reason: e.reason, frames: e.frames }, 'utterance ended')
      this.remember(u.wireId, e.endOfSpeechAt, u.online ? 'hub' : 'offline')
      this.opts.screen?.update({ activity: 'thinking' })
      if (u.online) {
        this.awaiting = u.samples <= MAX_KEPT_SAMPLES && u.audio.length ? { turnId: u.wireId, audio: u.audio, endOfSpeechAt: e.endOfSpeechAt } : undefined
        // The hub ended it early (onTurnEnd): it answers already, an end flag would be one too many.
        if (u.endedByHub) this.hubEnded = { wireId: u.wireId, at: Date.now() }
        else this.send(u, new Int16Array(0), AudioFlags.end)
        return
      }
      if (u.lost) {
        log.warn({ turnId: e.turnId }, 'turn failed: the hub became unreachable mid-turn and no reply bundle is ready')
        this.opts.screen?.update({ activity: 'idle', reply: 'The hub is unreachable.' })
        return
      }
      if (!u.offline) {
        log.warn({ turnId: e.turnId }, 'offline and no reply bundle yet: utterance dropped')
        this.opts.screen?.update({ activity: 'idle' })
        return
      }
      u.offline.finish(e.endOfSpeechAt)
        .catch((err: unknown) => log.error({ err }, 'offline answer failed'))
        .finally(() => this.opts.screen?.update({ activity: 'idle' }))
    })
    listener.on('barge-in', (b) => {
      // Stop talking at once, then tell the hub which reply was interrupted.
      sink.stop()
      listener.speaking = false
      this.stoppedTurn = this.replyTurn
      if (this.replyTurn !== undefined && this.opts.state.state === 'online') {
        this.opts.client.publishRaw(this.opts.audioInTopic, encodeAudioFrame({ flags: AudioFlags.bargeIn, turnId: this.replyTurn, seq: 0, samples: new Int16Array(0) }), 0, false).catch(() => undefined)
      }
      log.info({ interrupted: this.replyTurn, turnId: b.turnId }, 'barge-in')
    })
    listener.on('error', (err) => log.error({ err }, 'microphone error'))
    // The hub gone mid-turn: the turn must not be streamed into the void nor silently lost.
    this.opts.state.on('state', (c) => { if (c.from === 'online' && c.to !== 'online') this.hubLost() })
    sink.onFirstSample(({ turnId, at }) => {
      const e = this.eos.get(turnId)
      if (!e) return
      const ms = at - e.at
      this.opts.screen?.update({ activity: 'speaking', hubLatencyMs: e.kind === 'hub' ? ms : this.opts.screen.state.hubLatencyMs })
      if (e.kind === 'hub') {
        this.opts.client.publish('nodeEvents', { node: this.opts.nodeId }, { v: 1, ts: Date.now(), type: 'ttfa', turnId, ms, kind: 'node' }).catch(() => undefined)
      }
    })
    void listener.start().catch(() => undefined)
  }

  /**
   * The hub went away. A turn being spoken carries on offline (its audio so far goes to the
   * offline recogniser, the rest follows); a finished turn still waiting for the hub's reply is
   * answered offline now. Offline, an unrecognised turn gets the bundle's "hub unreachable"
   * reply and is journaled like any offline turn; with no bundle it is logged as failed.
   */
  private hubLost(): void {
    const log = this.opts.log
    const u = this.utterance
    if (u?.online) {
      u.online = false
      u.offline = this.offline?.begin(u.turnId)
      if (u.offline) {
        const turn = u.offline
        turn.onEndpoint = () => {
          if (this.utterance?.offline !== turn) return false
          this.opts.listener.endUtterance('endpoint')
          return true
        }
        for (const pcm of u.audio) turn.write(pcm)
        log.info({ turnId: u.turnId, keptMs: Math.round(u.samples / 16) }, 'hub gone mid-turn: the turn goes on offline')
      } else u.lost = true
      u.audio = []
    }
    const a = this.awaiting
    this.awaiting = undefined
    if (!a || a.turnId === u?.wireId) return
    const turn = this.offline?.begin(a.turnId)
    if (!turn) {
      log.warn({ turnId: a.turnId }, 'turn failed: the hub became unreachable before answering and no reply bundle is ready')
      this.opts.screen?.update({ activity: 'idle', reply: 'The hub is unreachable.' })
      return
    }
    log.info({ turnId: a.turnId }, 'hub gone before answering: the turn is answered offline')
    for (const pcm of a.audio) turn.write(pcm)
    turn.finish(a.endOfSpeechAt)
      .catch((err: unknown) => log.error({ err, turnId: a.turnId }, 'offline answer failed'))
      .finally(() => this.opts.screen?.update({ activity: 'idle' }))
  }

  /** Play through the speaker and keep the listener's barge-in detection in step. */
  play(pcm: Int16Array, turnId: number): void {
    const { sink, listener } = this.opts
    sink.play(pcm, { turnId })
    listener.speaking = true
    void sink.idle.then(() => {
      if (!sink.playing) {
        listener.speaking = false
        this.opts.screen?.update({ activity: 'idle' })
      }
    })
  }

  remember(turnId: number, at: number, kind: string): void {
    this.eos.set(turnId, { at, kind })
    if (this.eos.size > 32) this.eos.delete(this.eos.keys().next().value!)
  }

  /** audio/out from the hub. */
  onAudioOut(payload: Buffer): void {
    const f = decodeAudioFrame(payload)
    if (typeof f === 'string') return
    if (f.flags & AudioFlags.cancel) {
      if (f.turnId === this.replyTurn) this.opts.sink.stop()
      return
    }
    if (f.turnId === this.stoppedTurn) return
    this.replyTurn = f.turnId
    if (this.awaiting?.turnId === f.turnId) this.awaiting = undefined
    if (f.samples.length) this.play(f.samples, f.turnId)
  }

  /**
   * nodes/{id}/turn/end: the hub heard a whole command and answers it (online early end of
   * turn). Stop streaming it now; speech going on after this opens a new turn, which the hub
   * hears together with this one (README "End of turn").
   */
  onTurnEnd(turnId: number): void {
    const u = this.utterance
    if (!u || !u.online || u.wireId !== turnId) return
    u.endedByHub = true
    this.opts.log.debug({ turnId }, 'the hub ended the turn early: streaming stopped')
    this.opts.listener.endUtterance('endpoint')
  }

  /** events from the hub: what the screen shows. */
  onEvent(ev: NodeEvent): void {
    // The hub has answered (or refused) the turn: nothing left to answer offline.
    if ((ev.type === 'reply' || ev.type === 'turn_error' || ev.type === 'busy') && this.awaiting?.turnId === ev.turnId) this.awaiting = undefined
    if (ev.type === 'transcript') this.opts.screen?.update({ transcript: ev.text })
    // reply_partial: the reply so far, sent as each sentence starts playing; reply: all of it, at the end.
    if (ev.type === 'reply' || ev.type === 'reply_partial') this.opts.screen?.update({ reply: ev.text })
    if (ev.type === 'stop') this.opts.sink.stop()
    // Another mirror in the room heard this request better and answers it: stop streaming, say who.
    if (ev.type === 'arbitrated' && this.utterance?.wireId === ev.turnId) {
      this.utterance = undefined
      this.opts.listener.endUtterance('manual')
      this.opts.log.info({ turnId: ev.turnId, winner: ev.winner }, 'another mirror answers this request')
      this.opts.screen?.update({ activity: 'idle', reply: `${ev.winner} is answering` })
    }
    // A turn that ends without audio to play (error, busy without audio, text-only reply) would
    // otherwise leave the screen on "thinking": playback's end is what normally sets idle.
    const silentEnd = ev.type === 'turn_error' || (ev.type === 'reply' && !ev.audio)
    if (silentEnd && !this.opts.sink.playing) this.opts.screen?.update({ activity: 'idle' })
  }

  pushToTalk(): number {
    return this.opts.listener.pushToTalk()
  }

  private send(u: Utterance, pcm: Int16Array, flags: number): void {
    this.opts.client.publishRaw(this.opts.audioInTopic, encodeAudioFrame({ flags, turnId: u.wireId, seq: u.seq++, samples: pcm }), 0, false).catch(() => undefined)
  }
}
