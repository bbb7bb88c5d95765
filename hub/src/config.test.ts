import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ConfigError } from '@mirrormesh/broker'
import { loadHubConfig } from './config.js'

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadHubConfig(env)
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return (err as ConfigError).problems
  }
  throw new Error('expected a ConfigError')
}

const dir = mkdtempSync(join(tmpdir(), 'mm-hubcfg-'))
const cert = join(dir, 'cert.pem')
writeFileSync(cert, 'not really a cert')

describe('loadHubConfig', () => {
  it('starts with defaults and puts credentials in the state dir', () => {
    const cfg = loadHubConfig({ MIRRORMESH_STATE_DIR: dir })
    expect(cfg).toMatchObject({ baseTopic: 'mirrormesh', hubId: 'main', mqttPort: 1883, mqttWsEnabled: true, httpHost: '127.0.0.1', nodeStaleMs: 3000 })
    expect(cfg.stateDir).toBe(resolve(dir))
    expect(cfg.credentialsFile).toBe(join(resolve(dir), 'credentials.json'))
    expect(Object.isFrozen(cfg)).toBe(true)
  })

  it('requires MQTT_TLS_KEY when MQTT_TLS_CERT is set', () => {
    expect(problemsOf({ MQTT_TLS_CERT: cert })).toEqual([
      'MQTT_TLS_KEY: is required when MQTT_TLS_CERT is set. Fix: set it to the PEM key path, or unset MQTT_TLS_CERT.',
    ])
  })

  it('reports a TLS path that does not exist', () => {
    const problems = problemsOf({ MQTT_TLS_CERT: cert, MQTT_TLS_KEY: join(dir, 'missing.key') })
    expect(problems).toHaveLength(1)
    expect(problems[0]).toMatch(/^MQTT_TLS_KEY: path ".*missing\.key" does not exist/)
  })

  it('requires MQTT_USERNAME when MQTT_PASSWORD is set', () => {
    expect(problemsOf({ MQTT_URL: 'mqtt://broker.lan:1883', MQTT_PASSWORD: 'pw' })).toEqual([
      'MQTT_USERNAME: is required when MQTT_PASSWORD is set. Fix: set the external broker username.',
    ])
  })

  it('requires MQTT_URL when external broker credentials are set', () => {
    const problems = problemsOf({ MQTT_USERNAME: 'hub', MQTT_PASSWORD: 'pw' })
    expect(problems).toHaveLength(1)
    expect(problems[0]).toMatch(/^MQTT_URL: is required when MQTT_USERNAME\/MQTT_PASSWORD are set/)
  })

  it('refuses a second early-end probe that would come no later than the first (it was silently never run)', () => {
    expect(problemsOf({ EARLY_END_SILENCE_MS: '150', EARLY_END_RETRY_MS: '150' })).toEqual([
      'EARLY_END_RETRY_MS: is 150 ms, not longer than EARLY_END_SILENCE_MS (150 ms): the second probe is later in the same pause than the first. Fix: set EARLY_END_RETRY_MS above EARLY_END_SILENCE_MS, or to 0 for no second probe.',
    ])
    // Left at its default (200) under a longer first probe: a hub configured that way before still starts, without a second probe.
    expect(loadHubConfig({ MIRRORMESH_STATE_DIR: dir, EARLY_END_SILENCE_MS: '300' })).toMatchObject({ earlyEndSilenceMs: 300, earlyEndRetryMs: 200 })
    expect(loadHubConfig({ MIRRORMESH_STATE_DIR: dir, EARLY_END_RETRY_MS: '0' }).earlyEndRetryMs).toBe(0)
    expect(loadHubConfig({ MIRRORMESH_STATE_DIR: dir, EARLY_END_SILENCE_MS: '0', EARLY_END_RETRY_MS: '50' }).earlyEndSilenceMs).toBe(0) // early end off: nothing to compare
  })

  it('reports range errors together with conditional ones', () => {
    const problems = problemsOf({ MQTT_PORT: '70000', MQTT_TLS_CERT: cert })
    expect(problems).toHaveLength(2)
    expect(problems[0]).toMatch(/^MQTT_PORT ?="70000" is invalid/)
    expect(problems[1]).toMatch(/^MQTT_TLS_KEY: is required/)
  })

  it('TLS listeners follow MQTT_HOST unless set; a missing certificate names `mirrormesh tls init`', () => {
    expect(loadHubConfig({ MIRRORMESH_STATE_DIR: dir, MQTT_HOST: '127.0.0.1' })).toMatchObject({ mqttTlsHost: '127.0.0.1', httpsHost: '127.0.0.1', httpsPort: 8443 })
    expect(loadHubConfig({ MIRRORMESH_STATE_DIR: dir, MQTT_HOST: '127.0.0.1', MQTT_TLS_HOST: '0.0.0.0' })).toMatchObject({ mqttTlsHost: '0.0.0.0', httpsHost: '0.0.0.0' })
    expect(loadHubConfig({ MIRRORMESH_STATE_DIR: dir, MQTT_TLS_HOST: '0.0.0.0', HTTPS_HOST: '127.0.0.1' })).toMatchObject({ httpsHost: '127.0.0.1' })
    expect(problemsOf({ MQTT_TLS_CERT: join(dir, 'tls', 'hub.pem'), MQTT_TLS_KEY: cert })[0]).toMatch(/^MQTT_TLS_CERT: path ".*hub\.pem" does not exist\. Fix: run `mirrormesh tls init/)
  })
})
