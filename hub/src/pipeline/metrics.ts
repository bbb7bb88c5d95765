// Pipeline metrics, registered once per hub registry.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'

const latencyBuckets = [0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.65, 0.8, 1, 1.5, 2, 3, 5, 10]

export function pipelineMetrics(reg: Registry) {
  let healthSource: () => Array<[string, number]> = () => []
  return {
    /** Engine health is read at scrape time from this source. */
    setHealthSource(fn: () => Array<[string, number]>) { healthSource = fn },
    fallback: new Counter({ name: 'mirrormesh_fallback_total', help: 'Fallback steps taken, by stage, from engine, to engine and reason', labelNames: ['stage', 'from', 'to', 'reason'], registers: [reg] }),
    engineHealth: new Gauge({ name: 'mirrormesh_engine_health', help: 'Engine health: 1 ok, 0.5 degraded, 0 down', labelNames: ['engine'], registers: [reg],
      collect() { for (const [engine, v] of healthSource()) this.set({ engine }, v) } }),
    ttfa: new Histogram({ name: 'mirrormesh_ttfa_seconds', help: 'Time to first audio: end of speech to first audio/out frame (hub) or first sample played (node)', labelNames: ['side', 'kind'], buckets: latencyBuckets, registers: [reg] }),
    stage: new Histogram({ name: 'mirrormesh_stage_seconds', help: 'Per-stage latency within a turn', labelNames: ['stage', 'engine'], buckets: latencyBuckets, registers: [reg] }),
    bargeIn: new Histogram({ name: 'mirrormesh_barge_in_seconds', help: 'Barge-in frame received to last audio/out frame sent', buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1], registers: [reg] }),
    turns: new Counter({ name: 'mirrormesh_turns_total', help: 'Turns by outcome', labelNames: ['outcome', 'kind'], registers: [reg] }),
    framesDropped: new Counter({ name: 'mirrormesh_audio_frames_dropped_total', help: 'audio/in frames dropped, by reason', labelNames: ['reason'], registers: [reg] }),
    earlyEnds: new Counter({ name: 'mirrormesh_early_end_total', help: 'Online early ends of turn (a whole command and a short quiet), by outcome: answered, or resumed (the speaker went on: the early answer was withdrawn and the whole sentence answered)', labelNames: ['outcome'], registers: [reg] }),
    framesLost: new Counter({ name: 'mirrormesh_audio_frames_lost_total', help: 'audio/in frames missing by sequence number', registers: [reg] }),
    queueDepth: new Gauge({ name: 'mirrormesh_turn_queue_depth', help: 'Turns waiting for a session slot', registers: [reg] }),
    activeSessions: new Gauge({ name: 'mirrormesh_sessions_active', help: 'Turns running now', registers: [reg] }),
  }
}

export type PipelineMetrics = ReturnType<typeof pipelineMetrics>

/**
 * Fallback steps since the hub started, by stage: mirrormesh_fallback_total summed over engines
 * and reasons. The hub heartbeat carries it, so a dashboard sees the same count Prometheus does.
 */
export async function fallbacksByStage(reg: Registry): Promise<Record<string, number>> {
  const metric = reg.getSingleMetric('mirrormesh_fallback_total')
  const out: Record<string, number> = {}
  if (!metric) return out
  for (const v of (await metric.get()).values) {
    const stage = String(v.labels.stage ?? '?')
    out[stage] = (out[stage] ?? 0) + v.value
  }
  return out
}
