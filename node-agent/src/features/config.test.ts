// The node's config from the hub: applied at once, remembered across a restart without the
// hub, a retained copy delivered again does not undo a local volume change; volume events.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { createLogger, type Message } from '@mirrormesh/broker'
import { loadAgentConfig } from '../config.js'
import { ConfigFeature, wakeWordModel, type NodeSettings } from './config.js'

const log = createLogger({ name: 'test', level: 'silent' })
const root = mkdtempSync(join(tmpdir(), 'mm-nodecfg-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))
let n = 0

function feature(env: Record<string, string> = {}) {
  const dir = join(root, String(n++))
  const config = loadAgentConfig({ NODE_ID: 'hall', MQTT_PASSWORD: 'pw', MIRRORMESH_STATE_DIR: dir, ...env })
  return { dir, make: () => new ConfigFeature({ config, log }) }
}
const hubConfig = (data: Omit<Message<'nodeConfig'>['data'], 'v'>): Message<'nodeConfig'> => ({ name: 'nodeConfig', params: { node: 'hall' }, data: { v: 1, ...data } })
const volumeEvent = (e: { change?: 'up' | 'down'; level?: number }): Message<'nodeEvents'> => ({ name: 'nodeEvents', params: { node: 'hall' }, data: { v: 1, ts: Date.now(), type: 'volume', ...e } })

describe('ConfigFeature', () => {
  it('applies the hub config over the environment, says what changed, and keeps it for a restart without the hub', async () => {
    const { dir, make } = feature({ ROOM: 'hall' })
    const f = make()
    await f.start()
    expect(f.settings).toEqual({ room: 'hall', name: null, volume: 100 })
    const changes: (keyof NodeSettings)[][] = []
    f.on('change', (_s, changed) => changes.push(changed))
    f.handlers.nodeConfig!(hubConfig({ ts: 1000, room: 'kitchen', name: 'Mirror', volume: 40 }))
    expect(f.settings).toEqual({ room: 'kitchen', name: 'Mirror', volume: 40 })
    expect(changes).toEqual([['room', 'name', 'volume']])
    await f.stop()
    expect(JSON.parse(readFileSync(join(dir, 'node-config.json'), 'utf8'))).toEqual({ hubTs: 1000, room: 'kitchen', name: 'Mirror', volume: 40 })

    const again = make()
    await again.start()
    expect(again.settings).toEqual({ room: 'kitchen', name: 'Mirror', volume: 40 })
  })

  it('volume events step by 10 within 0–100 or set a level; the retained config delivered again on reconnect does not undo them', async () => {
    const { make } = feature()
    const f = make()
    await f.start()
    f.handlers.nodeConfig!(hubConfig({ ts: 2000, volume: 95 }))
    f.handlers.nodeEvents!(volumeEvent({ change: 'up' }))
    expect(f.settings.volume).toBe(100)
    f.handlers.nodeEvents!(volumeEvent({ change: 'down' }))
    f.handlers.nodeEvents!(volumeEvent({ change: 'down' }))
    expect(f.settings.volume).toBe(80)
    f.handlers.nodeEvents!(volumeEvent({ level: 5 }))
    f.handlers.nodeEvents!(volumeEvent({ change: 'down' }))
    expect(f.settings.volume).toBe(0)
    f.handlers.nodeConfig!(hubConfig({ ts: 2000, volume: 95 })) // the same retained message again
    expect(f.settings.volume).toBe(0)
    f.handlers.nodeConfig!(hubConfig({ ts: 3000, volume: 60 })) // a new push from the hub wins
    expect(f.settings.volume).toBe(60)
    await f.stop()
    const again = make()
    await again.start()
    expect(again.settings.volume).toBe(60)
  })

  it('a wake word change waits for the next start and says so', async () => {
    const { make } = feature()
    const f = make()
    await f.start()
    f.wakeWordInUse = 'hey_jarvis'
    f.handlers.nodeConfig!(hubConfig({ ts: 1, wakeWord: 'Hey Jarvis' }))
    expect(f.wakeWordPending).toBe(false)
    f.handlers.nodeConfig!(hubConfig({ ts: 2, wakeWord: 'alexa' }))
    expect(f.wakeWordPending).toBe(true)
    expect(f.settings.wakeWord).toBe('alexa')
    expect(wakeWordModel('Hey  Mycroft')).toBe('hey_mycroft')
    expect(wakeWordModel('hé!')).toBeUndefined()
  })

  it('starts on the environment when the saved file is unreadable', async () => {
    const { dir, make } = feature({ ROOM: 'office' })
    const f = make()
    await f.start() // creates nothing yet
    f.handlers.nodeConfig!(hubConfig({ ts: 5, room: 'attic' }))
    await f.stop()
    writeFileSync(join(dir, 'node-config.json'), '{"room": 7')
    const again = make()
    await again.start()
    expect(again.settings.room).toBe('office')
  })
})
