// The hub's disk full (tmpfs in its own mount namespace, test/support/small-disk-hub.ts; the
// node side is test/diskfull.test.ts): the offline bundle cannot be written and a node's journal
// replay cannot be kept. The hub stays up and says "disk full"; a replay it could not keep is
// answered as an error, never acked (the node would trim it: a lost event); once space is
// freed the same turns are kept, once each.
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { afterAll, describe, expect, it } from 'vitest'
import { CredentialStore } from '@mirrormesh/broker'
import { killAll, removeDir, sleep, tempDir, waitFor } from '../support/harness.js'
import { probeUserMountNamespace } from '../support/small-disk.js'
import { startHubOnTmpfs } from '../support/small-disk-hub.js'

const dirs: string[] = []
// The second test looks at the same hub after the first freed its disk: clean up after both.
let hubAfter: Awaited<ReturnType<typeof startHubOnTmpfs>> | undefined
afterAll(async () => {
  await killAll()
  for (const d of dirs.splice(0)) await removeDir(d)
})

const probe = await probeUserMountNamespace()

describe.skipIf(!probe.ok && !process.env.CI)('hub on a full disk', () => {
  it('bundle and replayed journal on a full disk: hub up, "disk full" said, replay answered as an error (not acked); kept once after space is freed', { timeout: 180_000 }, async () => {
    if (!probe.ok) throw new Error(probe.reason)
    const seed = await tempDir('mm-seed-')
    const stateDir = await tempDir('mm-hubdisk-')
    dirs.push(seed, stateDir)
    const password = await new CredentialStore(join(seed, 'credentials.json')).add('kitchen', 'node', { cost: 1024 })
    const size = 8 * 1024 * 1024
    // Leave ~256 kB: enough to start, not enough for the bundle.
    const hub = await startHubOnTmpfs({ stateDir, seedDir: seed, sizeBytes: size, fill: { name: 'ballast', bytes: size - 256 * 1024 }, env: { BUNDLE_ENABLED: 'true', ROOMS: 'kitchen' } })
    // Eat what is left, so the replay cannot be written either.
    await waitFor(async () => /ENOSPC|disk full/i.test(hub.out.text), { timeoutMs: 90_000, what: 'hub says its disk is full (bundle)' })
    const fill2 = hub.disk('ballast2')
    const { writeFile } = await import('node:fs/promises')
    await writeFile(fill2, Buffer.alloc(Math.max(0, (await hub.free()) - 0))).catch(() => undefined)
    expect(hub.proc.exitCode).toBeNull()
    expect((await hub.http('/healthz')).status).toBe(200)

    const node = await mqtt.connectAsync(hub.url, { clientId: 'node-kitchen', username: 'kitchen', password, reconnectPeriod: 0 })
    const answers: Array<{ transaction: string; status: string; error?: string; data?: { kept: string[]; duplicate: string[] } }> = []
    node.on('message', (_t, p) => answers.push(JSON.parse(p.toString())))
    await node.subscribeAsync('mirrormesh/nodes/kitchen/response/replay', { qos: 1 })
    const turns = [1, 2, 3].map((i) => ({ id: `t-${i}`, at: Date.now() - i * 1000, transcript: 'what time is it', reply: "It's noon." }))
    const replay = async (transaction: string) => {
      await node.publishAsync('mirrormesh/nodes/kitchen/request/replay', JSON.stringify({ v: 1, ts: Date.now(), transaction, turns }), { qos: 1 })
      return waitFor(() => answers.find((a) => a.transaction === transaction), { timeoutMs: 20_000, what: `answer to ${transaction}` })
    }
    const full = await replay('tx-full')
    console.log(`replay on a full disk: ${JSON.stringify(full)}; hub log: ${hub.out.text.split('\n').filter((l) => /ENOSPC|disk full/i.test(l)).slice(0, 2).join(' | ').slice(0, 600)}`)
    // Not acked as kept: the node keeps its journal and sends again.
    expect(full.status === 'error' || (full.data?.kept.length ?? 0) === 0).toBe(true)
    expect(hub.proc.exitCode).toBeNull()

    await rm(hub.disk('ballast'))
    await rm(fill2, { force: true })
    const ok = await replay('tx-freed')
    expect(ok.status).toBe('ok')
    expect([...ok.data!.kept, ...ok.data!.duplicate].sort()).toEqual(turns.map((t) => t.id).sort())
    const again = await replay('tx-again')
    expect(again.data!.duplicate.sort()).toEqual(turns.map((t) => t.id).sort())
    const stored = (await hub.http('/api/offline-turns')).body.turns as Array<{ id: string }>
    expect(stored.map((t) => t.id).sort()).toEqual(turns.map((t) => t.id).sort())
    node.end(true)
    await sleep(100)
    hubAfter = hub
  })

  it('once space is back, the offline bundle that failed on the full disk gets built', { timeout: 120_000 }, async () => {
    expect(hubAfter, 'runs after the test above').toBeDefined()
    await waitFor(async () => (await hubAfter!.http('/api/bundle/manifest')).status === 200, { timeoutMs: 90_000, what: 'bundle built once space is back' })
  })
})
