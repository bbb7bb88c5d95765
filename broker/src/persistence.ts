// Retained messages in and out of the broker's LevelDB, for backup and restore. A stopped
// hub's database is read directly; a running hub's is locked (and copying live LevelDB files
// is not consistent), so the hub exports its retained messages itself (POST /api/backup/retained).
// Restore writes them into a fresh database before the hub starts.
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import levelPersistence from 'aedes-persistence-level'
import { Level } from 'level'

/** One retained message as it travels in a backup (payload base64: it may be binary). */
export interface RetainedRecord { topic: string; qos: 0 | 1 | 2; payload: string }

interface Packet { topic: string; payload: Buffer | string; qos?: number }
interface RetainedSource { createRetainedStreamCombi(patterns: string[]): Readable }

/** Every retained message of a persistence (live or not), except the broker's own `$SYS` ones. */
export async function collectRetained(persistence: RetainedSource): Promise<RetainedRecord[]> {
  const out = new Map<string, RetainedRecord>()
  for await (const p of persistence.createRetainedStreamCombi(['#']) as AsyncIterable<Packet>) {
    if (p.topic.startsWith('$') || out.has(p.topic)) continue
    const payload = Buffer.isBuffer(p.payload) ? p.payload : Buffer.from(p.payload)
    if (payload.length === 0) continue
    out.set(p.topic, { topic: p.topic, qos: (p.qos ?? 0) as 0 | 1 | 2, payload: payload.toString('base64') })
  }
  return [...out.values()].sort((a, b) => a.topic.localeCompare(b.topic))
}

/** True when the error is LevelDB's "another process has this database open". */
export function isLockedError(err: unknown): boolean {
  for (let e = err as { code?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (e.code === 'LEVEL_LOCKED') return true
  }
  return false
}

async function withDb<T>(dir: string, createIfMissing: boolean, fn: (p: RetainedSource & { storeRetained(p: Packet): Promise<void> }) => Promise<T>): Promise<T> {
  const db = new Level<string, Buffer>(dir, { valueEncoding: 'buffer' })
  await db.open({ createIfMissing })
  try {
    return await fn(levelPersistence(db) as RetainedSource & { storeRetained(p: Packet): Promise<void> })
  } finally {
    await db.close()
  }
}

/** The retained messages of a stopped broker's database; throws a LEVEL_LOCKED error while a broker has it open. */
export function readRetainedDir(dir: string): Promise<RetainedRecord[]> {
  return withDb(dir, false, collectRetained)
}

/** Write retained messages into the database at `dir` (created if missing); the broker must not be running on it. */
export function writeRetainedDir(dir: string, records: RetainedRecord[]): Promise<void> {
  return withDb(dir, true, async (p) => {
    for (const r of records) {
      await p.storeRetained({ topic: r.topic, qos: r.qos, payload: Buffer.from(r.payload, 'base64'), retain: true, cmd: 'publish', dup: false } as Packet)
    }
  })
}

/** Is another process holding the database at `dir` open (a running broker)? False when there is none. */
export async function databaseLocked(dir: string): Promise<boolean> {
  // classic-level makes the folder even with createIfMissing: false; a check must not leave one behind.
  if (!existsSync(join(dir, 'CURRENT'))) return false
  try {
    await withDb(dir, false, async () => undefined)
    return false
  } catch (err) {
    if (isLockedError(err)) return true
    return false
  }
}
