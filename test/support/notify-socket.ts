// A real $NOTIFY_SOCKET: a unix datagram socket bound by python3 (Node has none), which prints each
// datagram it receives as a JSON line with its arrival time and the sender's PID (SCM_CREDENTIALS).
// systemd-notify's BARRIER=1 datagrams (its wait for the manager) are answered by closing their fd
// and left out. Tests point a process's NOTIFY_SOCKET here, as systemd would.
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { spawnTracked, tempDir, waitFor, type WaitOptions } from './harness.js'

const LISTENER = String.raw`
import socket, sys, json, os, struct, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
print(json.dumps({"listening": sys.argv[1]}), flush=True)
while True:
    data, anc, flags, addr = s.recvmsg(4096, socket.CMSG_SPACE(12) + socket.CMSG_SPACE(4 * 16))
    pid = None
    for level, typ, d in anc:
        if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", d[:12])[0]
        elif level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
            for i in range(len(d) // 4):
                os.close(struct.unpack("i", d[i * 4:i * 4 + 4])[0])
    text = data.decode("utf-8", "replace")
    if text.strip() == "BARRIER=1":
        continue
    print(json.dumps({"at": time.time() * 1000, "pid": pid, "text": text}), flush=True)
`

/** True when this machine has the tool (`which`). */
export function hasTool(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

export interface NotifyMessage {
  /** Arrival time, ms since the epoch (the listener's clock, the same as Date.now()). */
  at: number
  /** The sender's PID as the kernel reports it. */
  pid: number | null
  /** KEY=VALUE lines of the datagram. */
  fields: Record<string, string>
}

export type NotifySocket = Awaited<ReturnType<typeof startNotifySocket>>

export async function startNotifySocket() {
  const path = join(await tempDir('mm-notify-'), 'notify.sock')
  const { proc, out, exited } = spawnTracked('python3', ['-u', '-c', LISTENER, path], {})
  await Promise.race([
    waitFor(() => out.text.includes('"listening"'), { timeoutMs: 5000, what: 'notify socket listening' }),
    exited.then(({ code }) => { throw new Error(`notify listener exited with ${code}:\n${out.text}`) }),
  ])
  const messages = (): NotifyMessage[] => out.text.split('\n').flatMap((line) => {
    if (!line.startsWith('{"at"')) return []
    const m = JSON.parse(line) as { at: number; pid: number | null; text: string }
    const fields = Object.fromEntries(m.text.split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]))
    return [{ at: m.at, pid: m.pid, fields }]
  })
  return {
    path,
    messages,
    /** Messages that carry `key` (e.g. 'WATCHDOG'), optionally only those received after `since`. */
    with: (key: string, since = 0) => messages().filter((m) => key in m.fields && m.at >= since),
    /** Waits for the first message with `key` (after `since`) and returns it. */
    waitFor: (key: string, since = 0, opts: WaitOptions = {}) =>
      waitFor(() => messages().find((m) => key in m.fields && m.at >= since), { what: `${key} on the notify socket`, ...opts }),
    close: () => proc.kill('SIGTERM'),
  }
}
