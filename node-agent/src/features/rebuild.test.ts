import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { loadAgentConfig } from '../config.js'
import { identityPath, wipeCache, withIdentity } from './rebuild.js'

let dir: string
beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'mm-rebuild-')) })
afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

const config = () => loadAgentConfig({ NODE_ID: 'kitchen', MQTT_PASSWORD: 'env-password', MIRRORMESH_STATE_DIR: dir })

describe('withIdentity', () => {
  it('uses the environment when the state dir has no identity', () => {
    const r = withIdentity(config())
    expect(r.source).toBe('environment')
    expect(r.config).toMatchObject({ nodeId: 'kitchen', mqttUsername: 'kitchen', mqttPassword: 'env-password' })
  })

  it('prefers the identity the hub gave (state dir) over NODE_ID/MQTT_PASSWORD', async () => {
    await writeFile(identityPath(dir), JSON.stringify({ nodeId: 'hall-2', password: 'from-hub', previousId: 'kitchen', since: new Date().toISOString() }))
    const r = withIdentity(config())
    expect(r.source).toBe('state dir')
    expect(r.config).toMatchObject({ nodeId: 'hall-2', mqttUsername: 'hall-2', mqttPassword: 'from-hub' })
    expect(Object.isFrozen(r.config)).toBe(true)
  })

  it('the environment again once NODE_ID names the id the hub gave (a key rotated after the move)', async () => {
    await writeFile(identityPath(dir), JSON.stringify({ nodeId: 'kitchen', password: 'from-hub', previousId: 'hall', since: new Date().toISOString() }))
    const r = withIdentity(config())
    expect(r.source).toBe('environment')
    expect(r.config).toMatchObject({ nodeId: 'kitchen', mqttUsername: 'kitchen', mqttPassword: 'env-password' })
  })

  it('a broken identity file is a clear error that says how to fall back, without its contents', async () => {
    await writeFile(identityPath(dir), '{"nodeId": "hall-2", "password": secret-value}')
    expect(() => withIdentity(config())).toThrow(/identity\.json is unreadable .*remove it to use NODE_ID\/MQTT_PASSWORD/)
    expect(() => withIdentity(config())).not.toThrow(/secret/)
  })
})

describe('wipeCache', () => {
  it('removes the bundle and the cached hub config, keeps the offline journal', async () => {
    await mkdir(join(dir, 'offline', 'bundle', 'v1'), { recursive: true })
    await mkdir(join(dir, 'offline', 'journal'), { recursive: true })
    await writeFile(join(dir, 'offline', 'journal', 'turns.jsonl'), '{}\n')
    await writeFile(join(dir, 'node-config.json'), '{}')
    await wipeCache(dir)
    expect(existsSync(join(dir, 'offline', 'bundle'))).toBe(false)
    expect(existsSync(join(dir, 'node-config.json'))).toBe(false)
    expect(existsSync(join(dir, 'offline', 'journal', 'turns.jsonl'))).toBe(true)
  })
})
