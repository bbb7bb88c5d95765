import { mkdtempSync, rmSync } from 'node:fs'
import fs from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Writable } from 'node:stream'
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest'
import { bundleFilePath, createLogger } from '@mirrormesh/broker'
import { BundleStore, writeFileDurable } from './bundle-store.js'
import { announcementOf, makeTestBundle, serveBundles, type BundleServer } from '../../../test/support/offline-bundle.js'

const root = mkdtempSync(path.join(tmpdir(), 'mm-bundle-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

/** A logger whose lines a test can read. */
function capture() {
  const lines: { level: number; msg: string; [k: string]: unknown }[] = []
  const dest = new Writable({ write(chunk: Buffer, _e, cb) { lines.push(JSON.parse(chunk.toString())); cb() } })
  return { log: createLogger({ name: 'test', level: 'debug', destination: dest }), lines }
}

let n = 0
const freshDir = () => path.join(root, `s${n++}`)

describe('BundleStore', () => {
  const b1 = makeTestBundle({ version: 'v1' })
  const b2 = makeTestBundle({ version: 'v2', salt: 2 })
  const b3 = makeTestBundle({ version: 'v3', salt: 3 })
  let srv: BundleServer
  beforeEach(async () => { srv = await serveBundles(b1, b2, b3) })
  afterEach(async () => { await srv.close() })

  it('downloads, verifies and switches to a bundle; survives a reopen', async () => {
    const dir = freshDir()
    const { log } = capture()
    const store = await BundleStore.open(dir, log)
    expect(store.current()).toBeUndefined()
    const r = await store.sync(announcementOf(b1), srv.url)
    expect(r).toMatchObject({ status: 'installed', version: 'v1', files: b1.manifest.files.length })
    const cur = store.current()!
    expect(cur.manifest.version).toBe('v1')
    expect(cur.dir).toBe(path.join(dir, 'bundles', 'v1'))
    expect(await fs.readFile(path.join(dir, 'current'), 'utf8')).toBe('v1\n')
    const name = b1.manifest.files[0]!.name
    expect(await fs.readFile(path.join(cur.dir, name))).toEqual(b1.files.get(name))
    // Same version again: nothing downloaded.
    const before = srv.requests.length
    expect(await store.sync(announcementOf(b1), srv.url)).toEqual({ status: 'current', version: 'v1' })
    expect(srv.requests.length).toBe(before)
    // Restart.
    const again = await BundleStore.open(dir, log)
    expect(again.current()?.manifest).toEqual(b1.manifest)
    // No temp dirs left.
    expect((await fs.readdir(dir)).sort()).toEqual(['bundles', 'current'])
  })

  it('reads a symlink pointer too', async () => {
    const dir = freshDir()
    const { log } = capture()
    await (await BundleStore.open(dir, log)).sync(announcementOf(b1), srv.url)
    await fs.rm(path.join(dir, 'current'))
    await fs.symlink('bundles/v1', path.join(dir, 'current'))
    expect((await BundleStore.open(dir, log)).current()?.manifest.version).toBe('v1')
  })

  it('keeps current + previous and deletes older bundles', async () => {
    const dir = freshDir()
    const store = await BundleStore.open(dir, capture().log)
    for (const b of [b1, b2, b3]) expect((await store.sync(announcementOf(b), srv.url)).status).toBe('installed')
    expect((await fs.readdir(path.join(dir, 'bundles'))).sort()).toEqual(['v2', 'v3'])
    expect(store.current()?.manifest.version).toBe('v3')
  })

  it('refuses a bundle with a corrupt file and keeps the previous one', async () => {
    const dir = freshDir()
    const { log, lines } = capture()
    const store = await BundleStore.open(dir, log)
    await store.sync(announcementOf(b1), srv.url)
    const victim = b2.manifest.files[5]!.name
    const bad = Buffer.from(b2.files.get(victim)!)
    bad[0] = bad[0]! ^ 0xff
    srv.tamper.set(bundleFilePath('v2', victim), bad)
    const r = await store.sync(announcementOf(b2), srv.url)
    expect(r).toEqual({ status: 'refused', version: 'v2', reason: `${victim} sha256 mismatch` })
    expect(lines.some((l) => l.msg === `bundle v2 refused: ${victim} sha256 mismatch` && l.level === 50)).toBe(true)
    expect(store.current()?.manifest.version).toBe('v1')
    expect(await fs.readFile(path.join(dir, 'current'), 'utf8')).toBe('v1\n')
    expect((await fs.readdir(dir)).sort()).toEqual(['bundles', 'current'])
    expect(await fs.readdir(path.join(dir, 'bundles'))).toEqual(['v1'])
  })

  it('refuses a manifest whose sha256 differs from the announcement', async () => {
    const store = await BundleStore.open(freshDir(), capture().log)
    const r = await store.sync({ ...announcementOf(b1), sha256: '0'.repeat(64) }, srv.url)
    expect(r).toMatchObject({ status: 'refused', reason: 'manifest.json sha256 mismatch' })
    expect(store.current()).toBeUndefined()
  })

  it('refuses a truncated file and an unsafe version', async () => {
    const store = await BundleStore.open(freshDir(), capture().log)
    const victim = b1.manifest.files[0]!.name
    srv.tamper.set(bundleFilePath('v1', victim), b1.files.get(victim)!.subarray(2))
    expect(await store.sync(announcementOf(b1), srv.url)).toMatchObject({ status: 'refused', reason: expect.stringMatching(/size mismatch/) })
    expect(await store.sync({ ...announcementOf(b1), version: '../x' }, srv.url)).toMatchObject({ status: 'refused' })
  })

  it('on ENOSPC keeps the previous bundle and removes the temp dir', async () => {
    const dir = freshDir()
    const { log, lines } = capture()
    let written = 0
    let full = false
    const store = await BundleStore.open(dir, log, {
      writeFile: async (file, data) => {
        if (full && ++written > 3) throw Object.assign(new Error(`ENOSPC: no space left on device, write '${file}'`), { code: 'ENOSPC' })
        await writeFileDurable(file, data)
      },
    })
    await store.sync(announcementOf(b1), srv.url)
    full = true
    const r = await store.sync(announcementOf(b2), srv.url)
    expect(r).toEqual({ status: 'failed', version: 'v2', reason: 'disk full (ENOSPC)' })
    expect(lines.some((l) => l.msg === 'bundle v2 not installed: disk full (ENOSPC); keeping v1')).toBe(true)
    expect(store.current()?.manifest.version).toBe('v1')
    expect((await fs.readdir(dir)).sort()).toEqual(['bundles', 'current'])
    full = false
    expect((await store.sync(announcementOf(b2), srv.url)).status).toBe('installed')
  })

  it('an HTTP error fails the sync without touching the current bundle', async () => {
    const store = await BundleStore.open(freshDir(), capture().log)
    await store.sync(announcementOf(b1), srv.url)
    const r = await store.sync({ version: 'v9', sha256: 'a'.repeat(64), url: bundleFilePath('v9', 'manifest.json') }, srv.url)
    expect(r).toMatchObject({ status: 'failed', reason: expect.stringMatching(/HTTP 404/) })
    expect(store.current()?.manifest.version).toBe('v1')
  })

  it('coalesces concurrent syncs', async () => {
    const store = await BundleStore.open(freshDir(), capture().log)
    const a = store.sync(announcementOf(b1), srv.url)
    const b = store.sync(announcementOf(b1), srv.url)
    expect(b).toBe(a)
    // While v1 downloads, v2 then v3 are announced: only v3 runs after v1.
    const c = store.sync(announcementOf(b2), srv.url)
    const d = store.sync(announcementOf(b3), srv.url)
    expect(d).toBe(c)
    expect((await a).status).toBe('installed')
    expect(await d).toMatchObject({ status: 'installed', version: 'v3' })
    expect(srv.requests.filter((p) => p.endsWith('manifest.json'))).toEqual([bundleFilePath('v1', 'manifest.json'), bundleFilePath('v3', 'manifest.json')])
    expect(store.current()?.manifest.version).toBe('v3')
  })

  it('ignores an unusable bundle on disk at open', async () => {
    const dir = freshDir()
    const { log, lines } = capture()
    await (await BundleStore.open(dir, log)).sync(announcementOf(b1), srv.url)
    await fs.truncate(path.join(dir, 'bundles', 'v1', b1.manifest.files[0]!.name), 1)
    await fs.mkdir(path.join(dir, 'tmp-leftover'))
    expect((await BundleStore.open(dir, log)).current()).toBeUndefined()
    expect(lines.some((l) => /bundle v1 on disk unusable/.test(l.msg))).toBe(true)
    expect(await fs.readdir(dir)).not.toContain('tmp-leftover')
  })
})
