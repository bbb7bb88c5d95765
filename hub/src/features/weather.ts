// The last retained weather/current (from Node-RED or Home Assistant), for the weather
// skill and the offline bundle.
import type { Feature, Handlers } from '@mirrormesh/broker'

export interface Weather { summary: string; temperatureC?: number }

export class WeatherFeature implements Feature {
  readonly name = 'weather'
  private last: Weather | null = null
  readonly handlers: Handlers = {
    weather: (m) => { this.last = m.data },
  }

  current(): Weather | null {
    return this.last
  }
}
