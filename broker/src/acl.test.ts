import { describe, expect, it } from 'vitest'
import { canPublish, canSubscribe, clientIdAllowed, filterCovers, renderMosquittoAcl, type Principal } from './acl.js'

const base = 'mirrormesh'
const kitchen: Principal = { role: 'node', id: 'kitchen' }
const hub: Principal = { role: 'hub', id: 'hub-main' }
const observer: Principal = { role: 'observer', id: 'grafana' }

describe('filterCovers', () => {
  it.each([
    ['#', 'a/b/c', true],
    ['a/#', 'a/b/c', true],
    ['a/#', 'a/#', true],
    ['a/#', 'a/+/c', true],
    ['a/#', 'b/c', false],
    ['a/+/c', 'a/b/c', true],
    ['a/+/c', 'a/+/c', true],
    ['a/+/c', 'a/b/d', false],
    ['a/b/c', 'a/b/c', true],
    ['a/b/c', 'a/+/c', false],
    ['a/b', 'a/b/c', false], // requested filter is longer
    ['a/b/c', 'a/b', false], // requested filter is shorter
    ['a/+', 'a/#', false], // '#' requested, only '+' allowed
    ['a/+/c', 'a/#', false],
    ['a/b', '#', false],
  ])('allowed %s covers %s → %s', (allowed, filter, want) => {
    expect(filterCovers(allowed, filter)).toBe(want)
  })
})

describe('canPublish', () => {
  it.each(['status', 'heartbeat', 'presence', 'events', 'probe', 'audio/in'])('lets a node publish its own %s', (leaf) => {
    expect(canPublish(base, kitchen, `mirrormesh/nodes/kitchen/${leaf}`)).toBe(true)
  })

  it('denies a node publishing under another node id', () => {
    expect(canPublish(base, kitchen, 'mirrormesh/nodes/hall/heartbeat')).toBe(false)
    expect(canPublish(base, kitchen, 'mirrormesh/nodes/hall/status')).toBe(false)
  })

  it.each([
    'mirrormesh/nodes/kitchen/config',
    'mirrormesh/nodes/kitchen/audio/out',
    'mirrormesh/hub/main/status',
    'mirrormesh/hub/main/heartbeat',
    'mirrormesh/clients/online',
    'mirrormesh/cache/manifest',
    'mirrormesh/health/hub',
  ])('denies a node publishing hub-only topic %s', (topic) => {
    expect(canPublish(base, kitchen, topic)).toBe(false)
  })

  it('denies a node publishing outside the contract', () => {
    expect(canPublish(base, kitchen, 'other/nodes/kitchen/heartbeat')).toBe(false)
    expect(canPublish(base, kitchen, 'mirrormesh/nodes/kitchen/heartbeat/x')).toBe(false)
    expect(canPublish(base, kitchen, 'homeassistant/light/x/set')).toBe(false)
  })

  it('lets the hub publish anything and the observer only node commands (push-to-talk, presence)', () => {
    for (const topic of ['mirrormesh/nodes/kitchen/config', 'mirrormesh/hub/main/status', 'homeassistant/x', 'mirrormesh/nodes/kitchen/presence']) {
      expect(canPublish(base, hub, topic)).toBe(true)
      expect(canPublish(base, observer, topic)).toBe(false)
    }
    expect(canPublish(base, observer, 'mirrormesh/nodes/grafana/heartbeat')).toBe(false)
    expect(canPublish(base, observer, 'mirrormesh/nodes/kitchen/set')).toBe(true)
    // A node may not command itself or another node: only people's tools do.
    expect(canPublish(base, kitchen, 'mirrormesh/nodes/kitchen/set')).toBe(false)
    expect(canPublish(base, kitchen, 'mirrormesh/nodes/hall/set')).toBe(false)
  })
})

