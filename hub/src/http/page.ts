// The mirror screen, served by the hub at its HTTP root: the same mirror-client app a mirror's
// agent serves, but here it is a node itself (microphone button, MQTT over WebSocket at /mqtt).
//   GET /            mirror-client/public (index.html, app.js, style.css)
//   GET /vendor/mqtt.min.js   the mqtt package's browser bundle (no CDN: nothing leaves the LAN)
//   GET /page.json   tells the app it is hub-served: where MQTT is and how pairing works
// None of these carry anything secret; the LAN rule (http/auth.ts) leaves them open.
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import fastifyStatic from '@fastify/static'
import type { FastifyInstance } from 'fastify'

/** What the page learns from GET /page.json. */
export interface PageInfo {
  mode: 'hub'
  hubId: string
  baseTopic: string
  /** Path of MQTT over WebSocket on this origin; null with an external broker (MQTT_URL). */
  mqttPath: string | null
  /** 'open': this listener pairs a browser at once (loopback); 'code': a pairing code or the admin token is needed. */
  pairing: 'open' | 'code'
}

export interface PageSource {
  hubId: string
  baseTopic: string
  mqtt: boolean
}

const require = createRequire(import.meta.url)

/** mirror-client/public, through the workspace package or next to this source tree. */
export function mirrorClientDir(): string {
  try {
    const dir = path.join(path.dirname(require.resolve('@mirrormesh/mirror-client/package.json')), 'public')
    if (existsSync(dir)) return dir
  } catch {
    // not installed as a package: fall through
  }
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../mirror-client/public')
}

function mqttBundleDir(): string {
  return path.join(path.dirname(require.resolve('mqtt/package.json')), 'dist')
}

export const MQTT_WS_PATH = '/mqtt'

/** Paths the page needs on a LAN listener without any credential. */
export function isPagePath(p: string): boolean {
  return p === '/' || p === '/index.html' || p === '/app.js' || p === '/style.css' || p === '/node.js' || p === '/capture.js' || p === '/page.json' || p === '/vendor/mqtt.min.js' || p === '/api/pair'
}

export function pageRoutes(source: PageSource | undefined, lan: boolean) {
  return async (app: FastifyInstance): Promise<void> => {
    if (!source) return
    await app.register(fastifyStatic, { root: mirrorClientDir(), prefix: '/', index: ['index.html'], cacheControl: false, wildcard: false })
    await app.register(fastifyStatic, { root: mqttBundleDir(), prefix: '/vendor/', decorateReply: false, allowedPath: (p) => p === '/mqtt.min.js', wildcard: false })
    app.get('/page.json', async () => ({
      mode: 'hub', hubId: source.hubId, baseTopic: source.baseTopic, mqttPath: source.mqtt ? MQTT_WS_PATH : null, pairing: lan ? 'code' : 'open',
    }) satisfies PageInfo)
  }
}
