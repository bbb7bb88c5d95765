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

  it.each([['1000', '1000'], ['800', '1000']])('requires HUB_STALE_MS=%s to exceed HEARTBEAT_INTERVAL_MS=%s', (stale, interval) => {
    const problems = problemsOf({ NODE_ID: 'kitchen', MQTT_PASSWORD: 'pw', HUB_STALE_MS: stale, HEARTBEAT_INTERVAL_MS: interval })
    expect(problems).toEqual([
      `HUB_STALE_MS: must be longer than HEARTBEAT_INTERVAL_MS (${interval}). Fix: raise HUB_STALE_MS to at least 3× the heartbeat interval.`,
    ])
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
