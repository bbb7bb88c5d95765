// Heartbeat payload: seq, uptime, cpu, memory, temperature (where the board has a
// sensor), wall clock, versions, mode. systeminformation reads the board.
import { createRequire } from 'node:module'
import type { NodeHeartbeat, NodeMode } from '@mirrormesh/broker'

// Only systeminformation's cpu and memory modules: its index loads all of them (network,
// docker, wifi, bluetooth vendor tables…): 8 MB of RSS imported alone against 1.4 MB, ~1 MB of
// live heap in the running agent. The functions are the very ones the index re-exports. require(), not import: an ESM import of a CommonJS file also runs
// Node's export lexer over its source.
const requireCjs = createRequire(import.meta.url)
type SystemInformation = typeof import('systeminformation')
const cpu = requireCjs('systeminformation/lib/cpu.js') as Pick<SystemInformation, 'currentLoad' | 'cpuTemperature'>
const memory = requireCjs('systeminformation/lib/memory.js') as Pick<SystemInformation, 'mem'>

export interface BoardSample { cpuPct: number | null; memPct: number | null; temperatureC: number | null }

const round1 = (n: number) => Math.round(n * 10) / 10

export async function sampleBoard(withTemperature: boolean): Promise<BoardSample> {
  const [load, mem, temp] = await Promise.all([
    cpu.currentLoad().catch(() => null),
    memory.mem().catch(() => null),
    withTemperature ? cpu.cpuTemperature().catch(() => null) : Promise.resolve(null),
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
