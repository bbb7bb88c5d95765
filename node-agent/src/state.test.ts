import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { NodeStateMachine, type StateChange } from './state.js'

const hubStaleMs = 3000
let sm: NodeStateMachine
let changes: StateChange[]

beforeEach(() => {
  vi.useFakeTimers({ now: 1_700_000_000_000 })
  sm = new NodeStateMachine(hubStaleMs)
  changes = []
  sm.on('state', (c) => changes.push(c))
})
afterEach(() => {
  sm.stop()
  vi.useRealTimers()
})

/** Broker up, retained hub status online, first fresh heartbeat. */
function hubComesUp(status: 'online' | 'draining' = 'online') {
  sm.onBrokerConnected()
  sm.onHubStatus(status)
  sm.onHubHeartbeat()
}
/** Let pending recovery promises settle. */
const settle = () => vi.advanceTimersByTimeAsync(0)
const transitions = () => changes.map((c) => `${c.from}->${c.to}:${c.reason}`)

function deferred() {
  let resolve!: () => void
  const promise = new Promise<void>((r) => { resolve = r })
  return { promise, resolve }
}

describe('NodeStateMachine', () => {
  it('starts offline', () => {
    expect(sm.state).toBe('offline')
    expect(sm.reason).toBe('starting')
  })

  it('goes recovering then online once the hub is seen alive', async () => {
    sm.onBrokerConnected()
    sm.onHubStatus('online')
    expect(sm.state).toBe('offline') // status alone is not proof of life
    sm.onHubHeartbeat()
    await settle()
    expect(sm.state).toBe('online')
    expect(sm.hubAlive()).toBe(true)
    expect(transitions()).toEqual(['offline->recovering:hub_heartbeat', 'recovering->online:recovered'])
  })

  it('stays recovering until every recovery task finished, in order', async () => {
    const order: string[] = []
    const first = deferred()
    sm.addRecoveryTask(async () => { order.push('a'); await first.promise; order.push('a done') })
    sm.addRecoveryTask(async () => { order.push('b') })
    hubComesUp()
    await settle()
    expect(sm.state).toBe('recovering')
    expect(order).toEqual(['a'])
    first.resolve()
    await settle()
    expect(order).toEqual(['a', 'a done', 'b'])
    expect(sm.state).toBe('online')
  })

  it('still goes online when a recovery task fails', async () => {
    const after = vi.fn(async () => {})
    sm.addRecoveryTask(async () => { throw new Error('journal replay failed') })
    sm.addRecoveryTask(after)
    hubComesUp()
    await settle()
    expect(after).toHaveBeenCalledTimes(1)
    expect(sm.state).toBe('online')
  })

  it('aborts recovery and stays offline when the hub goes away mid-recovery', async () => {
    const gate = deferred()
    let signal: AbortSignal | undefined
    sm.addRecoveryTask(async (s) => { signal = s; await gate.promise })
    hubComesUp()
    await settle()
    sm.onHubStatus('offline')
    expect(signal?.aborted).toBe(true)
    gate.resolve()
    await settle()
    expect(sm.state).toBe('offline')
  })

  it('goes offline with reason hub_heartbeat_stale when heartbeats stop', async () => {
    hubComesUp()
    await settle()
    await vi.advanceTimersByTimeAsync(hubStaleMs - 1)
    expect(sm.state).toBe('online')
    await vi.advanceTimersByTimeAsync(1)
    expect(sm.state).toBe('offline')
    expect(sm.reason).toBe('hub_heartbeat_stale')
  })

  it('still goes offline when heartbeats stop and the stale timer disagrees with the wall clock', async () => {
    // The stale timer runs on the monotonic clock, staleness is judged by Date.now(). They drift apart
    // when NTP steps the wall clock back (common on a Pi without RTC) and, by a few ms, whenever Node
    // fires a timer early relative to Date.now(). Either way the node must not stay online forever.
    hubComesUp()
    await settle()
    vi.setSystemTime(Date.now() - 200) // NTP correction; timers keep their schedule
    await vi.advanceTimersByTimeAsync(hubStaleMs * 2)
    expect(sm.state).toBe('offline')
    expect(sm.reason).toBe('hub_heartbeat_stale')
  })

  it('stays online while heartbeats keep arriving', async () => {
    hubComesUp()
    await settle()
    for (let i = 0; i < 10; i++) {
      await vi.advanceTimersByTimeAsync(1000)
      sm.onHubHeartbeat()
    }
    expect(sm.state).toBe('online')
    expect(changes).toHaveLength(2)
  })

  it('goes offline when the hub publishes status offline', async () => {
    hubComesUp()
    await settle()
    sm.onHubStatus('offline')
    expect(sm.state).toBe('offline')
    expect(sm.reason).toBe('hub_offline')
  })

  it('goes offline when the broker connection is lost', async () => {
    hubComesUp()
    await settle()
    sm.onBrokerLost()
    expect(sm.state).toBe('offline')
    expect(sm.reason).toBe('broker_lost')
  })

  it('does not trust a retained hub status after reconnecting until a fresh heartbeat arrives', async () => {
    hubComesUp()
    await settle()
    sm.onBrokerLost()
    await vi.advanceTimersByTimeAsync(500)
    sm.onBrokerConnected()
    sm.onHubStatus('online') // retained message, replayed on subscribe
    await settle()
    expect(sm.state).toBe('offline')
    sm.onHubHeartbeat()
    await settle()
    expect(sm.state).toBe('online')
  })

  it('comes back online when hub heartbeats keep arriving after a status offline whose online never came', async () => {
    // A hub taken over: its Last Will said offline, it reconnected, and its retained `online`
    // was lost on the way. Heartbeats are only sent by a running hub: two in a row outweigh it.
    hubComesUp()
    await settle()
    sm.onHubStatus('offline')
    expect(sm.state).toBe('offline')
    sm.onHubHeartbeat() // one may be in flight from before the Last Will
    await settle()
    expect(sm.state).toBe('offline')
    await vi.advanceTimersByTimeAsync(200)
    sm.onHubHeartbeat()
    await settle()
    expect(sm.state).toBe('online')
    expect(transitions()).toContain('offline->recovering:hub_heartbeats_after_offline')
  })

  it('counts a draining hub as alive', async () => {
    hubComesUp('draining')
    await settle()
    expect(sm.state).toBe('online')
    sm.onHubStatus('online')
    sm.onHubStatus('draining')
    expect(sm.state).toBe('online')
    expect(sm.hubAlive()).toBe(true)
  })
})