describe('offline journal replay (request/response)', () => {
  it('lets a node publish only its own replay request and read only its own replay response', () => {
    expect(canPublish(base, kitchen, 'mirrormesh/nodes/kitchen/request/replay')).toBe(true)
    expect(canPublish(base, kitchen, 'mirrormesh/nodes/hall/request/replay')).toBe(false)
    expect(canPublish(base, kitchen, 'mirrormesh/nodes/kitchen/response/replay')).toBe(false) // only the hub answers
    expect(canPublish(base, kitchen, 'mirrormesh/nodes/kitchen/request/other')).toBe(false)
    expect(canPublish(base, observer, 'mirrormesh/nodes/kitchen/request/replay')).toBe(false)
    expect(canPublish(base, hub, 'mirrormesh/nodes/kitchen/response/replay')).toBe(true)
    expect(canSubscribe(base, kitchen, 'mirrormesh/nodes/kitchen/response/replay')).toBe(true)
    expect(canSubscribe(base, kitchen, 'mirrormesh/nodes/hall/response/replay')).toBe(false)
    expect(canSubscribe(base, kitchen, 'mirrormesh/nodes/+/response/replay')).toBe(false)
    expect(canSubscribe(base, kitchen, 'mirrormesh/nodes/kitchen/request/replay')).toBe(false)
    expect(canSubscribe(base, kitchen, 'mirrormesh/nodes/kitchen/response/#')).toBe(false)
  })

  it('renders the same rules for Mosquitto', () => {
    const lines = renderMosquittoAcl(base, { hubs: ['hub-main'] }).split('\n')
    expect(lines).toContain('pattern write mirrormesh/nodes/%u/request/replay')
    expect(lines).toContain('pattern read mirrormesh/nodes/%u/response/replay')
    expect(lines.filter((l) => l.includes('replay'))).toHaveLength(2)
  })
})

describe('canSubscribe', () => {
  it.each(['status', 'heartbeat', 'presence', 'events', 'config', 'probe', 'audio/out', 'set'])('lets a node read its own %s', (leaf) => {
    expect(canSubscribe(base, kitchen, `mirrormesh/nodes/kitchen/${leaf}`)).toBe(true)
  })

  it.each([
    'mirrormesh/nodes/hall/config',
    'mirrormesh/nodes/hall/audio/out',
    'mirrormesh/nodes/+/status',
    'mirrormesh/nodes/#',
    'mirrormesh/#',
    '#',
    'mirrormesh/nodes/kitchen/#', // would include audio/in, which a node may not read
    'mirrormesh/nodes/kitchen/audio/in',
    'mirrormesh/clients/online',
  ])('denies a node subscribing to %s', (filter) => {
    expect(canSubscribe(base, kitchen, filter)).toBe(false)
  })

  it('lets a node watch any hub and component', () => {
    expect(canSubscribe(base, kitchen, 'mirrormesh/hub/+/status')).toBe(true)
    expect(canSubscribe(base, kitchen, 'mirrormesh/hub/main/heartbeat')).toBe(true)
    expect(canSubscribe(base, kitchen, 'mirrormesh/health/+')).toBe(true)
    expect(canSubscribe(base, kitchen, 'mirrormesh/cache/manifest')).toBe(true)
    expect(canSubscribe(base, kitchen, 'mirrormesh/hub/#')).toBe(false)
  })

  it('lets an observer read everything under the base and Home Assistant discovery, nothing else', () => {
    expect(canSubscribe(base, observer, 'mirrormesh/#')).toBe(true)
    expect(canSubscribe(base, observer, 'mirrormesh/nodes/+/heartbeat')).toBe(true)
    expect(canSubscribe(base, observer, '#')).toBe(false)
    // Home Assistant on an observer credential reads the discovery configs the hub retains.
    expect(canSubscribe(base, observer, 'homeassistant/#')).toBe(true)
    expect(canSubscribe(base, observer, 'zigbee2mqtt/#')).toBe(false)
  })

  it('lets an observer publish node commands and HA\'s birth message only', () => {
    expect(canPublish(base, observer, 'mirrormesh/nodes/kitchen/set')).toBe(true)
    expect(canPublish(base, observer, 'homeassistant/status')).toBe(true)
    expect(canPublish(base, observer, 'homeassistant/switch/x/config')).toBe(false)
    expect(canPublish(base, observer, 'zigbee2mqtt/kitchen_light/set')).toBe(false)
  })

  it('gives the automation role actions to read and zigbee2mqtt set topics to write, nothing more', () => {
    const auto = { role: 'automation' as const, id: 'nodered-automation' }
    expect(canSubscribe(base, auto, 'mirrormesh/actions/light')).toBe(true)
    expect(canSubscribe(base, auto, 'mirrormesh/clients/online')).toBe(true)
    expect(canSubscribe(base, auto, 'mirrormesh/#')).toBe(false)
    expect(canSubscribe(base, auto, 'mirrormesh/nodes/+/events')).toBe(false)
    expect(canPublish(base, auto, 'zigbee2mqtt/kitchen_light/set')).toBe(true)
    expect(canPublish(base, auto, 'zigbee2mqtt/bridge/request/permit_join')).toBe(false)
    expect(canPublish(base, auto, 'mirrormesh/nodes/kitchen/set')).toBe(false)
    expect(canPublish(base, auto, 'mirrormesh/actions/light')).toBe(false)
  })

  it('lets the hub subscribe to anything', () => {
    expect(canSubscribe(base, hub, '#')).toBe(true)
  })
})

