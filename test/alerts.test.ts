// ops/prometheus/alerts.yml: promtool accepts the rules and their unit tests (each alert fires on
// series that should fire it and stays quiet otherwise), and every metric the expressions name is
// really exported by a running hub — started with VRAM_CAP_MB so that the GPU gauge exists —
// scraped from its /metrics. A rule naming a metric the hub does not export fails by name.
// Under CI (.ci/run installs prometheus, which ships promtool) a missing promtool fails.
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterEach, describe, expect, it } from 'vitest'
import { killAll, removeDir, root, startHub } from './support/harness.js'
import { hasTool } from './support/notify-socket.js'

const exec = promisify(execFile)
const dir = join(root, 'ops', 'prometheus')
const run = (args: string[]) => exec('promtool', args, { cwd: dir }).then(
  ({ stdout, stderr }) => ({ code: 0, out: stdout + stderr }),
  (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? 1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` }))

afterEach(async () => { await killAll() })

const keywords = new Set(['and', 'or', 'unless', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'inf', 'nan'])

/** Metric names in a PromQL expression: identifiers that are not functions, keywords or labels. */
export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // strings
    .replace(/\{[^}]*\}/g, '') // label matchers
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '') // label lists
    .replace(/\[[^\]]*\]/g, '') // ranges
  const names = new Set<string>()
  for (const m of bare.matchAll(/(?<![\w:.])([a-zA-Z_:][\w:]*)(\s*\()?/g)) {
    if (m[2] || keywords.has(m[1]!.toLowerCase())) continue
    names.add(m[1]!)
  }
  return [...names]
}

/** `alert:` and `expr:` of each rule (a plain `expr: …` line or an `expr: |` block); no YAML library in the tree. */
export function alertRules(yml: string): { alert: string; expr: string }[] {
  const out: { alert: string; expr: string }[] = []
  const lines = yml.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const a = /^\s*- alert: (\S+)/.exec(lines[i]!)
    if (a) { out.push({ alert: a[1]!, expr: '' }); continue }
    const e = /^(\s*)expr: (.*)$/.exec(lines[i]!)
    if (!e || !out.length) continue
    let expr = e[2]!
    if (expr.trim() === '|') {
      expr = ''
      while (i + 1 < lines.length && (lines[i + 1]!.trim() === '' || lines[i + 1]!.search(/\S/) > e[1]!.length)) expr += ' ' + lines[++i]!.trim()
    }
    out.at(-1)!.expr = expr.trim()
  }
  return out
}

describe.skipIf(!hasTool('promtool') && !process.env.CI)('Prometheus alert rules (needs promtool)', () => {
  it('promtool check rules and promtool test rules pass', async () => {
    const check = await run(['check', 'rules', 'alerts.yml'])
    expect(check.out).toContain('SUCCESS: 6 rules found')
    expect(check.code).toBe(0)
    const test = await run(['test', 'rules', 'alerts.test.yml'])
    expect(test.out).toContain('SUCCESS')
    expect(test.code, test.out).toBe(0)
  })

  it('every metric in every alert expression is exported by a running hub', async () => {
    const rules = alertRules(await readFile(join(dir, 'alerts.yml'), 'utf8'))
    const wanted = rules.flatMap((r) => metricNames(r.expr).map((name) => ({ alert: r.alert, name })))
    expect(new Set(wanted.map((w) => w.alert)).size).toBe(6)
    expect(wanted.map((w) => w.name)).toContain('mirrormesh_ttfa_seconds_bucket')

    const hub = await startHub({ env: { VRAM_CAP_MB: '8192' } })
    try {
      const text = String((await hub.http('/metrics')).body)
      // Families by their # TYPE line; a histogram also exports _bucket, _sum and _count.
      const families = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]))
      const exported = (name: string) => families.has(name) ||
        [/_bucket$/, /_sum$/, /_count$/].some((re) => re.test(name) && families.get(name.replace(re, '')) === 'histogram')
      const missing = wanted.filter((w) => !exported(w.name)).map((w) => `${w.alert}: ${w.name}`)
      expect(missing, 'metrics the alerts use but the hub does not export').toEqual([])
      // The series the gauges alerts compare are there with the labels the rules select.
      expect(text).toMatch(/^mirrormesh_vram_bytes\{kind="cap"\} 8589934592$/m)
      expect(text).toMatch(/^process_start_time_seconds \d+/m)
    } finally {
      await removeDir(hub.stateDir)
    }
  })
})

describe('metricNames', () => {
  it('finds metric names, not functions, keywords or labels', () => {
    expect(metricNames('histogram_quantile(0.95, sum by (le) (rate(a_bucket{side="hub"}[5m]))) > 0.8')).toEqual(['a_bucket'])
    expect(metricNames('sum(increase(x_total[15m])) / sum(increase(y_total[15m])) > 0.10 and sum(increase(y_total[15m])) > 0')).toEqual(['x_total', 'y_total'])
    expect(metricNames('(max without (kind) (v{kind="cap"}) - max without (kind) (v{kind="used"})) < 1073741824')).toEqual(['v'])
    expect(metricNames('changes(process_start_time_seconds[1h]) > 3')).toEqual(['process_start_time_seconds'])
  })

  it('reads every rule of alerts.yml, block expressions included', async () => {
    const rules = alertRules(await readFile(join(dir, 'alerts.yml'), 'utf8'))
    expect(rules.map((r) => r.alert)).toEqual(['MirrormeshTTFAHigh', 'MirrormeshBargeInSlow', 'MirrormeshGpuMemoryNearCap', 'MirrormeshNodeOffline', 'MirrormeshFallbackRateHigh', 'MirrormeshCrashLoop'])
    expect(rules.find((r) => r.alert === 'MirrormeshFallbackRateHigh')!.expr).toMatch(/^sum\(increase\(mirrormesh_fallback_total\[15m\]\)\).* and sum\(increase\(mirrormesh_turns_total\[15m\]\)\) > 0$/)
  })
})
