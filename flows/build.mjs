// Writes flows.json from src/ (function bodies and the dashboard template are kept as
// plain files so they can be read and linted). `node flows/build.mjs --check` fails when
// flows.json is out of date; the dashboard test runs it.
import { readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const src = (f) => readFileSync(join(here, 'src', f), 'utf8')
const base = 'mirrormesh'
const tab = 'mm.tab'
let y = 40
const at = (x = 160) => ({ z: tab, x, y: (y += 0) })
const row = () => { y += 60 }

// The broker pins each credential to client ids starting with its username (README "Security"):
// the launcher sets the ids, since Node-RED substitutes only whole-property ${VAR}s.
const broker = (id, name, user, pass, clientId) => ({
  id, type: 'mqtt-broker', name, broker: '${MQTT_HOST}', port: '${MQTT_PORT}', clientid: `\${${clientId}}`, autoConnect: true, usetls: false,
  protocolVersion: '4', keepalive: '30', cleansession: true, autoUnsubscribe: true,
  birthTopic: '', birthQos: '0', birthRetain: 'false', birthPayload: '', birthMsg: {},
  closeTopic: '', closeQos: '0', closeRetain: 'false', closePayload: '', closeMsg: {},
  willTopic: '', willQos: '0', willRetain: 'false', willPayload: '', willMsg: {}, userProps: '', sessionExpiry: '',
  // Not secrets: Node-RED substitutes these environment variables when it starts.
  credentials: { user: `\${${user}}`, password: `\${${pass}}` },
})

const observed = ['nodes/+/status', 'nodes/+/heartbeat', 'nodes/+/presence', 'nodes/+/config', 'nodes/+/events', 'nodes/+/response/replay', 'hub/+/status', 'hub/+/heartbeat', 'health/+', 'clients/online']
const flows = [
  { id: tab, type: 'tab', label: 'mirrormesh', disabled: false, info: 'Dashboard and automations for a mirrormesh house. Credentials come from the environment (MQTT_USERNAME/MQTT_PASSWORD: observer; AUTOMATION_USERNAME/AUTOMATION_PASSWORD: automation).' },
  broker('mm.observer', 'mirrormesh observer', 'MQTT_USERNAME', 'MQTT_PASSWORD', 'MQTT_CLIENT_ID'),
  broker('mm.automation', 'mirrormesh automation', 'AUTOMATION_USERNAME', 'AUTOMATION_PASSWORD', 'AUTOMATION_CLIENT_ID'),
  { id: 'mm.ui', type: 'ui-base', name: 'mirrormesh', path: '/dashboard', appIcon: '', includeClientData: true, acceptsClientConfig: ['ui-notification', 'ui-control'], showPathInSidebar: false, headerContent: 'page', navigationStyle: 'none', titleBarStyle: 'default', showReconnectNotification: true, notificationDisplayTime: 1, showDisconnectNotification: true },
  { id: 'mm.theme', type: 'ui-theme', name: 'mirrormesh', colors: { surface: '#263238', primary: '#0d74ce', bgPage: '#f4f5f7', groupBg: '#ffffff', groupOutline: '#d9d9e0' }, sizes: { density: 'compact', pagePadding: '12px', groupGap: '12px', groupBorderRadius: '4px', widgetGap: '12px' } },
  { id: 'mm.page', type: 'ui-page', name: 'House', ui: 'mm.ui', path: '/house', icon: 'home', layout: 'grid', theme: 'mm.theme', breakpoints: [{ name: 'Default', px: 0, cols: 3 }, { name: 'Tablet', px: 576, cols: 6 }, { name: 'Small Desktop', px: 768, cols: 9 }, { name: 'Desktop', px: 1024, cols: 12 }], order: 1, className: '', visible: 'true', disabled: 'false' },
  { id: 'mm.group', type: 'ui-group', name: 'mirrormesh house', page: 'mm.page', width: '12', height: '1', order: 1, showTitle: true, className: '', visible: 'true', disabled: 'false', groupType: 'default' },
]
const inIds = observed.map((t, i) => `mm.in.${i}`)
observed.forEach((t, i) => {
  flows.push({ id: inIds[i], type: 'mqtt in', ...at(160), y: 40 + i * 40, name: t, topic: `${base}/${t}`, qos: '1', datatype: 'utf8', broker: 'mm.observer', nl: false, rap: true, rh: 0, inputs: 0, wires: [['mm.state']] })
})
y = 40 + observed.length * 40
flows.push({ id: 'mm.broker.status', type: 'status', z: tab, x: 160, y: y + 40, name: 'observer connection', scope: [inIds[0]], wires: [['mm.state']] })
flows.push({ id: 'mm.tick', type: 'inject', ...at(160), name: 'every second', props: [{ p: 'topic', vt: 'str' }], repeat: '1', crontab: '', once: true, onceDelay: '1', topic: 'tick', wires: [['mm.state']] })
row()
flows.push(
  { id: 'mm.state', type: 'function', z: tab, x: 480, y: 200, name: 'house state', func: src('house-state.js'), outputs: 2, timeout: 0, noerr: 0, initialize: '', finalize: '', libs: [], wires: [['mm.view'], ['mm.notify', 'mm.notify.log']] },
  { id: 'mm.view', type: 'ui-template', z: tab, x: 720, y: 160, group: 'mm.group', page: '', ui: '', name: 'house', order: 1, width: '12', height: '0', head: '', format: src('house.vue'), storeOutMessages: true, passthru: false, resendOnRefresh: true, templateScope: 'local', className: '', wires: [['mm.set']] },
  { id: 'mm.set', type: 'mqtt out', z: tab, x: 960, y: 160, name: 'nodes/{id}/set', topic: '', qos: '1', retain: 'false', respTopic: '', contentType: '', userProps: '', correl: '', expiry: '', broker: 'mm.observer', wires: [] },
  { id: 'mm.notify', type: 'ui-notification', z: tab, x: 720, y: 240, ui: 'mm.ui', position: 'top right', colorDefault: false, color: '#c62828', displayTime: '10', showCountdown: true, outputs: 0, allowDismiss: true, dismissText: 'Close', allowConfirm: false, confirmText: 'Confirm', raw: false, className: '', name: 'offline / hub down', wires: [] },
  { id: 'mm.notify.log', type: 'debug', z: tab, x: 720, y: 280, name: 'notifications', active: true, tosidebar: true, console: true, tostatus: false, complete: 'payload', targetType: 'msg', statusVal: '', statusType: 'auto', wires: [] },
  { id: 'mm.light.in', type: 'mqtt in', z: tab, x: 160, y: 560, name: 'actions/light', topic: `${base}/actions/light`, qos: '1', datatype: 'json', broker: 'mm.automation', nl: false, rap: true, rh: 0, inputs: 0, wires: [['mm.light']] },
  { id: 'mm.light', type: 'function', z: tab, x: 420, y: 560, name: 'room → device table', func: src('light.js'), outputs: 2, timeout: 0, noerr: 0, initialize: '', finalize: '', libs: [], wires: [['mm.z2m'], ['mm.ha']] },
  { id: 'mm.z2m', type: 'mqtt out', z: tab, x: 700, y: 540, name: 'zigbee2mqtt/<name>/set', topic: '', qos: '1', retain: 'false', respTopic: '', contentType: '', userProps: '', correl: '', expiry: '', broker: 'mm.automation', wires: [] },
  { id: 'mm.ha', type: 'http request', z: tab, x: 700, y: 600, name: 'Home Assistant light service', method: 'use', ret: 'txt', paytoqs: 'ignore', url: '', tls: '', persist: false, proxy: '', insecureHTTPParser: false, authType: '', senderr: false, headers: [], wires: [['mm.ha.log']] },
  { id: 'mm.ha.log', type: 'debug', z: tab, x: 940, y: 600, name: 'HA answer', active: true, tosidebar: true, console: false, tostatus: true, complete: 'statusCode', targetType: 'msg', statusVal: 'statusCode', statusType: 'msg', wires: [] },
)
const text = JSON.stringify(flows, null, 2) + '\n'
const out = join(here, 'flows.json')
if (process.argv.includes('--check')) {
  if (readFileSync(out, 'utf8') !== text) { console.error('flows/flows.json is out of date: run node flows/build.mjs'); process.exit(1) }
} else writeFileSync(out, text)
