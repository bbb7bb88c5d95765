// The person's view of an incident record: a Markdown runbook entry with the date, the systems
// affected, the actions taken and the readings that confirmed recovery.
import type { IncidentRecord, Recovery } from './records.js'

const time = (ms: number): string => new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC')

/** "2 min 5 s", "850 ms", "1 h 3 min". */
export function humanDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`
  const s = Math.round(ms / 1000)
  if (s < 60) return `${s} s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m} min ${s % 60} s`
  return `${Math.floor(m / 60)} h ${m % 60} min`
}

function span(r: IncidentRecord): string {
  if (r.end === null) return `${time(r.start)} → still going at ${time(r.at)} (hub stopped)`
  return `${time(r.start)} → ${time(r.end)} (${humanDuration(r.durationMs ?? r.end - r.start)})`
}

function readings(rec: Recovery): string {
  const parts = Object.entries(rec).map(([k, v]) => `\`${k}\` ${v === null ? 'n/a' : String(v)}`)
  return parts.length ? parts.join(', ') : 'none recorded'
}

function describe(r: IncidentRecord): { title: string; affected: string; happened: string; actions: string } {
  switch (r.type) {
    case 'node_outage':
      return {
        title: r.downs > 1 ? `node ${r.nodeId} flapping (${r.downs} outages)` : `node ${r.nodeId} ${r.end === null ? 'offline' : 'outage'}`,
        affected: `node \`${r.nodeId}\``,
        happened: `left online (${r.states.join(', ')})${r.downs > 1 ? `; went down ${r.downs} times, each back within the settle window, folded into this one incident` : ''}.`,
        actions: r.end === null
          ? 'automatic: hub marked the node down; the node answers from its offline bundle and keeps reconnecting. Not back before the hub stopped: check the node (`mirrormesh nodes`, `journalctl -u mirrormesh-agent`).'
          : 'automatic: hub marked the node down; the node answered from its offline bundle, reconnected by itself and replayed its offline journal. No operator action.',
      }
    case 'hub_restart':
      return {
        title: `hub restart (${r.clean ? 'clean' : 'unclean'})`,
        affected: 'hub (embedded broker, voice pipeline, HTTP API); every node lost the hub meanwhile',
        happened: r.clean
          ? `previous run (started ${time(r.previousStart)}) stopped cleanly at ${time(r.lastAliveAt)}.`
          : `previous run (started ${time(r.previousStart)}) ended without stopping: crash, kill or power loss; last alive ${time(r.lastAliveAt)}. See \`journalctl -u mirrormesh-hub\` around that time.`,
        actions: 'automatic: restarted (systemd Restart=always or an operator); nodes reconnected and replayed their offline turns.',
      }
    case 'broker_outage':
      return {
        title: `broker connection lost (${r.external ? 'external broker' : 'embedded broker'})`,
        affected: `MQTT broker${r.external ? ' (MQTT_URL)' : ''}: every node and the hub's own client`,
        happened: 'the hub\'s MQTT client was disconnected from the broker.',
        actions: r.end === null ? 'automatic: the hub kept reconnecting; not back before the hub stopped.' : 'automatic: the hub\'s client reconnected and resubscribed.',
      }
    case 'fallback_burst':
      return {
        title: `fallbacks: ${r.stage} (${r.reason}) ×${r.count}`,
        affected: `voice pipeline, stage \`${r.stage}\``,
        happened: `${r.count} fallback step${r.count === 1 ? '' : 's'} taken for reason \`${r.reason}\` (${r.steps.join(', ')}).`,
        actions: 'automatic: each turn moved to the next engine of the stage\'s fallback chain; the metric mirrormesh_fallback_total counts them.',
      }
  }
}

/** One whole Markdown entry (ends with a blank line). */
export function renderEntry(r: IncidentRecord): string {
  const d = describe(r)
  return [
    `## ${time(r.start)} — ${d.title}`,
    '',
    `- **Date:** ${span(r)}`,
    `- **Systems affected:** ${d.affected}`,
    `- **What happened:** ${d.happened}`,
    `- **Actions taken:** ${d.actions}`,
    `- **Recovery confirmed by:** ${readings(r.recovery)}`,
    '',
    '',
  ].join('\n')
}

/** The first lines of a new day's runbook file. */
export function runbookHeader(day: string): string {
  return `# Runbook journal ${day} (UTC)\n\nWritten by the mirrormesh hub from its incident records (incidents/${day}.jsonl).\n\n`
}
