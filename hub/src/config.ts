import { resolve } from 'node:path'
import { z } from 'zod'
import { commonSettings, defaultCredentialsPath, envBool, envInt, envPort, loadConfig, requireExistingPath } from '@mirrormesh/broker'

export const hubSettings = {
  ...commonSettings,
  stateDir: z.string().min(1).default('.state/hub').meta({ env: 'MIRRORMESH_STATE_DIR', description: 'Folder for broker persistence, credentials and hub state' }),
  credentialsFile: z.string().optional().describe('Hashed MQTT credentials file (default: <state dir>/credentials.json)'),
  mqttUrl: z.url({ protocol: /^(mqtt|mqtts|ws|wss|tcp)$/ }).optional().describe('External broker (Mosquitto, EMQX); unset runs the embedded broker'),
  mqttUsername: z.string().optional().describe('Username for the external broker (MQTT_URL)'),
  mqttPassword: z.string().optional().describe('Password for the external broker (MQTT_URL); never logged'),
  mqttHost: z.string().default('0.0.0.0').describe('Address the embedded broker listens on'),
  mqttPort: envPort().default(1883).describe('Embedded broker MQTT/TCP port (0 picks a free port)'),
  mqttWsEnabled: envBool().default(true).describe('Serve MQTT over WebSocket (mirror screens, browsers)'),
  mqttWsPort: envPort().default(9001).describe('Embedded broker MQTT-over-WebSocket port'),
  mqttTlsPort: envPort().default(8883).describe('Embedded broker MQTT/TLS port, used when a certificate is set'),
  mqttTlsCert: z.string().optional().describe('PEM certificate path; setting it turns TLS on (needs MQTT_TLS_KEY)'),
  mqttTlsKey: z.string().optional().describe('PEM private key path for MQTT_TLS_CERT'),
  brokerPersistence: envBool().default(true).describe('Keep retained messages, sessions and wills on disk across restarts'),
  httpHost: z.string().default('127.0.0.1').describe('Address of the HTTP API and /metrics (set 0.0.0.0 for a remote Prometheus)'),
  httpPort: envPort().default(8080).describe('HTTP API port (0 picks a free port)'),
  heartbeatIntervalMs: envInt(100, 60_000).default(1000).describe('How often the hub publishes its heartbeat'),
  nodeStaleMs: envInt(500, 600_000).default(3000).describe('A node whose last heartbeat is older than this is marked stale'),
  drainTimeoutMs: envInt(0, 600_000).default(10_000).describe('How long a drain waits for running turns before stopping'),
}

export type HubConfig = ReturnType<typeof loadHubConfig>

export function loadHubConfig(env: Record<string, string | undefined> = process.env) {
  const cfg = loadConfig(hubSettings, env, (c, problem) => {
    if (c.mqttTlsCert && !c.mqttTlsKey) problem('mqttTlsKey', 'is required when MQTT_TLS_CERT is set. Fix: set it to the PEM key path, or unset MQTT_TLS_CERT.')
    if (c.mqttTlsKey && !c.mqttTlsCert) problem('mqttTlsCert', 'is required when MQTT_TLS_KEY is set. Fix: set it to the PEM certificate path, or unset MQTT_TLS_KEY.')
    requireExistingPath(c, 'mqttTlsCert', problem)
    requireExistingPath(c, 'mqttTlsKey', problem)
    if (c.mqttPassword && !c.mqttUsername) problem('mqttUsername', 'is required when MQTT_PASSWORD is set. Fix: set the external broker username.')
    if (c.mqttUrl === undefined && (c.mqttUsername || c.mqttPassword)) problem('mqttUrl', 'is required when MQTT_USERNAME/MQTT_PASSWORD are set (they are for an external broker). Fix: set MQTT_URL, or unset them.')
  })
  const stateDir = resolve(cfg.stateDir)
  return Object.freeze({ ...cfg, stateDir, credentialsFile: defaultCredentialsPath({ CREDENTIALS_FILE: cfg.credentialsFile, MIRRORMESH_STATE_DIR: stateDir }) })
}

