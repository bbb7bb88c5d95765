// The node registry as a feature: node status, heartbeats and presence feed it; its timer
// ages silent nodes.
import type { Feature, Handlers } from '@mirrormesh/broker'
import type { NodeRegistry } from '../registry.js'

export class RegistryFeature implements Feature {
  readonly name = 'registry'
  readonly handlers: Handlers = {
    nodeStatus: (m) => this.registry.handle(m.name, m.params, m.data),
    nodeHeartbeat: (m) => this.registry.handle(m.name, m.params, m.data),
    nodePresence: (m) => this.registry.handle(m.name, m.params, m.data),
  }

  constructor(readonly registry: NodeRegistry) {}

  start(): void {
    this.registry.start()
  }

  stop(): void {
    this.registry.stop()
  }
}
