// `mirrormesh keys rotate` against a running hub: the new password works at once, the old one
// for the grace period and then never again, with no restart; neither password shows up in
// anything the hub or the command wrote besides the one line that hands the new one out.
import { readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import mqtt from 'mqtt'
import { addNode, cli, killAll, sleep, startHub, tempDir } from './support/harness.js'

const dirs: string[] = []
afterEach(async () => { await killAll() })
afterAll(async () => { for (const d of dirs) await rm(d, { recursive: true, force: true }) })

/** Connect as a node and disconnect; resolves true when the broker accepted the password. */
async function accepted(url: string, id: string, password: string): Promise<boolean> {
  try {
    const c = await mqtt.connectAsync(url, { clientId: `node-${id}`, username: id, password, reconnectPeriod: 0, connectTimeout: 5000 })
    await c.endAsync()
    return true
  } catch (err) {
    expect((err as Error).message).toMatch(/Not authorized|Bad username or password/i)
    return false
  }
}

describe('mirrormesh keys rotate', () => {
  it('new password at once, old one for the grace period only, picked up by the running hub, never printed elsewhere', { timeout: 60_000 }, async () => {
    const stateDir = await tempDir('mm-keys-')
    dirs.push(stateDir)
    const old = await addNode(stateDir, 'kitchen')
    const hub = await startHub({ stateDir })
    expect(await accepted(hub.mqttUrl, 'kitchen', old)).toBe(true)

    const r = await cli(['keys', 'rotate', 'kitchen', '--grace', '4s', '--json'], { MIRRORMESH_STATE_DIR: stateDir })
    expect(r.code, r.stderr).toBe(0)
    const { password, previousUntil } = JSON.parse(r.stdout)
    expect(password).not.toBe(old)
    const text = await cli(['keys', 'rotate', 'hall'], { MIRRORMESH_STATE_DIR: stateDir })
    expect(text.code).toBe(1)
    expect(text.stderr).toMatch(/no credentials for "hall"/)
    const bad = await cli(['keys', 'rotate', 'kitchen', '--grace', 'soon'], { MIRRORMESH_STATE_DIR: stateDir })
    expect(bad.code).toBe(1)
    expect(bad.stderr).toMatch(/invalid duration "soon"/)

    expect(await accepted(hub.mqttUrl, 'kitchen', password)).toBe(true)
    expect(await accepted(hub.mqttUrl, 'kitchen', old)).toBe(true)
    await sleep(Math.max(0, Date.parse(previousUntil) - Date.now()) + 300)
    expect(await accepted(hub.mqttUrl, 'kitchen', old)).toBe(false)
    expect(await accepted(hub.mqttUrl, 'kitchen', password)).toBe(true)

    const list = await cli(['node', 'list', '--json'], { MIRRORMESH_STATE_DIR: stateDir })
    const captured = [
      hub.out.text, text.stdout, text.stderr, bad.stdout, bad.stderr, r.stderr, list.stdout, list.stderr,
      JSON.stringify((await hub.http('/metrics')).body), JSON.stringify((await hub.http('/api/nodes')).body),
      await readFile(join(stateDir, 'credentials.json'), 'utf8'),
    ].join('\n')
    expect(hub.out.text).toMatch(/mqtt connection refused/) // the refused old password was logged, without it
    for (const secret of [old, password]) expect(captured).not.toContain(secret)
  })

  it('without a node: rotates the admin token when there is one, else says what it would rotate and fails', async () => {
    const stateDir = await tempDir('mm-keys-')
    dirs.push(stateDir)
    const none = await cli(['keys', 'rotate', '--state-dir', stateDir])
    expect(none.code).toBe(1)
    expect(none.stderr).toMatch(/no admin token .*nothing to rotate/)
    await writeFile(join(stateDir, 'admin-token'), 'old-token-value\n', { mode: 0o600 })
    const r = await cli(['keys', 'rotate', '--state-dir', stateDir, '--json'])
    expect(r.code, r.stderr).toBe(0)
    const { adminToken } = JSON.parse(r.stdout)
    expect(adminToken).toMatch(/^[\w-]{40,}$/)
    expect((await readFile(join(stateDir, 'admin-token'), 'utf8')).trim()).toBe(adminToken)
    expect((await stat(join(stateDir, 'admin-token'))).mode & 0o777).toBe(0o600)
    expect(r.stderr).not.toContain(adminToken)
  })
})
