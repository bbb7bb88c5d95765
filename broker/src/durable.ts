// Durable file writes, shared by every side (hub, node, broker): the bytes are on disk when
// the promise resolves, a replaced file is either the old one or the new one after a power
// cut, and a failed write (ENOSPC on a full disk) leaves no temp file behind to hold the space.
// Errors are thrown as they come (err.code 'ENOSPC' stays readable to the caller).
import { randomUUID } from 'node:crypto'
import { constants as fsc } from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'

export interface DurableWriteOptions {
  /** File mode for a newly created file (default 0o666 less the umask). */
  mode?: number
}

/** Writes `data` to `file` (created or truncated) and fsyncs it before resolving. */
export async function writeFileDurable(file: string, data: string | Uint8Array, opts: DurableWriteOptions = {}): Promise<void> {
  const fh = await fs.open(file, 'w', opts.mode)
  try {
    await fh.writeFile(data) // loops over short writes; throws ENOSPC when nothing more fits
    await fh.sync()
  } finally {
    await fh.close()
  }
}

/** fsyncs a directory so that a rename or create inside it survives a power cut. */
export async function fsyncDir(dir: string): Promise<void> {
  let fh: fs.FileHandle | undefined
  try {
    fh = await fs.open(dir, fsc.O_RDONLY)
    await fh.sync()
  } catch {
    // Some filesystems refuse fsync on a directory; the rename is still atomic.
  } finally {
    await fh?.close()
  }
}

/**
 * Replaces `file` with `data` atomically: a temp file next to it (`<file>.tmp-<random>`),
 * fsync, rename, fsync of the directory. On failure the temp file is removed and the old
 * `file`, if any, is untouched.
 */
export async function writeAtomic(file: string, data: string | Uint8Array, opts: DurableWriteOptions = {}): Promise<void> {
  const tmp = `${file}.tmp-${randomUUID().slice(0, 8)}`
  try {
    await writeFileDurable(tmp, data, opts)
    await fs.rename(tmp, file)
  } catch (err) {
    await fs.rm(tmp, { force: true }).catch(() => undefined) // a temp file must not keep the space
    throw err
  }
  await fsyncDir(path.dirname(file))
}

/**
 * Appends `data` through an open handle (fsync'd when `sync`). On failure (a full disk) the
 * file is cut back to its old length, so no half line is left for the next append to glue onto.
 */
export async function appendWhole(fh: fs.FileHandle, data: string | Uint8Array, sync = true): Promise<void> {
  const size = (await fh.stat()).size
  try {
    await fh.appendFile(data) // loops over short writes; throws ENOSPC when nothing more fits
    if (sync) await fh.datasync()
  } catch (err) {
    await fh.truncate(size).catch(() => undefined)
    throw err
  }
}
