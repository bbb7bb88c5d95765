// `mirrormesh status`: the hub on one screen, from GET /api/status.
// Exit 0: ready; 2: up but not ready (starting, draining, a check failing); 1: not reachable.
import type { HubStatusResponse } from '@mirrormesh/broker'
import { HubClient, errorText, type HubTarget } from './api.js'

export const duration = (s: number): string => {
  if (s < 60) return `${Math.round(s)}s`
  if (s < 3600) return `${Math.floor(s / 60)}m ${Math.round(s % 60)}s`
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`
  return `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`
}

export function renderStatus(s: HubStatusResponse): string {
  const lines: Array<[string, string]> = []
  const state = s.phase === 'ready' && !s.ready ? 'ready, NOT READY' : s.phase
  lines.push(['hub', `${s.hubId}: ${state}, up ${duration(s.uptimeS)} (${Object.entries(s.versions).map(([k, v]) => `${k} ${v}`).join(', ')})`])
  const notReady = Object.entries(s.notReady)
  if (notReady.length) lines.push(['not ready', notReady.map(([k, why]) => `${k} (${why})`).join(', ')])
  const b = s.broker
  lines.push(['broker', b.kind === 'external' ? 'external (MQTT_URL)' : `embedded, up ${b.uptimeS === null ? '?' : duration(b.uptimeS)}, ${b.clients ?? '?'} clients, ${b.messages ?? '?'} messages`])
  const n = s.nodes
  lines.push(['nodes', `${n.online} online, ${n.recovering} recovering, ${n.stale} stale, ${n.offline} offline (${n.total} known)`])
  lines.push(['turns', `${s.sessions} running, ${s.queueDepth} queued`])
  for (const [name, h] of Object.entries(s.health).sort(([a], [b2]) => a.localeCompare(b2))) {
    lines.push([`  ${name}`, h.state + (h.reason ? `: ${h.reason}` : '')])
  }
  lines.push(['bundle', s.bundle ? `${s.bundle.version} (built ${s.bundle.createdAt})` : 'none (building, or BUNDLE_ENABLED=false)'])
  if (s.drain) {
    const d = s.drain
    lines.push(['drain', d.result
      ? `done: ${d.result.finished} of ${d.turnsAtStart} turns finished, ${d.result.cutOff} cut off`
      : `since ${new Date(d.startedAt).toISOString()} (${d.reason}), ${d.turnsAtStart} turns were running, waits up to ${d.timeoutMs} ms`])
  }
  const health = lines.findIndex(([k]) => k.startsWith('  '))
  if (health >= 0) lines.splice(health, 0, ['health', ''])
  const width = Math.max(...lines.map(([k]) => k.length)) + 2
  return lines.map(([k, v]) => (k === 'health' ? 'health:' : `${(k.startsWith('  ') ? k : `${k}:`).padEnd(width)}${v}`).trimEnd()).join('\n') + '\n'
}

export async function statusCommand(opts: HubTarget & { json?: boolean }): Promise<number> {
  let s: HubStatusResponse
  try {
    s = await new HubClient(opts).json<HubStatusResponse>('/api/status')
  } catch (err) {
    if (opts.json) process.stdout.write(JSON.stringify({ ok: false, error: errorText(err) }) + '\n')
    else process.stderr.write(`mirrormesh status: ${errorText(err)}\n`)
    return 1
  }
  process.stdout.write(opts.json ? JSON.stringify(s, null, 2) + '\n' : renderStatus(s))
  return s.ready ? 0 : 2
}
