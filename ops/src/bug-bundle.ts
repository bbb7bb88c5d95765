// `mirrormesh bundle --turn <id> [--node <id>]`: the runbook's bug bundle as one .tar.gz — the
// hub's log records of that turn and the lines around it, engine health, versions, hub status
// and the names (never the values) of the settings in use. The hub scrubs secret and path
// values before answering (hub/src/http/debug.ts); nothing here reads its environment.
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { create } from 'tar'
import type { HubStatusResponse, LogRecord, NodeView, TurnDebugResponse } from '@mirrormesh/broker'
import { HubClient, errorText, type HubTarget } from './api.js'

interface BundleOptions extends HubTarget { turn: string; node?: string; out?: string; contextS?: string; json?: boolean }

const jsonl = (records: LogRecord[]) => records.map((r) => JSON.stringify(r)).join('\n') + (records.length ? '\n' : '')

export async function bugBundleCommand(opts: BundleOptions, cliVersion: string): Promise<number> {
  const fail = (why: string) => {
    if (opts.json) process.stdout.write(JSON.stringify({ ok: false, error: why }) + '\n')
    else process.stderr.write(`mirrormesh bundle: ${why}\n`)
    return 1
  }
  if (!/^\d{1,10}$/.test(opts.turn)) return fail(`--turn ${opts.turn}: a turn id is a number (what \`mirrormesh ask\` and the hub's "turn finished" log line show as turnId)`)
  const api = new HubClient(opts)
  const q = new URLSearchParams()
  if (opts.node) q.set('node', opts.node)
  if (opts.contextS) q.set('contextMs', String(Math.round(Number(opts.contextS) * 1000)))
  let debug: TurnDebugResponse
  try {
    debug = await api.json<TurnDebugResponse>(`/api/debug/turns/${opts.turn}${q.size ? `?${q}` : ''}`)
  } catch (err) {
    return fail(errorText(err))
  }
  // Best effort: a bundle without them still helps.
  const extra = async <T>(path: string): Promise<T | { error: string }> => {
    try { return (await api.request(path)).body as T } catch (err) { return { error: errorText(err) } }
  }
  const status = await extra<HubStatusResponse>('/api/status')
  const node = opts.node ? await extra<NodeView>(`/api/nodes/${encodeURIComponent(opts.node)}`) : undefined

  const stamp = new Date().toISOString().replace(/[:.]/g, '-')
  const name = `mirrormesh-bug-turn-${debug.turnId}${opts.node ? `-${opts.node.replace(/[^\w-]/g, '_')}` : ''}-${stamp}`
  const out = resolve(opts.out ?? `${name}.tar.gz`)
  const tmp = await mkdtemp(join(tmpdir(), 'mm-bundle-'))
  try {
    const dir = join(tmp, name)
    await mkdir(dir)
    const files: Record<string, string> = {
      'README.txt': [
        `mirrormesh bug bundle for turn ${debug.turnId}${debug.nodeId ? ` of node ${debug.nodeId}` : ''}, made ${new Date().toISOString()} from ${api.where}.`,
        'turn.jsonl      the hub log records that carry this turn id',
        `context.jsonl   every hub log record from ${debug.contextMs / 1000} s before the first to ${debug.contextMs / 1000} s after the last`,
        'health.json     each component\'s health (engines asr/tts/llm/vad, broker, mqtt, bundle)',
        'versions.json   hub and CLI versions',
        'settings.txt    names of the hub settings set in its environment (values are never included)',
        'status.json     `mirrormesh status --json`: readiness, broker, nodes, turns, bundle' + (node ? '; node.json: the node as the hub sees it' : ''),
        `The hub keeps its last ${debug.ring.capacity} log lines in memory (${debug.ring.size} now); secret and path values are replaced by [SETTING_NAME].`,
        '',
      ].join('\n'),
      'turn.jsonl': jsonl(debug.records),
      'context.jsonl': jsonl(debug.context),
      'health.json': JSON.stringify(debug.health, null, 2) + '\n',
      'versions.json': JSON.stringify({ ...debug.versions, cli: cliVersion }, null, 2) + '\n',
      'settings.txt': debug.settingsSet.join('\n') + '\n',
      'status.json': JSON.stringify(status, null, 2) + '\n',
      ...(node ? { 'node.json': JSON.stringify(node, null, 2) + '\n' } : {}),
    }
    for (const [file, text] of Object.entries(files)) await writeFile(join(dir, file), text, { mode: 0o600 })
    await create({ gzip: true, file: out, cwd: tmp, portable: true }, [name])
  } catch (err) {
    return fail(`cannot write ${out}: ${errorText(err)}`)
  } finally {
    await rm(tmp, { recursive: true, force: true })
  }
  const summary = { ok: true, file: out, turnId: debug.turnId, node: debug.nodeId, records: debug.records.length, context: debug.context.length, settings: debug.settingsSet.length }
  if (opts.json) process.stdout.write(JSON.stringify(summary) + '\n')
  else process.stdout.write(`wrote ${out}: ${summary.records} log record(s) of turn ${debug.turnId}, ${summary.context} around it, health, versions, ${summary.settings} setting name(s)\n`)
  return 0
}
