// A hub whose state dir is a small, really full-able disk (the hub-side twin of small-disk.ts):
// `unshare -rm` gives the hub its own user + mount namespace with a tmpfs over its state dir;
// what the hub needs before it starts (credentials) is copied in from a seed dir after the
// mount. The disk is read and freed from outside through /proc/<pid>/root.
import { statfs } from 'node:fs/promises'
import { join } from 'node:path'
import { cliPath, freePorts, spawnTracked, waitFor, type Env } from './harness.js'

// $1 mount point, $2 size, $3 seed dir, $4 fill file name, $5 its size in bytes; then the command.
const SCRIPT = 'set -e; dir=$1 size=$2 seed=$3 fill=$4 fillBytes=$5; shift 5\n' +
  'mount -t tmpfs -o "size=$size,mode=0755" tmpfs "$dir"\n' +
  'cp -a "$seed/." "$dir/"\n' +
  'if [ -n "$fill" ]; then head -c "$fillBytes" /dev/zero > "$dir/$fill" || true; fi\n' +
  'exec "$@"'

export interface TmpfsHubOptions { stateDir: string; seedDir: string; sizeBytes: number; fill?: { name: string; bytes: number }; env?: Env }

export async function startHubOnTmpfs(opts: TmpfsHubOptions) {
  const [mqttPort, httpPort, wsPort] = (await freePorts(3)) as [number, number, number]
  const env: Env = {
    MIRRORMESH_STATE_DIR: opts.stateDir, MQTT_HOST: '127.0.0.1', MQTT_PORT: String(mqttPort), MQTT_WS_PORT: String(wsPort),
    HTTP_HOST: '127.0.0.1', HTTP_PORT: String(httpPort), LOG_LEVEL: 'info', BUNDLE_ENABLED: 'false', ...opts.env,
  }
  const args = ['-rm', 'sh', '-c', SCRIPT, 'sh', opts.stateDir, String(opts.sizeBytes), opts.seedDir, opts.fill?.name ?? '', String(opts.fill?.bytes ?? 0), process.execPath, cliPath, 'hub']
  const { proc, out, exited } = spawnTracked('unshare', args, env)
  const http = async (path: string) => {
    const res = await fetch(`http://127.0.0.1:${httpPort}${path}`, { signal: AbortSignal.timeout(3000) })
    const text = await res.text()
    let body: unknown
    try { body = JSON.parse(text) } catch { body = text }
    return { status: res.status, body: body as any } // eslint-disable-line @typescript-eslint/no-explicit-any -- JSON of any route
  }
  const hub = {
    proc, out, exited, mqttPort, httpPort, url: `mqtt://127.0.0.1:${mqttPort}`, http,
    /** A path on the hub's tmpfs, seen from outside its mount namespace. */
    disk: (...rel: string[]) => join(`/proc/${proc.pid}/root`, opts.stateDir, ...rel),
    async free(): Promise<number> { const s = await statfs(hub.disk()); return s.bavail * s.bsize },
  }
  await Promise.race([
    waitFor(async () => (await http('/healthz')).status === 200, { timeoutMs: 30_000, what: 'hub (on its tmpfs) /healthz' }),
    exited.then(({ code }) => { throw new Error(`hub on tmpfs exited with ${code}:\n${out.text}`) }),
  ])
  return hub
}
