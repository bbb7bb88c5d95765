import { afterEach, describe, expect, it, vi } from 'vitest'
import { FeatureHost, createLogger, type Payload } from '@mirrormesh/broker'
import { HealthFeature, type ComponentHealth, type HealthPublisher } from './health.js'

const log = createLogger({ name: 'test', level: 'silent' })

function fakeMqtt() {
  const published: [string, Payload<'health'>][] = []
  const hooks: (() => void | Promise<void>)[] = []
  let connected = false
  // Like MqttFeature.publish: nothing goes out while disconnected.
  const mqtt: HealthPublisher = {
    onConnect: (fn) => { hooks.push(fn) },
    publish: (async (_name: 'health', params: { component?: string }, data: Payload<'health'>) => { if (connected) published.push([params.component!, data]) }) as HealthPublisher['publish'],
  }
  return { mqtt, published, connect: () => { connected = true; return Promise.all(hooks.map(async (h) => h())) } }
}

afterEach(() => { vi.useRealTimers() })

describe('HealthFeature', () => {
  it('publishes every component on connect, then only the ones that change, as engines go down and come back', async () => {
    vi.useFakeTimers()
    const host = new FeatureHost(log)
    const { mqtt, published, connect } = fakeMqtt()
    let llm: ComponentHealth = { state: 'ok' }
    const health = host.add(new HealthFeature(1000, mqtt, host, [() => ({ broker: { state: 'ok' }, llm })], log))
    await host.start()
    await connect()
    expect(published.map(([c, d]) => [c, d.state])).toEqual([['broker', 'ok'], ['llm', 'ok']])
    published.length = 0
    vi.advanceTimersByTime(1000)
    expect(published).toEqual([])
    llm = { state: 'down', reason: 'timeouts' }
    vi.advanceTimersByTime(1000)
    expect(published.map(([c, d]) => [c, d.state, d.reason])).toEqual([['llm', 'down', 'timeouts']])
    llm = { state: 'ok' }
    vi.advanceTimersByTime(1000)
    expect(published.map(([c, d]) => [c, d.state])).toEqual([['llm', 'down'], ['llm', 'ok']])
    health.stop()
  })

  it('reports a feature that failed to start as down under its own name', async () => {
    const host = new FeatureHost(log)
    const { mqtt, published, connect } = fakeMqtt()
    host.add(new HealthFeature(60_000, mqtt, host, [], log))
    host.add({ name: 'bundle', start: () => { throw new Error('EACCES: bundles not writable') } })
    await host.start()
    await connect()
    expect(published).toEqual([['bundle', expect.objectContaining({ state: 'down', reason: 'EACCES: bundles not writable' })]])
    await host.stop()
  })
})
