// Boundary validation for subscribers: drop, count and (rate-limited) log bad payloads.
import { Counter, type Registry } from './metrics.js'
import { decode, type TopicName, type TopicParams } from './contract.js'
import { LogLimiter, type Logger } from './log.js'

export interface Inbound { name: TopicName; params: TopicParams; data: unknown }

export class InboundValidator {
  readonly rejected: Counter<'topic' | 'reason'>
  private readonly limiter = new LogLimiter(60_000)

  constructor(private readonly base: string, registry: Registry, private readonly log: Logger) {
    this.rejected = getOrCreateCounter(registry, 'mirrormesh_payload_rejected_total',
      'Inbound MQTT payloads dropped at the boundary, by topic kind and reason', ['topic', 'reason'])
  }

  /** Returns the decoded message, or undefined after counting the rejection. */
  accept(topic: string, payload: Buffer): Inbound | undefined {
    const res = decode(this.base, topic, payload)
    if (res.ok) return res
    this.rejected.inc({ topic: res.name, reason: res.reason })
    const source = res.params.node ?? res.params.hub ?? topic
    if (this.limiter.allow(source)) {
      this.log.warn({ topic, source, reason: res.reason, detail: res.detail, bytes: payload.length }, 'payload rejected')
    }
    return undefined
  }
}

export function getOrCreateCounter<L extends string>(registry: Registry, name: string, help: string, labelNames: L[]): Counter<L> {
  const existing = registry.getSingleMetric(name)
  if (existing) return existing as Counter<L>
  return new Counter({ name, help, labelNames, registers: [registry] })
}
