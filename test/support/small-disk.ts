// A node agent whose state dir is a small, really full-able disk: the agent runs inside its
// own user + mount namespace (`unshare -rm`) with a tmpfs of a chosen size mounted over its
// state dir. Nothing leaks to the host: the mount lives and dies with the agent process. The
// test reads (and frees) that disk through /proc/<pid>/root, which resolves paths in the
// agent's mount namespace.
import { spawn } from 'node:child_process'
import { statfs } from 'node:fs/promises'
import { join } from 'node:path'
import { agentEnv, cliPath, freePort, spawnTracked, tempDir, removeDir, waitFor, type AgentOptions } from './harness.js'

// $1 mount point, $2 tmpfs size in bytes, $3 name of a file to pre-fill ('' for none), $4 its size; then the command.
const MOUNT_SCRIPT = 'set -e; dir=$1 size=$2 fill=$3 fillBytes=$4; shift 4\n' +
  'mount -t tmpfs -o "size=$size,mode=0755" tmpfs "$dir"\n' +
  'if [ -n "$fill" ]; then head -c "$fillBytes" /dev/zero > "$dir/$fill"; fi\n' +
  'exec "$@"'

function run(cmd: string, args: string[]): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    p.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c })
    // ENOENT: util-linux missing. That is a broken test machine, not a reason to skip.
    p.on('error', (err: NodeJS.ErrnoException) => reject(err.code === 'ENOENT' ? new Error(`${cmd} is not installed (util-linux); the full-disk test needs it`) : err))
    p.on('close', (code, signal) => resolve({ code, signal, stderr: stderr.trim() }))
  })
}

/**
 * Whether this machine lets us mount a tmpfs in a new user + mount namespace.
 * Returns { ok: true } or { ok: false, reason } (the kernel or a seccomp policy forbids it).
 * Throws when `unshare` itself is missing.
 */
export type NamespaceProbe = { ok: true } | { ok: false; reason: string }

export async function probeUserMountNamespace(): Promise<NamespaceProbe> {
  const dir = await tempDir('mm-nsprobe-')
  try {
    const r = await run('unshare', ['-rm', 'sh', '-c', 'mount -t tmpfs -o size=64k tmpfs "$0" && : > "$0/probe"', dir])
    if (r.code === 0) return { ok: true }
    return { ok: false, reason: `the kernel forbids user mount namespaces here (unshare -rm + mount tmpfs: ${r.stderr || `exit ${r.code ?? r.signal}`})` }
  } finally {
    await removeDir(dir)
  }
}

/**
 * Start `mirrormesh agent` in a user + mount namespace with a `sizeBytes` tmpfs mounted on
 * `mountDir` (which must exist; use it as MIRRORMESH_STATE_DIR). `fill: { name, bytes }`
 * pre-fills the disk with an unrelated file. Options otherwise as harness startAgent.
 */
export interface TmpfsAgentOptions extends AgentOptions {
  /** Existing folder the tmpfs is mounted on (use it as MIRRORMESH_STATE_DIR). */
  mountDir: string
  sizeBytes: number
  /** An unrelated file that pre-fills the disk. */
  fill?: { name: string; bytes: number }
}

export async function startAgentOnTmpfs(opts: TmpfsAgentOptions) {
  const healthPort = opts.healthPort ?? (await freePort())
  const env = agentEnv(opts, healthPort)
  const args = ['-rm', 'sh', '-c', MOUNT_SCRIPT, 'sh', opts.mountDir, String(opts.sizeBytes), opts.fill?.name ?? '', String(opts.fill?.bytes ?? 0),
    process.execPath, cliPath, 'agent']
  // `unshare` (no --fork) and `sh` exec in place: the tracked pid is the agent itself, so
  // killAll() ends it, and with it the namespace and the tmpfs.
  const { proc, out, exited } = spawnTracked('unshare', args, env, { stdin: opts.stdin })
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the /healthz JSON
  const health = async (): Promise<any> => {
    const res = await fetch(`http://127.0.0.1:${healthPort}/healthz`, { signal: AbortSignal.timeout(3000) })
    return res.json()
  }
  const agent = {
    proc, out, exited, healthPort, env, health,
    /** A path on the agent's tmpfs, as seen from outside its mount namespace. */
    disk: (...rel: string[]) => join(`/proc/${proc.pid}/root`, opts.mountDir, ...rel),
    /** Free and total bytes of the agent's tmpfs. */
    async space(): Promise<{ free: number; total: number }> {
      const s = await statfs(agent.disk())
      return { free: s.bavail * s.bsize, total: s.blocks * s.bsize }
    },
    waitState: (state: string, timeoutMs = 10_000): Promise<number> => waitFor(async () => (await health()).state === state && Date.now(), { timeoutMs, intervalMs: 10, what: `agent ${opts.nodeId} state ${state}` }),
    kill: (sig: NodeJS.Signals = 'SIGKILL') => proc.kill(sig),
  }
  await Promise.race([
    waitFor(() => health(), { timeoutMs: 15_000, what: 'agent /healthz' }),
    exited.then(({ code }) => { throw new Error(`agent (in its mount namespace) exited with ${code}:\n${out.text}`) }),
  ])
  // /healthz answering proves the agent runs, hence the mount happened; make sure we see it.
  const { total } = await agent.space()
  if (Math.abs(total - opts.sizeBytes) > 4096) throw new Error(`expected a ${opts.sizeBytes}-byte tmpfs at ${agent.disk()}, statfs says ${total}`)
  return agent
}
