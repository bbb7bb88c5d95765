// The bed itself (test/support/twohost.ts), so that what the other two-host suites prove holds:
// hub.lan is the hub's address on a node host and not on the host running the tests; a partition
// is silent (a connect neither succeeds nor fails) and the mesh notices it and heals; teardown and
// the sweep of a dead test's namespaces leave nothing behind; env files are read as systemd reads them.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { execFileSync } from 'node:child_process'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { waitFor } from '../support/harness.js'
import { createBed, describeBed, fillEnvFile, parseEnvFile, sweepBeds, type Bed } from '../support/twohost.js'

let bed: Bed | undefined
afterAll(async () => { await bed?.teardown() })

const namespaces = () => execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })

/** A TCP connect from a host's namespace: 'connected', the error code, or 'silence' after `ms`. */
const CONNECT = `const s = require('node:net').connect(+process.argv[2], process.argv[1]);
s.on('connect', () => { console.log('connected'); process.exit(0) });
s.on('error', (e) => { console.log(e.code); process.exit(0) });
setTimeout(() => { console.log('silence'); process.exit(0) }, +process.argv[3])`

describeBed('two hosts: the bed', () => {
  beforeAll(async () => {
    bed = await createBed({ nodes: ['kitchen'] })
    await bed.startHub()
    await bed.addNode('kitchen')
    await bed.startNode('kitchen')
  }, 120_000)

  it('hub.lan is the hub address on the node host and the node reaches it there; nothing of the bed on the test runner host', async () => {
    const b = bed!
    const got = await b.exec('kitchen', ['getent', 'hosts', 'hub.lan'])
    expect(got.stdout.trim().split(/\s+/)[0]).toBe(b.hub.ip)
    expect(b.hub.ip).toMatch(/^10\.213\.\d{1,3}\.1$/)
    const port = b.hub.env.MQTT_TLS_PORT ?? b.hub.env.MQTT_PORT!
    const fromNode = await b.exec('kitchen', [process.execPath, '-e', CONNECT, 'hub.lan', port, '3000'])
    expect(fromNode.stdout.trim()).toBe('connected')
    // The test's own namespace has no address or link of the bed (a connect from here would leave
    // by its default route, which in some sandboxes a proxy answers: not a useful check).
    expect(execFileSync('ip', ['-o', 'addr'], { encoding: 'utf8' })).not.toContain(`${b.subnet}.`)
    expect(execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' })).not.toMatch(/\bbr0\b|@if\d+.*\bv\d+\b/)
  })

  it('partition: silent both ways, the node goes offline and the hub marks it; heal: both online again', { timeout: 120_000 }, async () => {
    const b = bed!
    const health = async () => (await b.http('kitchen', '/healthz')).body
    const hubView = async () => (await b.http('hub', '/api/nodes/kitchen')).body
    await waitFor(async () => (await hubView()).state === 'online' && (await health()).state === 'online', { timeoutMs: 30_000, what: 'kitchen online' })
    await b.partition('kitchen')
    const port = b.hub.env.MQTT_TLS_PORT ?? b.hub.env.MQTT_PORT!
    const tries = await Promise.all([
      b.exec('kitchen', [process.execPath, '-e', CONNECT, 'hub.lan', port, '3000']),
      b.exec('hub', [process.execPath, '-e', CONNECT, b.nodes.kitchen!.ip, b.nodes.kitchen!.env.HEALTH_PORT ?? '8081', '3000']),
    ])
    expect(tries.map((t) => t.stdout.trim())).toEqual(['silence', 'silence'])
    await waitFor(async () => (await health()).state === 'offline', { timeoutMs: 30_000, what: 'kitchen offline by its /healthz' })
    await waitFor(async () => (await hubView()).state !== 'online', { timeoutMs: 30_000, what: 'hub no longer lists kitchen online' })
    await b.heal('kitchen')
    await waitFor(async () => (await hubView()).state === 'online' && (await health()).state === 'online', { timeoutMs: 90_000, intervalMs: 250, what: 'kitchen online again after heal' })
  })

  it('teardown removes every namespace, /etc/netns entry, process and file of the bed', { timeout: 60_000 }, async () => {
    const b = bed!
    const pids = [b.hub.proc!.pid, b.nodes.kitchen!.proc!.pid]
    await b.teardown()
    expect(namespaces()).not.toContain(b.tag)
    expect(existsSync(`/etc/netns/${b.tag}-hub`)).toBe(false)
    expect(existsSync(b.dir)).toBe(false)
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow()
  })
})

describeBed('two hosts: the sweep', () => {
  it('removes the namespaces and /etc/netns dirs of a test process that died without teardown', () => {
    const dead = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' })
    const ns = `mmbed-${dead.stdout.trim()}-0-hub`
    execFileSync('ip', ['netns', 'add', ns])
    return (async () => {
      await mkdir(`/etc/netns/${ns}`, { recursive: true })
      await writeFile(`/etc/netns/${ns}/hosts`, '10.213.1.1 hub.lan\n')
      expect(sweepBeds()).toContain(ns)
      expect(namespaces()).not.toContain(ns)
      expect(existsSync(`/etc/netns/${ns}`)).toBe(false)
    })()
  })
})

it('env files: read as systemd reads them (comments, quotes, a trailing "# …" kept in the value); filled in place', () => {
  const text = '# a comment\n; another\nA=1\nB="two words"\nC=x   # not a comment to systemd\n#D=commented\n\nE=\n'
  expect(parseEnvFile(text)).toEqual({ A: '1', B: 'two words', C: 'x   # not a comment to systemd', E: '' })
  const filled = fillEnvFile(text, { A: '9', D: 'on', E: 'secret', F: 'new' })
  expect(parseEnvFile(filled)).toEqual({ A: '9', B: 'two words', C: 'x   # not a comment to systemd', D: 'on', E: 'secret', F: 'new' })
  expect(filled.split('\n').slice(0, 2)).toEqual(['# a comment', '; another'])
})
