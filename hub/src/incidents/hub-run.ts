// Did the previous hub run end cleanly? A small marker file, <stateDir>/hub-run.json, says
// {startedAt, aliveAt, stoppedAt?}: written at start (no stoppedAt), refreshed while running
// (aliveAt: when a killed run was last seen alive), and given stoppedAt by a clean stop. At the
// next start a marker without stoppedAt means the last run crashed, was killed or lost power.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { writeAtomic } from '@mirrormesh/broker'

export interface HubRunMarker { pid: number; startedAt: number; aliveAt: number; stoppedAt?: number }

export interface PreviousRun { clean: boolean; startedAt: number; lastAliveAt: number }

export class HubRunFile {
  readonly file: string

  constructor(stateDir: string) {
    this.file = join(stateDir, 'hub-run.json')
  }

  /** The previous run as the marker left it; null on the first start (or an unreadable marker). */
  async previous(): Promise<PreviousRun | null> {
    const text = await readFile(this.file, 'utf8').catch(() => null)
    if (text === null) return null
    try {
      const m = JSON.parse(text) as Partial<HubRunMarker>
      if (typeof m.startedAt !== 'number') return null
      const aliveAt = typeof m.aliveAt === 'number' ? m.aliveAt : m.startedAt
      return typeof m.stoppedAt === 'number'
        ? { clean: true, startedAt: m.startedAt, lastAliveAt: m.stoppedAt }
        : { clean: false, startedAt: m.startedAt, lastAliveAt: aliveAt }
    } catch {
      return null
    }
  }

  write(m: HubRunMarker): Promise<void> {
    return writeAtomic(this.file, JSON.stringify(m) + '\n')
  }
}
