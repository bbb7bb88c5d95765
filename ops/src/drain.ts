// `mirrormesh drain [--wait]` and `mirrormesh restart --safe`: the runbook's safe restart.
// The hub drains (new turns hear "busy", running ones finish, bounded by DRAIN_TIMEOUT_MS),
// then exits 0; systemd's Restart=always starts it again (any exit restarts, 0 included, unless
// systemd itself stopped the unit). These commands start that and watch it through.
import type { DrainedResponse, DrainView, HealthzResponse, ReadinessResponse } from '@mirrormesh/broker'
import { HubClient, HubError, errorText, type HubTarget } from './api.js'

/** Exit codes: 0 done; 1 the hub could not be reached or refused; 3 it did not exit; 4 it did not come back ready. */
export const exitCodes = { ok: 0, unreachable: 1, stillRunning: 3, notBack: 4 } as const

interface DrainOptions extends HubTarget { wait?: boolean; timeoutS?: string; json?: boolean }
interface RestartOptions extends HubTarget { safe?: boolean; timeoutS?: string; json?: boolean }

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const pollMs = 200

/** When the hub process answering now started (ms since epoch, ±1 s: /healthz gives whole seconds). */
async function processStart(api: HubClient): Promise<number> {
  const h = await api.json<HealthzResponse>('/healthz', { timeoutMs: 2000 })
  return Date.now() - h.uptimeS * 1000
}

/** Resolves true once the process that started at `start` no longer answers (refused, or a newer one answers). */
async function waitGone(api: HubClient, start: number, deadline: number): Promise<boolean> {
  while (Date.now() < deadline) {
    try {
      if ((await processStart(api)) - start > 1500) return true
    } catch (err) {
      if (err instanceof HubError && err.kind === 'unreachable') return true
      // 503 while the old one closes, a timeout: still there.
    }
    await sleep(pollMs)
  }
  return false
}

/** POST /api/drain?wait=true: the drain as the hub ended it, or null when the hub went before answering. */
async function drainAndWait(api: HubClient, timeoutMs: number): Promise<DrainView | null> {
  try {
    return (await api.json<DrainedResponse>('/api/drain?wait=true', { method: 'POST', timeoutMs })).drain
  } catch (err) {
    // Refused before we were answered would be caught by the caller's first /healthz; here it means
    // the hub closed the connection while stopping: the drain ran, its figures are lost.
    if (err instanceof HubError && err.kind === 'unreachable' && !/connection refused/.test(err.message)) return null
    throw err
  }
}

const drainText = (d: DrainView | null) => (d?.result
  ? `${d.result.finished} of ${d.turnsAtStart} running turn${d.turnsAtStart === 1 ? '' : 's'} finished${d.result.cutOff ? `, ${d.result.cutOff} cut off at DRAIN_TIMEOUT_MS=${d.timeoutMs}` : ''}`
  : 'turn counts unknown (the hub closed before answering)')

const timeoutOf = (opts: { timeoutS?: string }) => Math.max(1, Number(opts.timeoutS ?? 120) || 120) * 1000

function report(opts: { json?: boolean }, cmd: string, code: number, result: Record<string, unknown>, text: string): number {
  if (opts.json) process.stdout.write(JSON.stringify({ ok: code === 0, exitCode: code, ...result }) + '\n')
  else (code === 0 ? process.stdout : process.stderr).write(code === 0 ? `${text}\n` : `mirrormesh ${cmd}: ${text}\n`)
  return code
}

export async function drainCommand(opts: DrainOptions): Promise<number> {
  const api = new HubClient(opts)
  const deadline = Date.now() + timeoutOf(opts)
  try {
    if (!opts.wait) {
      await api.json('/api/drain', { method: 'POST' })
      return report(opts, 'drain', 0, { hub: api.where, draining: true },
        `hub at ${api.where} is draining: new turns hear "busy", running turns finish (up to DRAIN_TIMEOUT_MS), then it exits 0 and systemd (Restart=always) starts it again`)
    }
    const start = await processStart(api)
    const drain = await drainAndWait(api, deadline - Date.now())
    const gone = await waitGone(api, start, deadline)
    if (!gone) {
      return report(opts, 'drain', exitCodes.stillRunning, { hub: api.where, drain, exited: false },
        `drained (${drainText(drain)}) but the hub at ${api.where} still answers after ${timeoutOf(opts) / 1000} s. Check: \`journalctl -u mirrormesh-hub -n 100\` for what it waits on; TimeoutStopSec kills it eventually`)
    }
    return report(opts, 'drain', 0, { hub: api.where, drain, exited: true }, `drained: ${drainText(drain)}; the hub exited`)
  } catch (err) {
    return report(opts, 'drain', exitCodes.unreachable, { hub: api.where, error: errorText(err) }, errorText(err))
  }
}

export async function restartCommand(opts: RestartOptions): Promise<number> {
  const api = new HubClient(opts)
  if (!opts.safe) {
    return report(opts, 'restart', exitCodes.unreachable, { error: '--safe is required' },
      'only a safe restart is offered: `mirrormesh restart --safe` (drain, exit, wait until it is back). For a hard one: `systemctl restart mirrormesh-hub`')
  }
  const began = Date.now()
  const timeoutMs = timeoutOf(opts)
  const deadline = began + timeoutMs
  let start: number
  let drain: DrainView | null
  try {
    start = await processStart(api)
    drain = await drainAndWait(api, deadline - Date.now())
  } catch (err) {
    return report(opts, 'restart', exitCodes.unreachable, { hub: api.where, error: errorText(err) }, errorText(err))
  }
  if (!(await waitGone(api, start, deadline))) {
    return report(opts, 'restart', exitCodes.stillRunning, { hub: api.where, drain, exited: false, back: false },
      `the old hub at ${api.where} still answers ${timeoutMs / 1000} s after the drain (${drainText(drain)}). Check: \`journalctl -u mirrormesh-hub -n 100\`; \`systemctl status mirrormesh-hub\``)
  }
  const exitedAfterMs = Date.now() - began
  let last = 'no answer'
  while (Date.now() < deadline) {
    try {
      const r = await api.request('/readyz', { timeoutMs: 2000 })
      if (r.status === 200 && (await processStart(api)) - start > 1500) {
        return report(opts, 'restart', 0, { hub: api.where, drain, exitedAfterMs, readyAfterMs: Date.now() - began },
          `drained: ${drainText(drain)}; the hub exited after ${(exitedAfterMs / 1000).toFixed(1)} s and is back and ready after ${((Date.now() - began) / 1000).toFixed(1)} s`)
      }
      const failing = Object.entries((r.body as ReadinessResponse | undefined)?.checks ?? {}).filter(([, ok]) => !ok).map(([k]) => k)
      last = r.status === 200 ? 'the old process still answering' : `/readyz ${r.status}${failing.length ? ` (failing: ${failing.join(', ')})` : ''}`
    } catch (err) {
      last = err instanceof HubError && err.kind === 'unreachable' ? 'nothing listening (connection refused)' : errorText(err)
    }
    await sleep(pollMs)
  }
  return report(opts, 'restart', exitCodes.notBack, { hub: api.where, drain, exitedAfterMs, back: false, last },
    `the hub drained (${drainText(drain)}) and exited, but is not back and ready within ${timeoutMs / 1000} s (last: ${last}). ` +
    'Check: `systemctl status mirrormesh-hub` (is it restarting? the unit needs Restart=always; a start limit may have been hit), ' +
    '`journalctl -u mirrormesh-hub -n 100` (start-up errors), `mirrormesh doctor --role hub` (configuration), `mirrormesh status` once it answers')
}
