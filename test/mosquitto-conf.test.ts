// `mirrormesh broker mosquitto-conf` + `mosquitto-acl`: a real Mosquitto started from the generated
// files on a loopback port refuses anonymous clients and drops a publish over the size limit.
import { execFileSync } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'
import { cli, freePort, killAll, removeDir, spawnTracked, tempDir, waitFor } from './support/harness.js'

const dirs: string[] = []
afterEach(async () => {
  await killAll()
  for (const d of dirs.splice(0)) await removeDir(d)
})

describe('mirrormesh broker mosquitto-conf', () => {
  it('a Mosquitto started from it refuses anonymous clients and drops an oversized publish', async () => {
    const dir = await tempDir('mm-mosq-conf-')
    dirs.push(dir)
    const port = await freePort()
    const passwd = join(dir, 'passwd')
    await writeFile(passwd, '')
    const pw = { 'hub-main': 'pw-hub-1', a: 'pw-a-1', dash: 'pw-dash-1' }
    for (const [u, p] of Object.entries(pw)) execFileSync('mosquitto_passwd', ['-b', passwd, u, p])
    const acl = await cli(['broker', 'mosquitto-acl', '--hub', 'hub-main', '--observer', 'dash'])
    await writeFile(join(dir, 'acl'), acl.stdout)
    const conf = await cli(['broker', 'mosquitto-conf', '--password-file', passwd, '--acl-file', join(dir, 'acl'), '--listen', `127.0.0.1:${port}`])
    expect(conf.code).toBe(0)
    expect(conf.stdout).toMatch(/^allow_anonymous false$/m)
    expect(conf.stdout).toMatch(/^message_size_limit 262144$/m)
    expect(conf.stdout).toContain('NOT enforceable in Mosquitto')
    // As root, Mosquitto drops to the `mosquitto` user, which cannot read our private temp dir.
    const extra = process.getuid?.() === 0 ? 'user root\n' : ''
    await writeFile(join(dir, 'mosquitto.conf'), extra + conf.stdout)
    const mosq = spawnTracked('mosquitto', ['-c', join(dir, 'mosquitto.conf')], {})
    await Promise.race([
      waitFor(() => new Promise<boolean>((resolve) => {
        const c = connect(port, '127.0.0.1', () => { c.destroy(); resolve(true) })
        c.on('error', () => resolve(false))
      }), { timeoutMs: 5000, what: 'mosquitto listening' }),
      mosq.exited.then(({ code }) => { throw new Error(`mosquitto exited with ${code}:\n${mosq.out.text}`) }),
    ])
    const url = `mqtt://127.0.0.1:${port}`
    const opts = (username: keyof typeof pw, clientId: string) => ({ username, password: pw[username], clientId, protocolVersion: 4 as const, reconnectPeriod: 0, connectTimeout: 5000 })
    await expect(mqtt.connectAsync(url, { clientId: 'anon', protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000 })).rejects.toThrow(/not authori[sz]ed/i)
    const dash = await mqtt.connectAsync(url, opts('dash', 'dash-w'))
    const got: number[] = []
    dash.on('message', (_t, p) => got.push(p.length))
    await dash.subscribeAsync('mirrormesh/#', { qos: 1 })
    const hub = await mqtt.connectAsync(url, opts('hub-main', 'hub-main'))
    hub.on('error', () => undefined)
    hub.publish('mirrormesh/clients/online', Buffer.alloc(400 * 1024, 0x20), { qos: 0 })
    const hub2 = await mqtt.connectAsync(url, opts('hub-main', 'hub-main-2'))
    await hub2.publishAsync('mirrormesh/clients/online', Buffer.alloc(1000, 0x20), { qos: 1 })
    await waitFor(() => got.includes(1000), { what: 'the small publish' })
    expect(got).toEqual([1000])
    for (const c of [dash, hub, hub2]) await c.endAsync(true)
  })
})
