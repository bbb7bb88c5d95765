// A hub with credentials for many simulated nodes (scrypt cost lowered, as benchmarks may:
// 200 interactive-cost hashes would take the test's whole budget on two cores).
import { join } from 'node:path'
import { CredentialStore } from '@mirrormesh/broker'
import { startHub, tempDir, type HubOptions, type HubProc } from './harness.js'

export interface FleetHub {
  hub: HubProc
  creds: Array<{ id: string; password: string }>
  /** An observer login (dashboards' role) for watching the traffic. */
  observer: { id: string; password: string }
  /** Start a new hub on the same state dir and ports (after a kill). */
  restart(extra?: HubOptions): Promise<HubProc>
  /** How many nodes the hub's registry has online. */
  online(): Promise<number>
}

export async function startFleetHub(n: number, env: Record<string, string> = {}, prefix = 'sim', hubOpts: HubOptions = {}): Promise<FleetHub> {
  const stateDir = await tempDir('mm-fleet-')
  const store = new CredentialStore(join(stateDir, 'credentials.json'))
  const creds: Array<{ id: string; password: string }> = []
  for (let i = 0; i < n; i++) {
    const id = `${prefix}-${String(i).padStart(3, '0')}`
    creds.push({ id, password: await store.add(id, 'node', { cost: 1024 }) })
  }
  const observer = { id: 'watch', password: await store.add('watch', 'observer', { cost: 1024 }) }
  const opts: HubOptions = { stateDir, timeoutMs: 30_000, ...hubOpts, env: { NODE_STALE_MS: '3000', ...env } }
  const fh: FleetHub = {
    hub: await startHub(opts),
    creds,
    observer,
    async restart(extra = {}) {
      fh.hub = await startHub({ ...opts, mqttPort: fh.hub.mqttPort, httpPort: fh.hub.httpPort, wsPort: fh.hub.wsPort, ...extra })
      return fh.hub
    },
    async online() {
      const r = await fh.hub.http('/api/nodes')
      return (r.body?.nodes ?? []).filter((x: { state: string }) => x.state === 'online').length
    },
  }
  return fh
}
