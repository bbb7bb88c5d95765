import { Writable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { createLogger, resolveLogFormat } from './log.js'

function capture(): { destination: Writable; text: () => string } {
  const chunks: string[] = []
  const destination = new Writable({ write(chunk, _enc, cb) { chunks.push(String(chunk)); cb() } })
  return { destination, text: () => chunks.join('') }
}

const flush = () => new Promise((r) => setTimeout(r, 50))

describe('log format', () => {
  it('is JSON to a stream, pretty only when asked (format or LOG_FORMAT) or on a terminal', () => {
    const { destination } = capture()
    expect(resolveLogFormat({ destination, env: {} })).toBe('json')
    expect(resolveLogFormat({ destination, env: { LOG_FORMAT: 'pretty' } })).toBe('pretty')
    expect(resolveLogFormat({ env: { LOG_FORMAT: 'json' } })).toBe('json')
    expect(resolveLogFormat({ format: 'pretty', env: { LOG_FORMAT: 'json' } })).toBe('pretty')
    expect(resolveLogFormat({ env: {} })).toBe(process.stdout.isTTY ? 'pretty' : 'json')
    expect(() => resolveLogFormat({ env: { LOG_FORMAT: 'yaml' } })).toThrow(/LOG_FORMAT="yaml" is invalid\. Fix: set LOG_FORMAT to json or pretty/)
  })

  it('pretty output is human-readable and still redacts secrets and pii', async () => {
    const out = capture()
    const log = createLogger({ name: 'hub', format: 'pretty', destination: out.destination }).child({ component: 'auth' })
    log.info({ password: 'hunter2', creds: { token: 'tok-123' }, pii: { text: 'my secret words' }, nodeId: 'kitchen' }, 'node connected')
    await flush()
    const text = out.text()
    expect(text).toMatch(/INFO.*\(hub\).*node connected/)
    expect(text).not.toMatch(/^\{/)
    expect(text).toMatch(/nodeId: "kitchen"/)
    expect(text).toMatch(/password: "\[redacted\]"/)
    expect(text).not.toMatch(/hunter2|tok-123|my secret words/)
  })

  it('pretty output shows pii only when LOG_PII is on, as JSON does', async () => {
    const out = capture()
    createLogger({ name: 'hub', format: 'pretty', pii: true, destination: out.destination }).info({ pii: { text: 'turn on the lights' } }, 'transcript')
    await flush()
    expect(out.text()).toMatch(/turn on the lights/)
  })

  it('JSON stays JSON (one object per line) with the same redaction', async () => {
    const out = capture()
    createLogger({ name: 'agent', format: 'json', destination: out.destination }).info({ password: 'hunter2', pii: 'words' }, 'hello')
    await flush()
    const line = JSON.parse(out.text().trim()) as Record<string, unknown>
    expect(line).toMatchObject({ name: 'agent', msg: 'hello', password: '[redacted]', pii: '[redacted]' })
  })
})
