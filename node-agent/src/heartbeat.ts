// Heartbeat payload: seq, uptime, cpu, memory, temperature (where the board has a
// sensor), wall clock, versions, mode. systeminformation reads the board.
import si from 'systeminformation'
import type { NodeHeartbeat, NodeMode } from '@mirrormesh/broker'

export interface BoardSample { cpuPct: number | null; memPct: number | null; temperatureC: number | null }

const round1 = (n: number) => Math.round(n * 10) / 10

export async function sampleBoard(withTemperature: boolean): Promise<BoardSample> {
  const [load, mem, temp] = await Promise.all([
    si.currentLoad().catch(() => null),
    si.mem().catch(() => null),
    withTemperature ? si.cpuTemperature().catch(() => null) : Promise.resolve(null),
  ])
  const t = temp?.main
  return {
    cpuPct: load && Number.isFinite(load.currentLoad) ? round1(Math.min(100, Math.max(0, load.currentLoad))) : null,
    memPct: mem && mem.total > 0 ? round1(((mem.total - mem.available) / mem.total) * 100) : null,
    temperatureC: typeof t === 'number' && Number.isFinite(t) && t > -50 && t < 150 ? t : null,
  }
}

export function buildHeartbeat(seq: number, mode: NodeMode, board: BoardSample, versions: Record<string, string>, startedAt: number, room: string | null = null): NodeHeartbeat {
  return {
    v: 1,
    ts: Date.now(),
    seq,
    uptimeS: Math.round((Date.now() - startedAt) / 1000),
    ...board,
    rssMb: round1(process.memoryUsage.rss() / 1048576),
    versions,
    mode,
    room,
  }
}
