// Offline reply bundles with two hubs on one real Mosquitto (HUB_ROLE active + standby, each
// building its own bundle: different ROOMS, so different versions). Each hub announces on
// hub/{hub}/manifest; the node installs the bundle of the hub assigned to it — not the last one
// announced — fetched from that live hub; when its hub dies, it keeps a usable bundle and then
// fetches the new hub's.
import mqtt from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'
import { killAll, sleep, startAgent, tempDir, waitFor } from './support/harness.js'
import { BASE, createHubBed, type HubBed } from './support/multihub.js'

let bed: HubBed | undefined
let observer: mqtt.MqttClient | undefined

afterEach(async () => {
  await observer?.endAsync(true).catch(() => undefined)
  observer = undefined
  await bed?.close()
  bed = undefined
  await killAll()
})

describe('offline bundles with several hubs', () => {
  it('a node installs its own hub\'s bundle, not the last announced; its hub killed → the new hub\'s bundle, fetched from it', { timeout: 120_000 }, async () => {
    bed = await createHubBed(['main', 'standby'])
    const announced = new Map<string, string>()
    observer = await mqtt.connectAsync(bed.url, { clientId: `dash-b-${Math.random().toString(36).slice(2, 8)}`, username: 'dash', password: bed.passwords.dash, reconnectPeriod: 0 })
    observer.on('message', (topic, payload) => {
      const m = topic.match(/\/hub\/([^/]+)\/manifest$/)
      if (m && payload.length) announced.set(m[1]!, (JSON.parse(payload.toString()) as { version: string }).version)
    })
    await observer.subscribeAsync(`${BASE}/hub/+/manifest`, { qos: 1 })

    const bundleEnv = { BUNDLE_ENABLED: 'true', PIPELINE_ENABLED: 'true' } // the bundle is built by the voice pipeline's engines
    await bed.startHub('main', 'active', { ...bundleEnv, ROOMS: 'kitchen|hall' })
    const agent = await startAgent({
      nodeId: 'kitchen', mqttUrl: bed.url, password: bed.passwords.kitchen, stdin: true,
      // No HUB_HTTP_URL: the node finds its hub's HTTP port in that hub's manifest.
      env: { MQTT_USERNAME: 'kitchen', MIRRORMESH_STATE_DIR: await tempDir('mm-node-'), AUDIO_SOURCE: 'stdin', AUDIO_SINK: 'file', AUDIO_SINK_FILE: `${await tempDir('mm-play-')}/played.jsonl` },
    })
    const bundleOf = async (): Promise<string | undefined> => (await agent.health()).offline?.bundleVersion
    const mainVersion = await waitFor(() => announced.get('main'), { timeoutMs: 60_000, what: 'main announced its bundle' })
    await waitFor(async () => (await bundleOf()) === mainVersion, { timeoutMs: 60_000, what: `node installed main's bundle ${mainVersion}` })
    expect((await agent.health()).hub).toBe('main')

    // The standby announces its own (different) bundle after main: the node keeps main's.
    await bed.startHub('standby', 'standby', { ...bundleEnv, ROOMS: 'kitchen|hall|attic' })
    const standbyVersion = await waitFor(() => announced.get('standby'), { timeoutMs: 60_000, what: 'standby announced its bundle' })
    expect(standbyVersion).not.toBe(mainVersion)
    await sleep(2000)
    expect(await bundleOf()).toBe(mainVersion)

    // main dies: the node moves to the standby, keeps a usable bundle meanwhile, then installs the
    // standby's, which only the standby (alive) can have served.
    bed.hubs.get('main')!.kill('SIGKILL')
    await waitFor(async () => { const h = await agent.health(); return h.hub === 'standby' && h.state === 'online' }, { timeoutMs: 20_000, what: 'node online with the standby' })
    expect([mainVersion, standbyVersion]).toContain(await bundleOf())
    await waitFor(async () => (await bundleOf()) === standbyVersion, { timeoutMs: 30_000, what: `node installed the standby's bundle ${standbyVersion}` })
  })
})
