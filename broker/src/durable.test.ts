import fs from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { appendWhole, fsyncDir, writeAtomic, writeFileDurable } from './durable.js'

let dir: string
beforeEach(async () => { dir = await fs.mkdtemp(path.join(tmpdir(), 'mm-durable-')) })
afterEach(async () => {
  vi.restoreAllMocks()
  await fs.rm(dir, { recursive: true, force: true })
})

const enospc = () => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' })

describe('writeFileDurable', () => {
  it('writes, truncates an existing file, and applies the mode to a new file', async () => {
    const f = path.join(dir, 'a')
    await writeFileDurable(f, 'long old content')
    await writeFileDurable(f, Buffer.from('new'))
    expect(await fs.readFile(f, 'utf8')).toBe('new')
    await writeFileDurable(path.join(dir, 'secret'), 'x', { mode: 0o600 })
    expect((await fs.stat(path.join(dir, 'secret'))).mode & 0o777).toBe(0o600)
  })
})

describe('writeAtomic', () => {
  it('replaces the file and leaves no temp file', async () => {
    const f = path.join(dir, 'state.json')
    await writeAtomic(f, '{"v":1}')
    await writeAtomic(f, '{"v":2}')
    expect(await fs.readFile(f, 'utf8')).toBe('{"v":2}')
    expect(await fs.readdir(dir)).toEqual(['state.json'])
  })

  it('on ENOSPC: throws the ENOSPC error, keeps the old file, removes the temp file', async () => {
    const f = path.join(dir, 'state.json')
    await writeAtomic(f, 'old')
    const realOpen = fs.open
    vi.spyOn(fs, 'open').mockImplementation(async (...args: Parameters<typeof fs.open>) => {
      const fh = await realOpen(...args)
      if (String(args[0]).includes('.tmp-')) fh.writeFile = async () => { throw enospc() }
      return fh
    })
    await expect(writeAtomic(f, 'new')).rejects.toMatchObject({ code: 'ENOSPC' })
    expect(await fs.readFile(f, 'utf8')).toBe('old')
    expect(await fs.readdir(dir)).toEqual(['state.json'])
  })

  it('a failed rename (target is a directory) removes the temp file', async () => {
    const f = path.join(dir, 'sub')
    await fs.mkdir(f)
    await fs.writeFile(path.join(f, 'x'), '')
    await expect(writeAtomic(f, 'data')).rejects.toThrow()
    expect(await fs.readdir(dir)).toEqual(['sub'])
  })
})

describe('fsyncDir', () => {
  it('syncs a directory and never throws, even for a missing one', async () => {
    await fsyncDir(dir)
    await fsyncDir(path.join(dir, 'missing'))
  })
})

describe('appendWhole', () => {
  it('a write cut short by a full disk leaves no half line for the next append to glue onto', async () => {
    const f = path.join(dir, 'turns.jsonl')
    const fh = await fs.open(f, 'a')
    try {
      await appendWhole(fh, '{"id":"t1"}\n')
      const realAppend = fh.appendFile.bind(fh)
      fh.appendFile = async (data) => { await realAppend(String(data).slice(0, 5)); throw enospc() } // part of it landed
      await expect(appendWhole(fh, '{"id":"t2"}\n')).rejects.toMatchObject({ code: 'ENOSPC' })
      fh.appendFile = realAppend
      await appendWhole(fh, '{"id":"t3"}\n')
    } finally {
      await fh.close()
    }
    expect((await fs.readFile(f, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l).id)).toEqual(['t1', 't3'])
  })
})
