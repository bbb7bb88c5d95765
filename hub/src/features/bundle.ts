// The offline reply bundle service as a feature. Its folder must be writable: a hub that
// cannot build bundles says so at start (health/bundle, /readyz) instead of failing quietly
// in the background.
import { constants } from 'node:fs'
import { access, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { Feature, Logger } from '@mirrormesh/broker'
import { EspeakTts } from '@mirrormesh/speech'
import { BundleService } from '../bundle/service.js'
import type { HubConfig } from '../config.js'
import { builtinSkills } from '../pipeline/skills.js'
import type { ComponentHealth } from './health.js'
import type { MqttFeature } from './mqtt.js'
import type { WeatherFeature } from './weather.js'

export class BundleFeature implements Feature {
  readonly name = 'bundle'
  service: BundleService | undefined

  constructor(
    private readonly config: HubConfig,
    private readonly mqtt: MqttFeature,
    private readonly weather: WeatherFeature,
    private readonly httpPort: () => number | undefined,
    private readonly log: Logger,
    private readonly httpsPort: () => number | undefined = () => undefined,
  ) {}

  async start(): Promise<void> {
    const { config } = this
    const root = join(config.stateDir, 'bundles')
    await mkdir(root, { recursive: true })
    await access(root, constants.W_OK)
    if (!this.mqtt.client) throw new Error('no MQTT client to announce bundles on')
    this.service = new BundleService({
      stateDir: config.stateDir, skills: builtinSkills(), rooms: config.roomList,
      tts: new EspeakTts({ voice: config.espeakVoice, speedWpm: config.espeakSpeedWpm }), voice: `espeak:${config.espeakVoice}:${config.espeakSpeedWpm}`,
      client: this.mqtt.client, ...(config.hubRole === 'solo' ? {} : { hubId: config.hubId }), weather: () => this.weather.current(), httpPort: this.httpPort, httpsPort: this.httpsPort, log: this.log,
    })
    this.service.start() // builds in the background: never delays start-up or /readyz
  }

  async stop(): Promise<void> {
    await this.service?.stop()
  }

  health(): ComponentHealth {
    const s = this.service
    const r = s?.retry
    if (r && !s.isBuilding) {
      const inS = Math.max(0, Math.round((r.at - Date.now()) / 1000))
      return { state: 'degraded', reason: `offline bundle build failed ${r.attempt}× (${r.error.slice(0, 160)}); ${s.manifest() ? `serving ${s.manifest()!.version}; ` : ''}next try in ${inS} s` }
    }
    if (s?.manifest()) return { state: 'ok' }
    if (!s || s.isBuilding) return { state: 'degraded', reason: 'building the first offline bundle' }
    return { state: 'down', reason: 'no offline bundle: the last build failed (see the hub log)' }
  }
}
