// <stateDir>/hub.pid while the hub runs: {pid, http}. `mirrormesh restore` refuses while it names a
// live process, and `mirrormesh backup` finds the running hub's API through it. The broker's
// LevelDB lock is the second check (a hub killed with SIGKILL leaves a stale pid file behind).
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { writeAtomic, type Feature } from '@mirrormesh/broker'

export interface HubPidFile { pid: number; http?: { host: string; port: number }; startedAt: string }

export const hubPidPath = (stateDir: string) => join(stateDir, 'hub.pid')

export class StateLockFeature implements Feature {
  readonly name = 'state-lock'
  private written = false

  constructor(private readonly stateDir: string, private readonly http: () => { host: string; port: number } | undefined) {}

  async start(): Promise<void> {
    const body: HubPidFile = { pid: process.pid, http: this.http(), startedAt: new Date().toISOString() }
    await writeAtomic(hubPidPath(this.stateDir), JSON.stringify(body) + '\n', { mode: 0o644 })
    this.written = true
  }

  async stop(): Promise<void> {
    if (!this.written) return
    // Only our own file: a second hub started by mistake must not delete the first one's.
    const cur = await readFile(hubPidPath(this.stateDir), 'utf8').then((t) => JSON.parse(t) as HubPidFile, () => undefined)
    if (cur?.pid === process.pid) await rm(hubPidPath(this.stateDir), { force: true })
  }
}
