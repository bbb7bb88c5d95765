// ops/grafana/mirrormesh.json: every query is valid PromQL (promtool) and names only metrics
// that a running hub or node agent really exports on /metrics.
import { execFile, execFileSync } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'
import { addNode, killAll, removeDir, root, startAgent, startHub, tempDir, waitFor } from './support/harness.js'

const exec = promisify(execFile)
const dirs: string[] = []
afterAll(async () => {
  await killAll()
  for (const d of dirs) await removeDir(d)
})

interface Panel { title: string; targets: Array<{ expr: string }> }

/** Metric families in a Prometheus text exposition, with the series names each family makes. */
function exported(text: string): Set<string> {
  const names = new Set<string>()
  for (const m of text.matchAll(/^# TYPE (\S+) (\w+)$/gm)) {
    const [, name, type] = m as unknown as [string, string, string]
    names.add(name)
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s)
    if (type === 'summary') for (const s of ['_sum', '_count']) names.add(name + s)
  }
  return names
}

const hasPromtool = (() => { try { execFileSync('promtool', ['--version'], { stdio: 'ignore' }); return true } catch { return false } })()

// Under CI (.ci/run installs prometheus, which ships promtool) a missing promtool fails.
describe.skipIf(!hasPromtool && !process.env.CI)('Grafana dashboard (needs promtool)', () => {
  it('queries only metrics a running hub and agent export, in valid PromQL', async () => {
    const dash = JSON.parse(await readFile(join(root, 'ops/grafana/mirrormesh.json'), 'utf8')) as { panels: Panel[] }
    const exprs = dash.panels.flatMap((p) => p.targets.map((t) => ({ panel: p.title, expr: t.expr })))
    expect(exprs.length).toBeGreaterThan(10)
    // Everything the issue names has a panel.
    const titles = dash.panels.map((p) => p.title.toLowerCase()).join('\n')
    for (const want of ['nodes by state', 'heartbeat delay', 'ttfa', 'barge-in', 'fallbacks by stage and reason', 'sessions and turn queue', 'hub memory', 'node agent memory', 'node cpu', 'node temperature', 'payload rejections', 'mqtt auth failures', 'http auth failures']) expect(titles).toContain(want)

    // Valid PromQL: each query as a recording rule through promtool (Grafana's variables filled in).
    const dir = await tempDir('mm-grafana-')
    dirs.push(dir)
    const rules = { groups: [{ name: 'grafana', rules: exprs.map((e, i) => ({ record: `grafana:q${i}`, expr: e.expr.replace(/\$__rate_interval/g, '5m').replace(/\$hub_job/g, 'mirrormesh-hub') })) }] }
    await writeFile(join(dir, 'rules.yml'), JSON.stringify(rules))
    await exec('promtool', ['check', 'rules', join(dir, 'rules.yml')])

    // A real hub and agent (with a heartbeat, so per-node gauges have a series).
    const hub = await startHub({ timeoutMs: 40_000 })
    dirs.push(hub.stateDir)
    const agent = await startAgent({ nodeId: 'kitchen', mqttUrl: hub.mqttUrl, password: await addNode(hub.stateDir, 'kitchen'), env: { MIRRORMESH_STATE_DIR: join(hub.stateDir, 'agent') } })
    await agent.waitState('online', 15_000)
    const hubText = await waitFor(async () => {
      const t = await (await fetch(`http://127.0.0.1:${hub.httpPort}/metrics`)).text()
      return /^mirrormesh_node_rss_bytes\{node="kitchen"\} \d/m.test(t) && t
    }, { what: 'per-node gauges on the hub' })
    // Auth failures of both kinds are exported by every hub, at 0 before any refusal, so the
    // panels and increase() see the first one (HTTP: only LAN listeners refuse; none here).
    for (const kind of ['token', 'node', 'pair', 'rate_limited']) expect(hubText).toMatch(new RegExp(`^mirrormesh_http_auth_failures_total\\{kind="${kind}"\\} 0$`, 'm'))
    expect(hubText).toMatch(/^# TYPE mirrormesh_auth_failures_total counter$/m)
    const agentText = await (await fetch(`http://127.0.0.1:${agent.healthPort}/metrics`)).text()
    expect(agentText).toMatch(/^mirrormesh_agent_rss_bytes \d/m)
    const names = new Set([...exported(hubText), ...exported(agentText)])
    const missing: string[] = []
    for (const { panel, expr } of exprs) {
      const used = [...expr.matchAll(/\b((?:mirrormesh|process)_[a-z0-9_]+)/g)].map((m) => m[1]!)
      expect(used.length, `${panel}: ${expr} names a metric`).toBeGreaterThan(0)
      for (const n of used) if (!names.has(n)) missing.push(`${panel}: ${n}`)
    }
    expect(missing).toEqual([])
  }, 90_000)
})
