import { EventEmitter } from 'node:events'
import { describe, expect, it } from 'vitest'
import { createLogger, type MeshClient } from '@mirrormesh/broker'
import { Presence } from '../presence.js'
import { InputsFeature } from './inputs.js'

describe('InputsFeature', () => {
  it('a presence change made while MQTT is down reaches the retained topic on the next connect', async () => {
    const client = Object.assign(new EventEmitter(), {
      connected: false,
      sent: [] as unknown[],
      async publish(_name: string, _params: unknown, data: unknown) {
        if (!this.connected) throw new Error('not connected')
        this.sent.push(data)
      },
    })
    const presence = new Presence({ debounceMs: 0 })
    const inputs = new InputsFeature({ config: { nodeId: 'hall' } as never, client: client as unknown as MeshClient, presence, voice: undefined, log: createLogger({ name: 'test', level: 'silent' }) })
    inputs.start()
    client.emit('connect') // nothing changed yet: a node without a sensor claims nothing
    expect(client.sent).toEqual([])
    presence.set(true, 'http')
    await new Promise((r) => setTimeout(r, 20))
    expect(client.sent).toEqual([]) // the publish failed: not connected
    client.connected = true
    client.emit('connect')
    await new Promise((r) => setTimeout(r, 0))
    expect(client.sent).toMatchObject([{ present: true, source: 'http' }])
    inputs.stop()
  })
})
