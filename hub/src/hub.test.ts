// The thin root in-process: a feature injected through HubOptions.features that throws at
// start is isolated (readiness names it, health says down) while the hub's own MQTT client
// keeps serving; stop() ends everything.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'
import { CredentialStore, createLogger } from '@mirrormesh/broker'
import { loadHubConfig } from './config.js'
import { Hub } from './hub.js'

const log = createLogger({ name: 'test', level: 'silent' })
let dir: string | undefined
let hub: Hub | undefined
afterEach(async () => {
  await hub?.stop()
  if (dir) await rm(dir, { recursive: true, force: true })
  hub = dir = undefined
})

describe('Hub', () => {
  it('keeps serving when a non-critical feature throws at start', async () => {
    dir = await mkdtemp(join(tmpdir(), 'mm-hub-unit-'))
    const dash = await new CredentialStore(join(dir, 'credentials.json')).add('dash', 'observer')
    const config = loadHubConfig({
      MIRRORMESH_STATE_DIR: dir, MQTT_HOST: '127.0.0.1', MQTT_PORT: '0', MQTT_WS_ENABLED: 'false', HTTP_HOST: '127.0.0.1', HTTP_PORT: '0',
      PIPELINE_ENABLED: 'false', BROKER_PERSISTENCE: 'false', LOG_LEVEL: 'silent',
    })
    hub = new Hub(config, log, { features: [{ name: 'doorbell', start: () => { throw new Error('no doorbell on GPIO 17') } }] })
    await hub.start()
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${hub.broker!.address!.port}`, { username: 'dash', password: dash, clientId: 'dash-unit', protocolVersion: 4, reconnectPeriod: 0 })
    try {
      const got = new Map<string, string>()
      client.on('message', (t, p) => got.set(t, p.toString()))
      await client.subscribeAsync(['mirrormesh/health/doorbell', 'mirrormesh/hub/main/status'])
      const until = Date.now() + 5000
      while (got.size < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 20))
      expect(got.get('mirrormesh/hub/main/status')).toBe('online')
      expect(JSON.parse(got.get('mirrormesh/health/doorbell')!)).toMatchObject({ state: 'down', reason: 'no doorbell on GPIO 17' })
    } finally {
      await client.endAsync()
    }
    const r = hub.readiness()
    expect(r).toMatchObject({ ready: false, checks: { doorbell: false, registry: true, http: true, mqttConnected: true }, reasons: { doorbell: 'no doorbell on GPIO 17' } })
    expect(r.checks).not.toHaveProperty('llm')
    const res = await fetch(`http://127.0.0.1:${hub.httpAddress!.port}/healthz`)
    expect(res.status).toBe(200)
    await hub.stop()
    expect(hub.phase).toBe('stopped')
    expect(hub.host.states().every((s) => s.state === 'stopped')).toBe(true)
  })
})
