import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { ConfigError, envBool, envInt, envName, envPort, loadConfig, renderConfigTable } from './config.js'

const shape = {
  port: envPort().default(1883).describe('Port to listen on'),
  name: z.string().min(1).describe('Name of this process'),
  debug: envBool().default(false).describe('Verbose output'),
  level: z.enum(['info', 'debug']).default('info').describe('Log level'),
  retries: envInt(0, 10).default(3).describe('How often to retry'),
}

function problemsOf(fn: () => unknown): string[] {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return (err as ConfigError).problems
  }
  throw new Error('expected a ConfigError')
}

describe('loadConfig', () => {
  it('reports every problem at once, each naming the variable and a fix', () => {
    const env = { PORT: 'http', DEBUG: 'maybe' } // NAME missing too
    let error: ConfigError | undefined
    try {
      loadConfig(shape, env)
    } catch (err) {
      error = err as ConfigError
    }
    expect(error).toBeInstanceOf(ConfigError)
    expect(error!.code).toBe('MM_CONFIG_INVALID')
    expect(error!.message).toMatch(/^invalid configuration \(3 problems\)/)
    const [port, name, debug] = error!.problems
    expect(error!.problems).toHaveLength(3)
    expect(port).toMatch(/^PORT ?="http" is invalid .*Fix: set PORT to integer 0–65535 or unset it for the default 1883 — Port to listen on$/)
    expect(name).toMatch(/^NAME is missing\. Fix: set NAME to string — Name of this process$/)
    expect(debug).toMatch(/^DEBUG ?="maybe" is invalid .*Fix: set DEBUG to boolean or unset it for the default false/)
  })

  it('reports out-of-range numbers with the accepted range', () => {
    const [p] = problemsOf(() => loadConfig(shape, { NAME: 'x', RETRIES: '11' }))
    expect(p).toMatch(/^RETRIES ?="11" is invalid .*integer 0–10/)
  })

  it('applies defaults and treats an empty variable as unset', () => {
    const cfg = loadConfig(shape, { NAME: 'hub', PORT: '', RETRIES: '7' })
    expect(cfg).toEqual({ port: 1883, name: 'hub', debug: false, level: 'info', retries: 7 })
  })

  it('returns a frozen object', () => {
    const cfg = loadConfig(shape, { NAME: 'hub' })
    expect(Object.isFrozen(cfg)).toBe(true)
    expect(() => { (cfg as { port: number }).port = 1 }).toThrow(TypeError)
  })

  it.each([
    ['true', true], ['1', true], ['yes', true], ['on', true],
    ['false', false], ['0', false], ['no', false], ['off', false],
  ])('parses boolean %s as %s', (raw, want) => {
    expect(loadConfig(shape, { NAME: 'x', DEBUG: raw }).debug).toBe(want)
  })

  it('reads a setting from the env var named by .meta({ env })', () => {
    const s = { stateDir: z.string().default('.state').meta({ env: 'MIRRORMESH_STATE_DIR', description: 'State folder' }) }
    expect(loadConfig(s, { MIRRORMESH_STATE_DIR: '/var/lib/mm', STATE_DIR: '/ignored' }).stateDir).toBe('/var/lib/mm')
    expect(loadConfig(s, { STATE_DIR: '/ignored' }).stateDir).toBe('.state')
    const [p] = problemsOf(() => loadConfig({ d: z.string().min(5).meta({ env: 'CUSTOM_D' }) }, { CUSTOM_D: 'x' }))
    expect(p).toMatch(/^CUSTOM_D ?="x" is invalid/)
  })

  it('reports conditional problems from refine together with type errors', () => {
    const s = { cert: z.string().optional(), key: z.string().optional(), port: envPort().default(1) }
    const problems = problemsOf(() => loadConfig(s, { CERT: '/c.pem', PORT: '-1' }, (c, problem) => {
      if (c.cert && !c.key) problem('key', 'is required when CERT is set. Fix: set it.')
    }))
    expect(problems).toHaveLength(2)
    expect(problems[0]).toMatch(/^PORT ?="-1" is invalid/)
    expect(problems[1]).toBe('KEY: is required when CERT is set. Fix: set it.')
  })
})

describe('envName', () => {
  it('maps camelCase keys to UPPER_SNAKE', () => {
    expect(envName('heartbeatIntervalMs')).toBe('HEARTBEAT_INTERVAL_MS')
    expect(envName('mqttTlsCert')).toBe('MQTT_TLS_CERT')
    expect(envName('port')).toBe('PORT')
  })
})

describe('renderConfigTable', () => {
  it('renders one markdown row per setting with type, default and escaped description', () => {
    const table = renderConfigTable({
      ...shape,
      room: z.string().optional().describe('Room | area'),
    }).split('\n')
    expect(table.slice(0, 2)).toEqual(['| variable | type | default | what it does |', '|---|---|---|---|'])
    expect(table).toHaveLength(2 + 6)
    expect(table).toContain('| `PORT` | integer 0–65535 | `1883` | Port to listen on |')
    expect(table).toContain('| `NAME` | string | required | Name of this process |')
    expect(table).toContain('| `DEBUG` | boolean | `false` | Verbose output |')
    expect(table).toContain('| `LEVEL` | one of: info, debug | `info` | Log level |')
    expect(table).toContain('| `ROOM` | string | (unset) | Room \\| area |')
  })
})
