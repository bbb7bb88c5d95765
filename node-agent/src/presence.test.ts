import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { fileSource, gpiomonSource, parseGpiomonLine, Presence, type PresenceState } from './presence.js'

const dir = mkdtempSync(path.join(tmpdir(), 'mm-presence-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const open: Presence[] = []
afterEach(() => open.splice(0).forEach((p) => p.close()))

function presence(opts: ConstructorParameters<typeof Presence>[0]) {
  const p = new Presence(opts)
  open.push(p)
  const changes: PresenceState[] = []
  p.on('change', (c) => changes.push(c))
  return { p, changes }
}

describe('Presence', () => {
  it('debounces: a blip shorter than debounceMs is ignored, a steady change is reported with its start time', async () => {
    const { p, changes } = presence({ debounceMs: 50 })
    p.set(true, 'http')
    await sleep(20)
    p.set(false, 'http')
    await sleep(80)
    expect(changes).toEqual([])
    const t0 = Date.now()
    p.set(true, 'mqtt')
    p.set(true, 'mqtt')
    await sleep(80)
    expect(changes).toHaveLength(1)
    expect(changes[0]).toMatchObject({ present: true, source: 'mqtt' })
    expect(changes[0]!.since - t0).toBeLessThan(5)
    expect(p.present).toBe(true)
  })

  it('holds absence longer than presence (screen wakes fast, sleeps slowly)', async () => {
    const { p, changes } = presence({ debounceMs: 20, holdAbsentMs: 100, initial: true })
    p.set(false, 'pir')
    await sleep(60)
    expect(changes).toEqual([])
    await sleep(100)
    expect(changes.map((c) => c.present)).toEqual([false])
  })
})

describe('fileSource', () => {
  it('polls a gpio value file, active high or low', async () => {
    const file = path.join(dir, 'value')
    writeFileSync(file, '0\n')
    const { p, changes } = presence({ debounceMs: 0 })
    p.add(fileSource(file, { intervalMs: 10 }))
    await sleep(50)
    expect(changes).toEqual([])
    writeFileSync(file, '1\n')
    await expect.poll(() => changes.length).toBe(1)
    expect(changes[0]).toMatchObject({ present: true, source: `file:${file}` })

    const low = presence({ debounceMs: 0 })
    low.p.add(fileSource(file, { activeHigh: false, intervalMs: 10 }))
    writeFileSync(file, '0')
    await expect.poll(() => low.changes.map((c) => c.present)).toEqual([true])
  })

  it('reports a missing or garbled file once, and keeps polling', async () => {
    const file = path.join(dir, 'later')
    const { p, changes } = presence({ debounceMs: 0 })
    const errors: string[] = []
    p.on('error', (e, src) => errors.push(`${src}: ${e.message}`))
    p.add(fileSource(file, { intervalMs: 10 }))
    await sleep(60)
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatch(/ENOENT/)
    writeFileSync(file, 'banana')
    await sleep(40)
    expect(errors[1]).toMatch(/expected 0 or 1, got "banana"/)
    writeFileSync(file, '1')
    await expect.poll(() => changes.length).toBe(1)
  })
})

describe('gpiomonSource', () => {
  it('parses libgpiod v1 and v2 output', () => {
    expect(parseGpiomonLine('event:  RISING EDGE offset: 17 timestamp: [1700000000.123456789]')).toBe('rising')
    expect(parseGpiomonLine('event: FALLING EDGE offset: 17 timestamp: [1700000000.2]')).toBe('falling')
    expect(parseGpiomonLine('1700000000.123\trising\t"gpiochip0" 17')).toBe('rising')
    expect(parseGpiomonLine('garbage')).toBeUndefined()
  })

  it('follows edges from the gpiomon child and restarts it when it exits', async () => {
    const argsFile = path.join(dir, 'gpiomon.args')
    const fake = path.join(dir, 'fake-gpiomon')
    writeFileSync(
      fake,
      `#!/bin/sh\n[ "$1" = --version ] && { echo "gpiomon (libgpiod) v1.6.3"; exit 0; }\necho "$@" >> ${argsFile}\necho "event:  RISING EDGE offset: 17 timestamp: [1.0]"\nsleep 0.1\necho "event: FALLING EDGE offset: 17 timestamp: [1.1]"\nexit 2\n`,
    )
    chmodSync(fake, 0o755)
    const { p, changes } = presence({ debounceMs: 0 })
    const errors: string[] = []
    p.on('error', (e) => errors.push(e.message))
    p.add(gpiomonSource({ chip: 'gpiochip0', line: 17, bin: fake, restartMs: 50 }))
    await expect.poll(() => changes.length, { timeout: 3000 }).toBeGreaterThanOrEqual(3)
    expect(changes.slice(0, 3).map((c) => [c.present, c.source])).toEqual([
      [true, 'gpiomon:gpiochip0/17'],
      [false, 'gpiomon:gpiochip0/17'],
      [true, 'gpiomon:gpiochip0/17'],
    ])
    expect(errors[0]).toMatch(/gpiomon gpiochip0 17 exited 2/)
    const { readFileSync } = await import('node:fs')
    expect(readFileSync(argsFile, 'utf8').split('\n')[0]).toBe('--num-events=0 gpiochip0 17')
  })

  it('speaks libgpiod v2\'s syntax to a v2 gpiomon', async () => {
    const argsFile = path.join(dir, 'gpiomon2.args')
    const fake = path.join(dir, 'fake-gpiomon2')
    writeFileSync(fake, `#!/bin/sh\n[ "$1" = --version ] && { echo "gpiomon (libgpiod) v2.1.3"; exit 0; }\necho "$@" >> ${argsFile}\necho "1700000000.1 rising gpiochip0 17"\nsleep 5\n`)
    chmodSync(fake, 0o755)
    const { p, changes } = presence({ debounceMs: 0 })
    p.add(gpiomonSource({ chip: 'gpiochip0', line: 17, bin: fake }))
    await expect.poll(() => changes.length, { timeout: 3000 }).toBe(1)
    const { readFileSync } = await import('node:fs')
    expect(readFileSync(argsFile, 'utf8').trim()).toBe('-c gpiochip0 17')
  })

  it('reports a missing gpiomon', async () => {
    const { p } = presence({})
    const errors: string[] = []
    p.on('error', (e) => errors.push(e.message))
    p.add(gpiomonSource({ chip: 'gpiochip0', line: 4, bin: 'no-such-gpiomon' }))
    expect(errors).toEqual(['no-such-gpiomon not found (apt install gpiod)'])
  })
})
