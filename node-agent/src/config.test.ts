import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ConfigError } from '@mirrormesh/broker'
import { loadAgentConfig } from './config.js'

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadAgentConfig(env)
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return (err as ConfigError).problems
  }
  throw new Error('expected a ConfigError')
}

describe('loadAgentConfig', () => {
  it('reports a missing NODE_ID and MQTT_PASSWORD together', () => {
    const problems = problemsOf({})
    expect(problems).toHaveLength(2)
    expect(problems[0]).toMatch(/^NODE_ID is missing\. Fix: set NODE_ID to string/)
    expect(problems[1]).toMatch(/^MQTT_PASSWORD: is required \(or MQTT_PASSWORD_FILE\)\. Fix: run `mirrormesh node add <id>`/)
  })

  it('rejects a node id that is not a valid topic level', () => {
    const problems = problemsOf({ NODE_ID: 'kitchen/+', MQTT_PASSWORD: 'pw' })
    expect(problems).toHaveLength(1)
    expect(problems[0]).toMatch(/^NODE_ID ?="kitchen\/\+" is invalid/)
  })

  // The node watches the hub's heartbeats: its own HEARTBEAT_INTERVAL_MS says nothing about them.
  it.each([['1500', '1000'], ['3000', '2000']])('requires HUB_STALE_MS=%s to span two HUB_HEARTBEAT_INTERVAL_MS=%s', (stale, interval) => {
    const problems = problemsOf({ NODE_ID: 'kitchen', MQTT_PASSWORD: 'pw', HUB_STALE_MS: stale, HUB_HEARTBEAT_INTERVAL_MS: interval })
    expect(problems).toEqual([
      `HUB_STALE_MS: must be at least twice HUB_HEARTBEAT_INTERVAL_MS (${interval}), or one lost hub heartbeat puts the node offline. Fix: raise HUB_STALE_MS to about 3× the hub's HEARTBEAT_INTERVAL_MS (and set HUB_HEARTBEAT_INTERVAL_MS to it).`,
    ])
  })

  it("does not tie HUB_STALE_MS to the node's own HEARTBEAT_INTERVAL_MS", () => {
    // A node beating every 5 s still watches a hub beating every second (the default).
    expect(loadAgentConfig({ NODE_ID: 'kitchen', MQTT_PASSWORD: 'pw', HUB_STALE_MS: '3000', HEARTBEAT_INTERVAL_MS: '5000' })).toMatchObject({ hubStaleMs: 3000, heartbeatIntervalMs: 5000, hubHeartbeatIntervalMs: 1000 })
    expect(problemsOf({ NODE_ID: 'kitchen', MQTT_PASSWORD: 'pw', HUB_STALE_MS: '1000' })[0]).toMatch(/^HUB_STALE_MS: must be at least twice HUB_HEARTBEAT_INTERVAL_MS \(1000\)/)
  })

  it('requires AUDIO_FILE with AUDIO_SOURCE=file', () => {
    expect(problemsOf({ NODE_ID: 'kitchen', MQTT_PASSWORD: 'pw', AUDIO_SOURCE: 'file' })).toEqual(['AUDIO_FILE: is required when AUDIO_SOURCE=file. Fix: set AUDIO_FILE to a 16 kHz mono PCM16 WAV.'])
  })

  it('defaults the username to the node id', () => {
    const cfg = loadAgentConfig({ NODE_ID: 'kitchen', MQTT_PASSWORD: 'pw' })
    expect(cfg).toMatchObject({ nodeId: 'kitchen', mqttUsername: 'kitchen', mqttPassword: 'pw', mqttUrl: 'mqtt://127.0.0.1:1883', hubStaleMs: 3000 })
    expect(Object.isFrozen(cfg)).toBe(true)
  })

  it('reads the password from MQTT_PASSWORD_FILE, trimmed', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'mm-agentcfg-')), 'pw')
    writeFileSync(file, 's3cret\n')
    expect(loadAgentConfig({ NODE_ID: 'kitchen', MQTT_PASSWORD_FILE: file }).mqttPassword).toBe('s3cret')
    expect(problemsOf({ NODE_ID: 'kitchen', MQTT_PASSWORD_FILE: `${file}.missing` })[0]).toMatch(/^MQTT_PASSWORD_FILE: path .* does not exist/)
  })
})
