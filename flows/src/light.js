// actions/light from a mirror's light skill → zigbee2mqtt `<friendly name>/set` (and a
// Home Assistant service call when HA_URL is set). The room → device table is the one place
// rooms map to devices; LIGHT_DEVICES (JSON, same shape) replaces it without editing flows.
const table = JSON.parse(env.get('LIGHT_DEVICES') || 'null') || {
  kitchen: { zigbee: 'kitchen_light', ha: 'light.kitchen' },
  hall: { zigbee: 'hall_light', ha: 'light.hall' },
  bedroom: { zigbee: 'bedroom_light', ha: 'light.bedroom' },
  'living room': { zigbee: 'living_room_light', ha: 'light.living_room' },
}
const a = msg.payload
if (!a || typeof a !== 'object' || a.action !== 'set' || !a.room) {
  node.warn(`light action ignored: ${JSON.stringify(a)}`)
  return null
}
const dev = table[String(a.room).toLowerCase()]
if (!dev) {
  node.warn(`no light for room "${a.room}": add it to the room → device table`)
  return null
}
const on = String(a.state).toLowerCase() === 'on'
const z2m = dev.zigbee ? { topic: `${env.get('Z2M_BASE') || 'zigbee2mqtt'}/${dev.zigbee}/set`, payload: { state: on ? 'ON' : 'OFF' } } : null
const haUrl = env.get('HA_URL')
const ha = haUrl && dev.ha ? {
  url: `${haUrl.replace(/\/$/, '')}/api/services/light/${on ? 'turn_on' : 'turn_off'}`,
  method: 'POST',
  headers: { authorization: `Bearer ${env.get('HA_TOKEN') || ''}`, 'content-type': 'application/json' },
  payload: { entity_id: dev.ha },
} : null
return [z2m, ha]