describe('clientIdAllowed', () => {
  it.each([
    ['node-kitchen', true],
    ['node-kitchen/screen', true],
    ['node-kitchenette', false],
    ['node-hall', false],
    ['kitchen', false],
    ['', false],
  ])('node kitchen with client id %j → %s', (clientId, want) => {
    expect(clientIdAllowed(kitchen, clientId)).toBe(want)
  })

  it.each([
    ['observer', 'dash', true], ['observer', 'dash-1', true], ['observer', 'dash/ha', true], ['observer', 'observer-dash_nr', true],
    ['observer', 'hub-main', false], ['observer', 'node-kitchen', false], ['observer', 'node-kitchen/x', false], ['observer', 'dashboard-1', false],
    ['observer', 'other-1', false], ['observer', '', false],
    ['hub', 'hub-main', true], ['hub', 'hub-main/probe', true], ['hub', 'main', true], ['hub', 'hub-other', false], ['hub', 'node-kitchen', false],
  ] as const)('%s with client id %j → %s', (role, clientId, want) => {
    const who = role === 'observer' ? { role, id: 'dash' } : { role, id: 'main' }
    expect(clientIdAllowed(who, clientId)).toBe(want)
  })
})

describe('renderMosquittoAcl', () => {
  const acl = renderMosquittoAcl(base, { hubs: ['hub-main'], observers: ['grafana'] })
  const lines = acl.split('\n')

  it.each([
    'pattern readwrite mirrormesh/nodes/%u/status',
    'pattern readwrite mirrormesh/nodes/%u/heartbeat',
    'pattern readwrite mirrormesh/nodes/%u/events',
    'pattern write mirrormesh/nodes/%u/audio/in',
    'pattern read mirrormesh/nodes/%u/audio/out',
    'pattern read mirrormesh/nodes/%u/config',
    'pattern read mirrormesh/nodes/%u/set',
    'pattern read mirrormesh/hub/+/status',
    'pattern read mirrormesh/hub/+/heartbeat',
    'pattern read mirrormesh/health/+',
    'pattern read mirrormesh/cache/manifest',
  ])('contains %s', (line) => {
    expect(lines).toContain(line)
  })

  it('gives nodes nothing on clients/online and grants hubs and observers the base', () => {
    expect(acl).not.toContain('clients/online')
    expect(acl).toContain('user hub-main\ntopic readwrite mirrormesh/#\n')
    expect(acl).toContain('user grafana\ntopic read mirrormesh/#\ntopic write mirrormesh/nodes/+/set\n')
    expect(acl.endsWith('\n')).toBe(true)
  })
})
