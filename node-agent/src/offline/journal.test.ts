import { mkdtempSync, rmSync } from 'node:fs'
import fs from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { FallbackLog, OfflineJournal } from './journal.js'

const root = mkdtempSync(path.join(tmpdir(), 'mm-journal-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))
let n = 0
const freshDir = () => path.join(root, `j${n++}`)
const turn = (i: number) => ({ transcript: `what time is it ${i}`, reply: `It's ${i}`, skill: 'clock' })

describe('OfflineJournal', () => {
  it('appends durable JSON lines and re-reads them after a restart', async () => {
    const dir = freshDir()
    const j = await OfflineJournal.open(dir, { maxEntries: 10 })
    const a = await j.append({ ...turn(1), action: { component: 'light', action: 'set', room: 'kitchen', state: 'on' } })
    const b = await j.append(turn(2))
    expect(a.id).not.toBe(b.id)
    expect(a).toMatchObject({ transcript: 'what time is it 1', skill: 'clock', action: { room: 'kitchen' } })
    expect(b.action).toBeUndefined()
    expect(b.at).toBe(b.ts)
    const lines = (await fs.readFile(j.file, 'utf8')).split('\n')
    expect(lines).toHaveLength(3)
    expect(JSON.parse(lines[0]!)).toEqual(a)
    const again = await OfflineJournal.open(dir, { maxEntries: 10 })
    expect(again.pending()).toEqual([a, b])
  })

  it('drops a torn last line and repairs the file so later appends are readable', async () => {
    const dir = freshDir()
    const j = await OfflineJournal.open(dir)
    const a = await j.append(turn(1))
    await fs.appendFile(j.file, '{"id":"x","ts":1,"at":17') // power cut mid-write
    const j2 = await OfflineJournal.open(dir)
    expect(j2.pending()).toEqual([a])
    const c = await j2.append(turn(3))
    expect((await OfflineJournal.open(dir)).pending()).toEqual([a, c])
  })

  it('keeps the newest maxEntries', async () => {
    const dir = freshDir()
    const j = await OfflineJournal.open(dir, { maxEntries: 3 })
    const all = []
    for (let i = 0; i < 5; i++) all.push(await j.append(turn(i)))
    expect(j.pending()).toEqual(all.slice(2))
    expect((await OfflineJournal.open(dir, { maxEntries: 3 })).pending()).toEqual(all.slice(2))
    // No temp files left behind.
    expect(await fs.readdir(dir)).toEqual(['offline-journal.jsonl'])
  })

  it('keeps within maxBytes', async () => {
    const j = await OfflineJournal.open(freshDir(), { maxEntries: 1000, maxBytes: 2048 })
    for (let i = 0; i < 40; i++) await j.append(turn(i))
    const st = await fs.stat(j.file)
    expect(st.size).toBeLessThanOrEqual(2048)
    expect(j.pending().at(-1)?.transcript).toBe('what time is it 39')
    expect(j.size).toBeGreaterThan(3)
  })

  it('ack removes exactly the acknowledged entries, atomically and durably', async () => {
    const dir = freshDir()
    const j = await OfflineJournal.open(dir)
    const es = await Promise.all([1, 2, 3, 4].map((i) => j.append(turn(i))))
    expect(j.pending().map((e) => e.transcript)).toEqual(['what time is it 1', 'what time is it 2', 'what time is it 3', 'what time is it 4'])
    expect(await j.ack([es[0]!.id, es[2]!.id, 'unknown'])).toBe(2)
    expect(j.pending()).toEqual([es[1], es[3]])
    expect((await OfflineJournal.open(dir)).pending()).toEqual([es[1], es[3]])
  })
})

describe('FallbackLog', () => {
  it('writes one readable line per turn and rotates by size keeping two files', async () => {
    const dir = freshDir()
    const fl = new FallbackLog(dir, 300)
    await fl.write('offline', 'what time is it', "It's 9:07 PM", new Date('2026-11-25T21:07:00Z'))
    expect(await fs.readFile(fl.file, 'utf8')).toBe('2026-11-25T21:07:00.000Z offline heard="what time is it" replied="It\'s 9:07 PM"\n')
    await fl.write('offline', 'say "hi"\nplease', '')
    expect((await fs.readFile(fl.file, 'utf8')).split('\n')[1]).toMatch(/ offline heard="say \\"hi\\"\\nplease" replied=""$/)
    for (let i = 0; i < 20; i++) await fl.write('offline', `turn ${i}`, 'ok')
    expect((await fs.readdir(dir)).sort()).toEqual(['fallback.log', 'fallback.log.1'])
    expect((await fs.stat(fl.file)).size).toBeLessThanOrEqual(300)
    expect(await fs.readFile(fl.file, 'utf8')).toContain('heard="turn 19"')
    // A new FallbackLog (restart) continues the same file.
    const again = new FallbackLog(dir, 300)
    await again.write('recovering', 'x', 'y')
    expect(await fs.readFile(fl.file, 'utf8')).toMatch(/recovering heard="x" replied="y"\n$/)
  })
})
