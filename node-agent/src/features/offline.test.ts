// Where the node fetches the offline reply bundle: HUB_HTTP_URL, else the MQTT host on the
// port the hub announces in cache/manifest (8080 only when it announces none).
import { describe, expect, it } from 'vitest'
import { loadAgentConfig } from '../config.js'
import { OfflineFeature, defaultHubHttpUrl } from './offline.js'

describe('defaultHubHttpUrl', () => {
  it('uses the MQTT host with the port the manifest names, 8080 without one', () => {
    expect(defaultHubHttpUrl('mqtt://hub.lan:1883', 9090)).toBe('http://hub.lan:9090')
    expect(defaultHubHttpUrl('mqtts://10.0.0.2:8883')).toBe('http://10.0.0.2:8080')
    expect(defaultHubHttpUrl('mqtt://[fd00::1]:1883', 8081)).toBe('http://[fd00::1]:8081')
  })

  it('HUB_HTTP_URL, when set, wins over the manifest', () => {
    const offline = (env: Record<string, string>) => new OfflineFeature({ config: loadAgentConfig({ NODE_ID: 'hall', MQTT_PASSWORD: 'pw', MQTT_URL: 'mqtt://hub.lan:1883', ...env }) } as unknown as ConstructorParameters<typeof OfflineFeature>[0])
    expect(offline({}).hubHttpUrl(8443)).toBe('http://hub.lan:8443')
    expect(offline({ HUB_HTTP_URL: 'https://proxy.lan/mm' }).hubHttpUrl(8443)).toBe('https://proxy.lan/mm')
  })

  it('prefers the HTTPS port when the hub announces one (a hub with a certificate)', () => {
    const offline = new OfflineFeature({ config: loadAgentConfig({ NODE_ID: 'hall', MQTT_PASSWORD: 'pw', MQTT_URL: 'mqtts://hub.lan:8883' }) } as unknown as ConstructorParameters<typeof OfflineFeature>[0])
    expect(offline.hubHttpUrl(8080, 8443)).toBe('https://hub.lan:8443')
    expect(offline.hubHttpUrl(8080)).toBe('http://hub.lan:8080')
    // On the hub's own box with plain MQTT: the loopback listener (no CA, no password); chose TLS: HTTPS.
    const local = new OfflineFeature({ config: loadAgentConfig({ NODE_ID: 'hall', MQTT_PASSWORD: 'pw', MQTT_URL: 'mqtt://127.0.0.1:1883' }) } as unknown as ConstructorParameters<typeof OfflineFeature>[0])
    expect(local.hubHttpUrl(8080, 8443)).toBe('http://127.0.0.1:8080')
    expect(local.hubHttpUrl(undefined, 8443)).toBe('https://127.0.0.1:8443')
    const localTls = new OfflineFeature({ config: loadAgentConfig({ NODE_ID: 'hall', MQTT_PASSWORD: 'pw', MQTT_URL: 'mqtts://localhost:8883' }) } as unknown as ConstructorParameters<typeof OfflineFeature>[0])
    expect(localTls.hubHttpUrl(8080, 8443)).toBe('https://localhost:8443')
  })
})

describe('OfflineFeature and the hub events', () => {
  it("a timer set online ends with the hub's timer_done: the node shows and plays it from its bundle", () => {
    const offline = new OfflineFeature({ config: loadAgentConfig({ NODE_ID: 'hall', MQTT_PASSWORD: 'pw', MQTT_URL: 'mqtt://hub.lan:1883' }) } as unknown as ConstructorParameters<typeof OfflineFeature>[0])
    const rang: string[] = []
    offline.mode = { timerDone: (label: string) => rang.push(label) } as unknown as NonNullable<typeof offline.mode>
    offline.handlers.nodeEvents!({ name: 'nodeEvents', params: { node: 'hall' }, data: { v: 1, ts: 1, type: 'timer_done', label: '5 minute timer' } })
    offline.handlers.nodeEvents!({ name: 'nodeEvents', params: { node: 'hall' }, data: { v: 1, ts: 1, type: 'stop' } })
    expect(rang).toEqual(['5 minute timer'])
  })
})
