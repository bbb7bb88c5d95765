// A loopback TCP proxy for fault tests: counts connection attempts (per second, for reconnect
// storms) and can cut the line silently. partition() stops moving bytes both ways and holds
// new connections without answering — what a pulled cable or a dropping firewall looks like
// to both ends: no RST, no FIN, just silence. heal() lets everything held flow again.
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net'

export interface TcpProxy {
  port: number
  url: string
  /** Time (ms since epoch) of every accepted connection. */
  readonly accepts: number[]
  partition(): void
  heal(): void
  /** Close every piped pair now (the way a restarted target would), keep listening. */
  resetAll(): void
  close(): Promise<void>
  /** Most accepts within any one-second bucket since `since`, and the total. */
  rate(since?: number): { maxPerSecond: number; total: number }
}

export async function startTcpProxy(targetPort: number, { host = '127.0.0.1' }: { host?: string } = {}): Promise<TcpProxy> {
  const pairs = new Set<{ a: Socket; b: Socket }>()
  const held: Array<() => void> = []
  const accepts: number[] = []
  let cut = false

  const pipe = (a: Socket) => {
    const b = connect(targetPort, host)
    const pair = { a, b }
    pairs.add(pair)
    const end = () => { pairs.delete(pair); a.destroy(); b.destroy() }
    a.on('error', end).on('close', end)
    b.on('error', end).on('close', end)
    a.pipe(b)
    b.pipe(a)
    if (cut) { a.pause(); b.pause() }
  }

  const server: Server = createServer((a) => {
    accepts.push(Date.now())
    a.setNoDelay(true)
    if (cut) {
      a.pause()
      a.on('error', () => a.destroy())
      held.push(() => { if (!a.destroyed) pipe(a) })
    } else pipe(a)
  })
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(0, '127.0.0.1', resolve) })
  const port = (server.address() as AddressInfo).port
  return {
    port, url: `mqtt://127.0.0.1:${port}`, accepts,
    partition() {
      cut = true
      for (const { a, b } of pairs) { a.pause(); b.pause() }
    },
    heal() {
      cut = false
      for (const { a, b } of pairs) { a.resume(); b.resume() }
      for (const f of held.splice(0)) f()
    },
    resetAll() {
      for (const { a, b } of pairs) { a.destroy(); b.destroy() }
      pairs.clear()
    },
    async close() {
      for (const { a, b } of pairs) { a.destroy(); b.destroy() }
      pairs.clear()
      held.length = 0
      await new Promise<void>((r) => server.close(() => r()))
    },
    rate(since = 0) {
      const buckets = new Map<number, number>()
      let total = 0
      for (const t of accepts) if (t >= since) { total++; const k = Math.floor(t / 1000); buckets.set(k, (buckets.get(k) ?? 0) + 1) }
      return { maxPerSecond: Math.max(0, ...buckets.values()), total }
    },
  }
}
