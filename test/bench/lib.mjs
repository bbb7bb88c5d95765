// Small helpers shared by the benchmarks: /proc sampling, quantiles, tables, machine info.
import { readFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { cpus, release } from 'node:os'

const CLK_TCK = 100 // Linux USER_HZ; `getconf CLK_TCK` is 100 on every mainstream kernel

/** VmRSS / VmHWM of a process in MB, or null once it is gone. */
export function memOf(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8')
    const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN)
    return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024, anonMb: kb('RssAnon') / 1024, fileMb: kb('RssFile') / 1024 }
  } catch {
    return null
  }
}

/** utime+stime of a process in seconds, or null once it is gone. */
export function cpuSecondsOf(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ') // fields from #3 (state) on
    return (Number(f[11]) + Number(f[12])) / CLK_TCK // #14 utime, #15 stime
  } catch {
    return null
  }
}

/**
 * Samples RSS and CPU of named pids every `intervalMs` until stop().
 * stop() returns per name: max/mean RSS, VmHWM, mean CPU % of one core over the window, max 1 s CPU %.
 */
export function sampler(pids, intervalMs = 1000) {
  const names = Object.keys(pids)
  const t0 = performance.now()
  const cpu0 = Object.fromEntries(names.map((n) => [n, sumCpu(pids[n])]))
  const last = { ...cpu0 }
  let lastT = t0
  const acc = Object.fromEntries(names.map((n) => [n, { rss: [], cpuPct: [], hwmMb: 0 }]))
  const tick = () => {
    const t = performance.now()
    for (const n of names) {
      const list = [pids[n]].flat()
      const rss = list.map(memOf).filter(Boolean)
      if (rss.length) {
        acc[n].rss.push(rss.reduce((a, m) => a + m.rssMb, 0))
        acc[n].hwmMb = Math.max(acc[n].hwmMb, ...rss.map((m) => m.hwmMb))
      }
      const c = sumCpu(pids[n])
      acc[n].cpuPct.push(((c - last[n]) / ((t - lastT) / 1000)) * 100)
      last[n] = c
    }
    lastT = t
  }
  const timer = setInterval(tick, intervalMs)
  return {
    stop() {
      clearInterval(timer)
      tick()
      const secs = (performance.now() - t0) / 1000
      return Object.fromEntries(names.map((n) => {
        const a = acc[n]
        return [n, {
          rssMaxMb: Math.max(...a.rss),
          rssMeanMb: mean(a.rss),
          rssLastMb: a.rss.at(-1),
          hwmMb: a.hwmMb,
          cpuMeanPct: ((sumCpu(pids[n]) - cpu0[n]) / secs) * 100,
          cpuMaxPct: Math.max(...a.cpuPct),
          samples: a.rss.length,
        }]
      }))
    },
  }
}

function sumCpu(pid) {
  return [pid].flat().reduce((a, p) => a + (cpuSecondsOf(p) ?? 0), 0)
}

export const mean = (v) => (v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN)

/** Nearest-rank quantile: the hub's own (broker/src/stats.ts), not a copy. */
export { quantile } from '../../broker/dist/index.js'

export const fmt = (v, d = 1) => (v === null || v === undefined || Number.isNaN(v) ? '-' : typeof v === 'number' ? v.toFixed(d) : String(v))

/** Prints rows (arrays of cells) as an aligned table; the first row is the header. */
export function table(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i] ?? '').length)))
  const line = (r) => r.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ')
  console.log(line(rows[0]))
  console.log(widths.map((w) => '-'.repeat(w)).join('  '))
  for (const r of rows.slice(1)) console.log(line(r))
}

export function machineInfo() {
  const c = cpus()
  return { cpu: c[0]?.model ?? '?', cores: c.length, node: process.version, kernel: release() }
}

export function printMachine() {
  const m = machineInfo()
  console.log(`machine: ${m.cpu}, ${m.cores} cores, node ${m.node}, linux ${m.kernel}`)
  return m
}

export const envInt = (name, def) => {
  const v = Number(process.env[name])
  return Number.isFinite(v) && v > 0 ? Math.floor(v) : def
}

/** Log lines (pino JSON) of a harness process's output, parsed; non-JSON lines skipped. */
export function logLines(text) {
  const out = []
  for (const l of text.split('\n')) {
    if (!l.startsWith('{')) continue
    try { out.push(JSON.parse(l)) } catch {}
  }
  return out
}

/** Forked children (load generators) the harness does not track; killed by killChildren(). */
const children = new Set()
export function trackChild(child) {
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}
export async function killChildren() {
  const list = [...children]
  for (const c of list) { try { c.kill('SIGTERM') } catch {} }
  await Promise.all(list.map((c) => new Promise((resolve) => {
    if (c.exitCode !== null || c.signalCode !== null) return resolve()
    const t = setTimeout(() => { try { c.kill('SIGKILL') } catch {} resolve() }, 2000)
    c.once('exit', () => { clearTimeout(t); resolve() })
  })))
  children.clear()
}

/**
 * startHub with up to 3 tries: the harness picks its three ports with separate freePort() calls,
 * each closed before the hub binds, so on a busy machine two can coincide or be taken (EADDRINUSE).
 */
export async function startHubRetry(startHub, opts = {}) {
  for (let i = 1; ; i++) {
    try {
      return await startHub(opts)
    } catch (err) {
      if (i >= 3 || !/EADDRINUSE/.test(err.message)) throw err
      console.log(`hub start failed with EADDRINUSE (try ${i}); retrying on fresh ports`)
    }
  }
}

/** Busy % of the whole machine (all cores) since `since`, or the raw counters. */
export function systemCpu(since) {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  const now = { idle: f[3] + f[4], total: f.reduce((a, b) => a + b, 0) }
  if (!since) return now
  return (1 - (now.idle - since.idle) / (now.total - since.total)) * 100
}


/** Temp folders to delete once every process is gone (run.mjs cleanup). */
const dirs = new Set()
export const trackDir = (dir) => { if (dir) dirs.add(dir); return dir }
export async function removeTrackedDirs() {
  for (const d of dirs) await rm(d, { recursive: true, force: true }).catch(() => undefined)
  dirs.clear()
}
