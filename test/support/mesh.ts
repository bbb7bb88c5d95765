// One mirrormesh deployment for a test, on either broker: the hub's embedded aedes
// broker, or an external Mosquitto (MQTT_URL) with the contract-derived ACL.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import mqtt, { type MqttClient } from 'mqtt'
import { join } from 'node:path'
import { CredentialStore } from '@mirrormesh/broker'
import { cli, startHub, startMosquitto, tempDir, waitFor, type Env, type HubOptions, type HubProc, type MosquittoProc } from './harness.js'

const exec = promisify(execFile)
export const BASE = 'mirrormesh'
export type BrokerKind = 'embedded' | 'mosquitto'
export const brokerKinds: BrokerKind[] = ['embedded', 'mosquitto']

/** Node ids every mesh has credentials for, plus an observer `dash` and a second hub-role user `ops`. */
export const NODE_IDS = ['kitchen', 'hall', 'a', 'b'] as const
/** Every user a mesh has a password for (`hub-main` only with Mosquitto). */
export type MeshUser = (typeof NODE_IDS)[number] | 'dash' | 'ops' | 'hub-main'
const isNode = (u: string): boolean => (NODE_IDS as readonly string[]).includes(u)

export interface MeshOptions {
  /** Settings for the hub on top of the mesh's (NODE_STALE_MS 3000). */
  hubEnv?: Env
  /** What 'ready' means for the hub (default /readyz). */
  readyPath?: string
  /** How long the hub may take to be ready (default 15 s). */
  timeoutMs?: number
}

export type Mesh = Awaited<ReturnType<typeof createMesh>>

export async function createMesh(kind: BrokerKind, { hubEnv = {}, readyPath, timeoutMs }: MeshOptions = {}) {
  const stateDir = await tempDir('mm-hub-')
  const passwords = {} as Record<MeshUser, string>
  let mosq: MosquittoProc | undefined
  let hubCreds: Pick<HubOptions, 'mqttUrl' | 'username' | 'password'> = {}
  if (kind === 'embedded') {
    // The same store `mirrormesh node add` writes (the CLI itself is tested in cli.test.ts).
    const store = new CredentialStore(join(stateDir, 'credentials.json'))
    for (const id of NODE_IDS) passwords[id] = await store.add(id, 'node')
    passwords.dash = await store.add('dash', 'observer')
    passwords.ops = await store.add('ops', 'hub')
  } else {
    for (const id of [...NODE_IDS, 'dash', 'ops', 'hub-main'] as const) passwords[id] = `pw-${id}-${Math.random().toString(36).slice(2)}`
    const acl = (await cli(['broker', 'mosquitto-acl', '--hub', 'hub-main', 'ops', '--observer', 'dash'])).stdout
    mosq = await startMosquitto({ users: Object.entries(passwords).map(([username, password]) => ({ username, password })), acl })
    hubCreds = { mqttUrl: mosq.url, username: 'hub-main', password: passwords['hub-main'] }
  }
  const hubOpts: HubOptions = { stateDir, ...hubCreds, readyPath, timeoutMs, env: { NODE_STALE_MS: '3000', ...hubEnv } }
  const hub = await startHub(hubOpts)
  const mesh = {
    kind, stateDir, passwords, hub: hub as HubProc, mosq,
    get url() { return mosq ? mosq.url : `mqtt://127.0.0.1:${mesh.hub.mqttPort}` },
    /** Start a replacement hub on the same state dir and ports. */
    async restartHub(extra: HubOptions = {}): Promise<HubProc> {
      mesh.hub = await startHub({ ...hubOpts, mqttPort: mesh.hub.mqttPort, httpPort: mesh.hub.httpPort, wsPort: mesh.hub.wsPort, ...extra })
      return mesh.hub
    },
    /** Restart whichever process holds the broker's persistence (hub or Mosquitto), cleanly. */
    async restartBroker(): Promise<void> {
      if (mosq) {
        mosq.kill('SIGTERM')
        await mosq.exited
        mosq = await startMosquitto({ port: mosq.port, dir: mosq.dir, users: Object.entries(passwords).map(([username, password]) => ({ username, password })), acl: (await cli(['broker', 'mosquitto-acl', '--hub', 'hub-main', 'ops', '--observer', 'dash'])).stdout })
        mesh.mosq = mosq
        return
      }
      mesh.hub.kill('SIGTERM')
      await mesh.hub.exited
      await mesh.restartHub()
    },
    /** An mqtt.js client with one of the mesh's credentials. */
    async client(username: string, { clientId, password, url }: { clientId?: string; password?: string; url?: string } = {}): Promise<MqttClient> {
      const c = await mqtt.connectAsync(url ?? mesh.url, {
        clientId: clientId ?? (isNode(username) ? `node-${username}/test-${Math.random().toString(36).slice(2, 8)}` : `${username}-${Math.random().toString(36).slice(2, 8)}`),
        username, password: password ?? passwords[username as MeshUser], protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000,
      })
      return c
    },
    /** mosquitto_sub: the first retained/live message on `topic` within `seconds`, or null. */
    async sub(topic: string, { username = 'dash', seconds = 3 }: { username?: string; seconds?: number } = {}): Promise<string | null> {
      const { host, port } = hostPort(mesh.url)
      try {
        const { stdout } = await exec('mosquitto_sub', ['-h', host, '-p', port, '-u', username, '-P', passwords[username as MeshUser], '-i', `${username}-sub-${process.pid}-${Date.now()}`, '-V', 'mqttv311', '-t', topic, '-C', '1', '-W', String(seconds)])
        return stdout.trim()
      } catch (err) {
        if ((err as { code?: unknown }).code === 27) return null // -W timeout
        throw err
      }
    },
    /** mosquitto_pub as `username`; returns the exit code and stderr. */
    async pub(topic: string, message: string, { username = 'a', password, retain = false, clientId }: { username?: string; password?: string; retain?: boolean; clientId?: string } = {}): Promise<{ code: number; stderr: string }> {
      const { host, port } = hostPort(mesh.url)
      const args = ['-h', host, '-p', port, '-u', username, '-P', password ?? passwords[username as MeshUser], '-V', 'mqttv311', '-q', '1', '-t', topic, '-m', message]
      args.push('-i', clientId ?? (isNode(username) ? `node-${username}/pub-${Date.now()}` : `${username}-pub-${Date.now()}`))
      if (retain) args.push('-r')
      try {
        await exec('mosquitto_pub', args)
        return { code: 0, stderr: '' }
      } catch (e) {
        const err = e as { code: number; stderr: string }
        return { code: err.code, stderr: err.stderr }
      }
    },
    async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
      const text = (await mesh.hub.http('/metrics')).body
      return metricValue(text, name, labels)
    },
    waitNode: (id: string, state: string, timeoutMs = 10_000): Promise<true> => waitFor(async () => (await mesh.hub.node(id))?.state === state, { timeoutMs, what: `hub sees ${id} ${state}` }),
  }
  return mesh
}

function hostPort(url: string): { host: string; port: string } {
  const u = new URL(url)
  return { host: u.hostname, port: u.port }
}

/** Sum of a Prometheus metric's samples whose labels include `labels`. */
export function metricValue(text: unknown, name: string, labels: Record<string, string> = {}): number {
  let sum = 0
  let found = false
  for (const line of String(text).split('\n')) {
    if (!line.startsWith(name)) continue
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)/)
    if (!m || m[1] !== name) continue
    const have = Object.fromEntries([...(m[3] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]))
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) {
      sum += Number(m[4])
      found = true
    }
  }
  return found ? sum : 0
}
