// nodes/{id}/config, pushed retained by the hub, applied without a restart: room (heartbeat,
// screen), name (screen), volume (the speaker's gain), wake word (remembered; used from the
// next start of the agent, see wakeWordPending). The hub's `volume` events change the same
// volume. What was applied is kept in STATE_DIR/node-config.json, so a node restarted while
// the hub is down keeps its room, name and volume.
import { EventEmitter } from 'node:events'
import { mkdir, readFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { schemas, writeAtomic, type Feature, type Handlers, type Logger, type Payload } from '@mirrormesh/broker'
import type { AgentConfig } from '../config.js'

export interface NodeSettings {
  room: string | null
  name: string | null
  /** Playback volume, percent. */
  volume: number
  /** Wake word the hub asked for (null: push-to-talk only; undefined: never set, the env's WAKE_WORD). */
  wakeWord?: string | null
  /** Time zone and 12/24-hour clock for the time and date answered offline (unset: this machine's zone, 12h). */
  timeZone?: string
  clock?: '12h' | '24h'
}

/** What the hub (or a volume event) set, over the environment's defaults: only these keys are saved. */
interface Saved extends Partial<NodeSettings> {
  /** ts of the last hub config applied: its retained copy, delivered again on every reconnect, is not re-applied over a local volume change. */
  hubTs?: number
}

export interface SettingsEvents {
  change: [now: NodeSettings, changed: (keyof NodeSettings)[]]
}

/** One "volume up/down" step, percent. */
export const VOLUME_STEP = 10

export class ConfigFeature extends EventEmitter<SettingsEvents> implements Feature {
  readonly name = 'config'
  readonly handlers: Handlers
  private saved: Saved
  /** The wake word the running listener was built with; a different one waits for a restart. */
  wakeWordInUse: string | null | undefined
  private readonly file: string
  private writing: Promise<void> = Promise.resolve()

  constructor(private readonly deps: { config: AgentConfig; log: Logger }) {
    super()
    this.file = join(deps.config.stateDir, 'node-config.json')
    this.saved = {}
    this.handlers = {
      nodeConfig: (m) => this.onHubConfig(m.data),
      nodeEvents: (m) => {
        if (m.data.type === 'volume') this.applyVolumeEvent(m.data)
      },
    }
  }

  get settings(): Readonly<NodeSettings> {
    const { hubTs: _, ...s } = this.saved
    return { room: this.deps.config.room ?? null, name: null, volume: 100, ...s }
  }

  /** A hub wake word the running listener does not use yet (it takes effect at the next start). */
  get wakeWordPending(): boolean {
    const w = this.saved.wakeWord
    return w !== undefined && (w === null ? null : wakeWordModel(w)) !== this.wakeWordInUse
  }

  async start(): Promise<void> {
    let text: string
    try {
      text = await readFile(this.file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
      throw err
    }
    const saved = parseSaved(text)
    if (!saved) {
      this.deps.log.warn({ file: this.file }, 'saved node config unreadable; using the settings from the environment until the hub sends one')
      return
    }
    this.saved = saved
    this.deps.log.info({ file: this.file, ...this.settings }, 'node config from the last run applied')
  }

  private onHubConfig(c: Payload<'nodeConfig'>): void {
    if (c.ts === this.saved.hubTs) return
    const next: Saved = { ...this.saved, hubTs: c.ts }
    if (c.room !== undefined) next.room = c.room
    if (c.name !== undefined) next.name = c.name
    if (c.volume !== undefined) next.volume = c.volume
    if (c.wakeWord !== undefined) next.wakeWord = c.wakeWord
    if (c.timeZone !== undefined) next.timeZone = c.timeZone
    if (c.clock !== undefined) next.clock = c.clock
    this.apply(next, 'hub config')
    if (c.wakeWord !== undefined && this.wakeWordPending) {
      this.deps.log.warn({ wakeWord: c.wakeWord, inUse: this.wakeWordInUse ?? null }, 'wake word change takes effect when the agent restarts (the listener keeps its detector)')
    }
  }

  /** The volume skill's effect: from the hub's event, or from the offline bundle's reply. */
  applyVolumeEvent(e: { change?: 'up' | 'down'; level?: number }): void {
    const cur = this.settings.volume
    const volume = e.level ?? Math.min(100, Math.max(0, cur + (e.change === 'up' ? VOLUME_STEP : e.change === 'down' ? -VOLUME_STEP : 0)))
    this.apply({ ...this.saved, volume }, 'volume event')
  }

  private apply(next: Saved, source: string): void {
    const before = this.settings
    const hubTsChanged = next.hubTs !== this.saved.hubTs
    this.saved = next
    const now = this.settings
    const changed = (['room', 'name', 'volume', 'wakeWord', 'timeZone', 'clock'] as const).filter((k) => now[k] !== before[k])
    if (changed.length) {
      this.deps.log.info({ source, changed, room: now.room, name: now.name, volume: now.volume }, 'node config applied')
      this.emit('change', now, changed)
    }
    if (changed.length || hubTsChanged) this.save()
  }

  /** Writes are queued and atomic (writeAtomic): a crash or a full disk mid-write keeps the last good file. */
  private save(): void {
    const text = JSON.stringify(this.saved) + '\n'
    this.writing = this.writing.then(async () => {
      await mkdir(dirname(this.file), { recursive: true })
      await writeAtomic(this.file, text)
    }).catch((err: unknown) => this.deps.log.warn({ file: this.file, err: (err as Error).message }, 'node config not saved; it applies until the agent restarts'))
  }

  /** Resolves when the last change is on disk (tests, stop). */
  flushed(): Promise<void> {
    return this.writing
  }

  async stop(): Promise<void> {
    await this.writing
  }
}

const savedSchema = schemas.nodeConfig.pick({ room: true, name: true, wakeWord: true, volume: true, timeZone: true, clock: true }).extend({ hubTs: schemas.nodeConfig.shape.ts.optional() })

function parseSaved(text: string): Saved | undefined {
  let json: unknown
  try { json = JSON.parse(text) } catch { return undefined }
  const r = savedSchema.safeParse(json)
  if (!r.success) return undefined
  const s: Saved = {}
  for (const k of ['room', 'name', 'volume', 'wakeWord', 'hubTs'] as const) if (r.data[k] !== undefined) Object.assign(s, { [k]: r.data[k] })
  return s
}

/** The openWakeWord model name for a wake word as people write it ("Hey Jarvis" → hey_jarvis); undefined if it cannot be one. */
export function wakeWordModel(w: string): string | undefined {
  const name = w.trim().toLowerCase().replace(/\s+/g, '_')
  return /^[a-z0-9_.-]+$/.test(name) ? name : undefined
}
