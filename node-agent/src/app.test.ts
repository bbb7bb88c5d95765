// The node's HTTP app through app.inject(): health and readiness with a failed feature,
// push-to-talk and presence inputs with their errors, metrics, and the screen's app.
import { afterEach, describe, expect, it } from 'vitest'
import { Counter, Registry, type FeatureStatus } from '@mirrormesh/broker'
import { buildAgentApp, type AgentAppDeps, type AgentApp } from './app.js'
import { defaultPublicDir } from './screen.js'

let built: AgentApp | undefined
afterEach(async () => {
  await built?.app.close()
  built = undefined
})

function build(over: Partial<AgentAppDeps> = {}) {
  const calls: { ptt: [boolean, string][]; presence: [boolean, string][] } = { ptt: [], presence: [] }
  const metrics = new Registry()
  new Counter({ name: 'mirrormesh_test_total', help: 'test', registers: [metrics] }).inc()
  built = buildAgentApp({
    healthView: () => ({ nodeId: 'hall', state: 'online' }),
    features: () => [{ name: 'mqtt', state: 'running' }, { name: 'voice', state: 'running' }],
    mqttConnected: () => true,
    voiceProblem: () => null,
    ptt: (pressed, source) => { calls.ptt.push([pressed, source]); return pressed ? 42 : null },
    presence: { set: (present, source) => void calls.presence.push([present, source]) },
    metrics,
    screen: { publicDir: defaultPublicDir(), initial: { nodeId: 'hall' } },
    ...over,
  })
  return { ...built, calls }
}

describe('buildAgentApp', () => {
  it('is ready when every feature runs; a failed one makes /readyz 503 with its reason while /healthz still answers', async () => {
    const { app } = build()
    expect((await app.inject('/readyz')).statusCode).toBe(200)
    await app.close()

    const failed: FeatureStatus[] = [{ name: 'mqtt', state: 'running' }, { name: 'voice', state: 'failed', reason: 'AUDIO_FILE /nope: ENOENT' }]
    const b = build({ features: () => failed })
    const ready = await b.app.inject('/readyz')
    expect(ready.statusCode).toBe(503)
    expect(ready.json()).toEqual({ ready: false, mqttConnected: true, features: failed })
    expect((await b.app.inject('/healthz')).json()).toEqual({ nodeId: 'hall', state: 'online' })
  })

  it('is not ready without the broker', async () => {
    const { app } = build({ mqttConnected: () => false })
    expect((await app.inject('/readyz')).json()).toMatchObject({ ready: false, mqttConnected: false })
  })

  it('POST /api/ptt presses and releases; a bad body is a 400; no voice is a 409 that says why', async () => {
    const { app, calls } = build()
    expect((await app.inject({ method: 'POST', url: '/api/ptt' })).json()).toEqual({ turnId: 42 })
    expect((await app.inject({ method: 'POST', url: '/api/ptt', payload: { pressed: false } })).json()).toEqual({ turnId: null })
    const bad = await app.inject({ method: 'POST', url: '/api/ptt', payload: { pressed: 'up' } })
    expect(bad.statusCode).toBe(400)
    expect(bad.json().message).toBe('body must be empty or {"pressed": true|false}')
    expect(calls.ptt).toEqual([[true, 'http'], [false, 'http']])
    await app.close()

    const b = build({ voiceProblem: () => 'the voice feature is failed: no microphone' })
    const res = await b.app.inject({ method: 'POST', url: '/api/ptt' })
    expect(res.statusCode).toBe(409)
    expect(res.json()).toEqual({ error: 'no_microphone', message: 'the voice feature is failed: no microphone' })
    expect(b.calls.ptt).toEqual([])
  })

  it('POST /api/presence sets presence from http; anything but a boolean is a 400', async () => {
    const { app, calls } = build()
    expect((await app.inject({ method: 'POST', url: '/api/presence', payload: { present: true } })).json()).toEqual({ present: true })
    expect((await app.inject({ method: 'POST', url: '/api/presence', payload: { present: 1 } })).statusCode).toBe(400)
    expect((await app.inject({ method: 'POST', url: '/api/presence' })).statusCode).toBe(400)
    expect(calls.presence).toEqual([[true, 'http']])
  })

  it('serves /metrics and the mirror screen', async () => {
    const { app, screen } = build()
    const m = await app.inject('/metrics')
    expect(m.headers['content-type']).toMatch(/^text\/plain/)
    expect(m.body).toContain('mirrormesh_test_total 1')
    const page = await app.inject('/')
    expect(page.statusCode).toBe(200)
    expect(page.body).toContain('<script src="app.js">')
    expect(screen.state).toMatchObject({ nodeId: 'hall', name: null })
  })
})
