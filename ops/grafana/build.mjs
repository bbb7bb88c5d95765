// Writes ops/grafana/mirrormesh.json (node ops/grafana/build.mjs ops/grafana/mirrormesh.json): panels and
// PromQL in one readable list; test/grafana.test.ts checks every query against running /metrics.
import { writeFileSync } from 'node:fs'
const ds = { type: 'prometheus', uid: '${DS_PROMETHEUS}' }
let id = 0
let y = 0
const panels = []
const row = []
function panel(title, type, targets, opts = {}) {
  const w = opts.w ?? 8, h = opts.h ?? 8
  const x = row.reduce((a, p) => a + p.gridPos.w, 0)
  if (x + w > 24) { y += Math.max(...row.map((p) => p.gridPos.h)); row.length = 0 }
  const p = {
    id: ++id, title, type, datasource: ds,
    gridPos: { x: row.reduce((a, q) => a + q.gridPos.w, 0), y, w, h },
    targets: targets.map(([expr, legendFormat], i) => ({ refId: String.fromCharCode(65 + i), datasource: ds, expr, legendFormat: legendFormat ?? '' , ...(type === 'heatmap' ? { format: 'heatmap' } : {}) })),
    fieldConfig: { defaults: { unit: opts.unit ?? 'short' }, overrides: [] },
    options: opts.options ?? {},
    ...(opts.description ? { description: opts.description } : {}),
  }
  row.push(p); panels.push(p)
}
panel('Nodes by state', 'stat', [['sum by (state) (mirrormesh_nodes)', '{{state}}']], { w: 8, h: 5, options: { reduceOptions: { calcs: ['lastNotNull'] }, colorMode: 'background' } })
panel('Node heartbeat age', 'timeseries', [['mirrormesh_node_heartbeat_age_seconds', '{{node}}']], { w: 8, h: 5, unit: 's' })
panel('Node down for', 'timeseries', [['mirrormesh_node_down_seconds', '{{node}}']], { w: 8, h: 5, unit: 's' })
panel('Heartbeat delay (hub receive − node send)', 'timeseries', [
  ['histogram_quantile(0.5, sum by (le) (rate(mirrormesh_heartbeat_delay_seconds_bucket[$__rate_interval])))', 'p50'],
  ['histogram_quantile(0.99, sum by (le) (rate(mirrormesh_heartbeat_delay_seconds_bucket[$__rate_interval])))', 'p99'],
  ['mirrormesh_node_clock_skew_seconds', 'clock skew {{node}}'],
], { w: 12, unit: 's' })
panel('TTFA (end of speech → first audio)', 'heatmap', [['sum by (le) (increase(mirrormesh_ttfa_seconds_bucket[$__rate_interval]))', '{{le}}']], { w: 6, unit: 's', options: { calculate: false, yAxis: { unit: 's' } } })
panel('Barge-in (speech over a reply → playback stopped)', 'heatmap', [['sum by (le) (increase(mirrormesh_barge_in_seconds_bucket[$__rate_interval]))', '{{le}}']], { w: 6, unit: 's', options: { calculate: false, yAxis: { unit: 's' } } })
panel('TTFA p50 / p95 by side and kind', 'timeseries', [
  ['histogram_quantile(0.5, sum by (le, side, kind) (rate(mirrormesh_ttfa_seconds_bucket[$__rate_interval])))', 'p50 {{side}} {{kind}}'],
  ['histogram_quantile(0.95, sum by (le, side, kind) (rate(mirrormesh_ttfa_seconds_bucket[$__rate_interval])))', 'p95 {{side}} {{kind}}'],
], { w: 12, unit: 's' })
panel('Fallbacks by stage and reason', 'timeseries', [['sum by (stage, reason) (increase(mirrormesh_fallback_total[$__rate_interval]))', '{{stage}}: {{reason}}']], { w: 12, options: { legend: { displayMode: 'table', placement: 'right' } } })
panel('Sessions and turn queue', 'timeseries', [['mirrormesh_sessions_active', 'sessions'], ['mirrormesh_turn_queue_depth', 'queue depth']], { w: 12 })
panel('Turns by outcome', 'timeseries', [['sum by (outcome) (increase(mirrormesh_turns_total[$__rate_interval]))', '{{outcome}}']], { w: 12 })
panel('Hub memory (RSS)', 'timeseries', [['process_resident_memory_bytes{job=~"$hub_job"}', '{{instance}}']], { w: 8, unit: 'bytes' })
panel('Node agent memory (RSS)', 'timeseries', [['mirrormesh_node_rss_bytes', '{{node}} (heartbeat)'], ['mirrormesh_agent_rss_bytes', '{{instance}} (agent /metrics)']], { w: 8, unit: 'bytes' })
panel('Node CPU', 'timeseries', [['mirrormesh_node_cpu_percent', '{{node}}'], ['mirrormesh_agent_cpu_percent', '{{instance}} (agent /metrics)']], { w: 8, unit: 'percent' })
panel('Node temperature', 'timeseries', [['mirrormesh_node_temperature_celsius', '{{node}}'], ['mirrormesh_agent_temperature_celsius', '{{instance}} (agent /metrics)']], { w: 8, unit: 'celsius' })
panel('Payload rejections', 'timeseries', [['sum by (reason) (increase(mirrormesh_payload_rejected_total[$__rate_interval]))', '{{reason}}']], { w: 8 })
panel('Auth failures and ACL denials', 'timeseries', [
  ['sum(increase(mirrormesh_auth_failures_total[$__rate_interval]))', 'MQTT auth failures'],
  ['sum(increase(mirrormesh_acl_denied_total[$__rate_interval]))', 'ACL denials'],
], { w: 8 })
const dash = {
  __inputs: [{ name: 'DS_PROMETHEUS', label: 'Prometheus', type: 'datasource', pluginId: 'prometheus', pluginName: 'Prometheus' }],
  __requires: [{ type: 'grafana', id: 'grafana', name: 'Grafana', version: '10.0.0' }, { type: 'datasource', id: 'prometheus', name: 'Prometheus', version: '1.0.0' }],
  uid: 'mirrormesh', title: 'mirrormesh', tags: ['mirrormesh'], timezone: 'browser', schemaVersion: 39, version: 1, editable: true,
  time: { from: 'now-6h', to: 'now' }, refresh: '30s',
  templating: { list: [{ name: 'hub_job', label: 'hub job', type: 'custom', query: 'mirrormesh-hub', current: { text: 'mirrormesh-hub', value: 'mirrormesh-hub' }, options: [] }] },
  annotations: { list: [] },
  panels,
}
writeFileSync(process.argv[2] ?? new URL('./mirrormesh.json', import.meta.url), JSON.stringify(dash, null, 2) + '\n')
