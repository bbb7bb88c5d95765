#!/usr/bin/env node
// `npm run dashboard`: Node-RED with the mirrormesh flows against the local hub, in its own
// userDir (<state dir>/nodered), editor/admin API and dashboard on loopback only.
// Credentials come from the environment (MQTT_USERNAME/MQTT_PASSWORD: an observer;
// AUTOMATION_USERNAME/AUTOMATION_PASSWORD: an automation credential). When they are not
// given and the hub's state dir is local, the launcher creates both once with
// `mirrormesh node add` and keeps them in <userDir>/credentials.json (mode 0600).
import { spawn, execFileSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'

const here = dirname(fileURLToPath(import.meta.url))
const root = resolve(here, '..')
const env = process.env
const stateDir = resolve(env.MIRRORMESH_STATE_DIR ?? join(root, '.state/hub'))
const userDir = resolve(env.NODE_RED_USER_DIR ?? join(stateDir, 'nodered'))
const port = Number(env.DASHBOARD_PORT ?? 1880)
const url = new URL(env.MQTT_URL ?? `mqtt://${env.MQTT_HOST ?? '127.0.0.1'}:${env.MQTT_PORT ?? 1883}`)
if (!Number.isInteger(port) || port < 0 || port > 65535) { console.error(`DASHBOARD_PORT must be a port number, got ${env.DASHBOARD_PORT}`); process.exit(2) }
mkdirSync(userDir, { recursive: true, mode: 0o700 })

function credentials() {
  const file = join(userDir, 'credentials.json')
  const have = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {}
  const cli = join(root, 'ops/bin/mirrormesh.js')
  const make = (id, role) => {
    const out = execFileSync(process.execPath, [cli, 'node', 'add', id, '--role', role, ...(have[id] ? ['--replace'] : [])], { env: { ...env, MIRRORMESH_STATE_DIR: stateDir }, encoding: 'utf8' })
    return out.trim().split('\n').at(-1)
  }
  const pick = (userVar, passVar, id, role) => {
    if (env[passVar]) return { user: env[userVar] ?? id, password: env[passVar] }
    if (!have[id]) {
      if (!existsSync(join(stateDir, 'hub-run.json')) && !existsSync(join(stateDir, 'credentials.json'))) { console.error(`${passVar} is not set and ${stateDir} is no hub state dir: set ${userVar}/${passVar} (mirrormesh node add ${id} --role ${role})`); process.exit(2) }
      have[id] = make(id, role)
      writeFileSync(file, JSON.stringify(have, null, 2), { mode: 0o600 })
      console.log(`created the ${role} credential "${id}" (kept in ${file})`)
    }
    return { user: id, password: have[id] }
  }
  return { observer: pick('MQTT_USERNAME', 'MQTT_PASSWORD', 'nodered', 'observer'), automation: pick('AUTOMATION_USERNAME', 'AUTOMATION_PASSWORD', 'nodered-automation', 'automation') }
}

const creds = credentials()
// The shipped flows are the source of truth: copied over on every start.
copyFileSync(join(here, 'flows.json'), join(userDir, 'flows.json'))
// Node-RED reads credentials from flows_cred.json, not from the flow file: write the same
// environment references the flow file carries (credentialSecret false: plain JSON).
const flowCreds = Object.fromEntries(JSON.parse(readFileSync(join(here, 'flows.json'), 'utf8')).filter((n) => n.credentials).map((n) => [n.id, n.credentials]))
writeFileSync(join(userDir, 'flows_cred.json'), JSON.stringify(flowCreds, null, 2), { mode: 0o600 })
const settings = join(userDir, 'settings.cjs')
writeFileSync(settings, `module.exports = ${JSON.stringify({
  uiHost: '127.0.0.1', uiPort: port, flowFile: 'flows.json', credentialSecret: false, userDir,
  diagnostics: { enabled: false }, telemetry: { enabled: false }, externalModules: { autoInstall: false, palette: { allowInstall: false } },
  editorTheme: { tours: false, palette: { catalogues: [] }, projects: { enabled: false } },
  logging: { console: { level: env.NODE_RED_LOG_LEVEL ?? 'info', metrics: false, audit: false } },
}, null, 2)}\n`)
const red = createRequire(import.meta.url).resolve('node-red/red.js')
const child = spawn(process.execPath, [red, '--userDir', userDir, '--settings', settings], {
  stdio: 'inherit',
  env: {
    ...env, MQTT_HOST: url.hostname, MQTT_PORT: url.port || '1883',
    MQTT_USERNAME: creds.observer.user, MQTT_PASSWORD: creds.observer.password,
    AUTOMATION_USERNAME: creds.automation.user, AUTOMATION_PASSWORD: creds.automation.password,
    MQTT_CLIENT_ID: `${creds.observer.user}-dashboard`, AUTOMATION_CLIENT_ID: `${creds.automation.user}-dashboard`,
  },
})
console.log(`dashboard: http://127.0.0.1:${port}/dashboard  (editor: http://127.0.0.1:${port}/)`)
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig))
child.on('exit', (code, sig) => process.exit(code ?? (sig ? 1 : 0)))
