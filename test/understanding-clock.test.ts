// Issue #12: time and date follow the node's time zone and 12/24-hour setting. Real hub, real
// HTTP: the operator sets `timeZone` and `clock` in the node's config, and the time and date
// skills answer that mirror in its zone; a mirror without them keeps the hub's zone, 12h. The
// agent receives the settings with its config (offline answers use them:
// node-agent/src/offline/responder.test.ts).
import { afterEach, describe, expect, it } from 'vitest'
import { killAll, startAgent, tempDir, waitFor } from './support/harness.js'
import { createMesh, type Mesh } from './support/mesh.js'

afterEach(async () => {
  await killAll()
})

async function ask(mesh: Mesh, node: string, text: string): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${mesh.hub.httpPort}/api/turns`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ node, text }), signal: AbortSignal.timeout(20_000),
  })
  expect(res.status).toBe(200)
  return ((await res.json()) as { reply: string }).reply
}

async function putConfig(mesh: Mesh, node: string, body: unknown): Promise<{ status: number; body: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any -- JSON
  const res = await fetch(`http://127.0.0.1:${mesh.hub.httpPort}/api/nodes/${node}/config`, {
    method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(5000),
  })
  return { status: res.status, body: await res.json() }
}

/** What the answer may be: the clock is read before and after the turn (a minute may turn over). */
function around(fmt: (d: Date) => string, turn: () => Promise<string>): Promise<{ got: string; want: string[] }> {
  const before = fmt(new Date())
  return turn().then((got) => ({ got, want: [before, fmt(new Date())] }))
}

const inZone = (timeZone: string | undefined, hourCycle: 'h12' | 'h23') => (d: Date): string => {
  const p = Object.fromEntries(new Intl.DateTimeFormat('en-US', { timeZone, hourCycle, hour: 'numeric', minute: '2-digit' }).formatToParts(d).map((x) => [x.type, x.value]))
  return hourCycle === 'h23' ? `It's ${p.hour!.padStart(2, '0')}:${p.minute}.` : `It's ${p.hour}:${p.minute} ${p.dayPeriod}.`
}
const dateIn = (timeZone: string | undefined) => (d: Date): string =>
  `Today is ${d.toLocaleDateString('en-US', { weekday: 'long', month: 'long', day: 'numeric', timeZone })}.`

describe('time and date per node', () => {
  it('a node set to Asia/Kolkata on a 24-hour clock hears its own time and date; another node keeps the hub\'s zone, 12h; a bad zone is refused', { timeout: 60_000 }, async () => {
    // The hub runs in UTC: +5:30 cannot be mistaken for it at any hour.
    const mesh = await createMesh('embedded', { hubEnv: { TZ: 'UTC' } })
    const agents = await Promise.all((['kitchen', 'hall'] as const).map(async (id) => startAgent({
      nodeId: id, mqttUrl: mesh.url, password: mesh.passwords[id], env: { AUDIO_SOURCE: 'none', MIRRORMESH_STATE_DIR: await tempDir('mm-node-') },
    })))
    await Promise.all(agents.map((a) => a.waitState('online')))
    await Promise.all(['kitchen', 'hall'].map((id) => mesh.waitNode(id, 'online')))
    const set = await putConfig(mesh, 'kitchen', { timeZone: 'Asia/Kolkata', clock: '24h' })
    expect(set.status).toBe(200)
    expect(set.body.config).toMatchObject({ timeZone: 'Asia/Kolkata', clock: '24h' })
    // The mirror has them too, for its offline answers.
    await waitFor(async () => (await agents[0]!.health()).config?.timeZone === 'Asia/Kolkata', { what: 'kitchen agent got its time zone' })
    expect((await agents[0]!.health()).config).toMatchObject({ timeZone: 'Asia/Kolkata', clock: '24h' })

    const kitchen = await around(inZone('Asia/Kolkata', 'h23'), () => ask(mesh, 'kitchen', 'what time is it'))
    expect(kitchen.want).toContain(kitchen.got)
    const kitchenDate = await around(dateIn('Asia/Kolkata'), () => ask(mesh, 'kitchen', 'what is the date today'))
    expect(kitchenDate.want).toContain(kitchenDate.got)

    const hall = await around(inZone('UTC', 'h12'), () => ask(mesh, 'hall', 'what time is it'))
    expect(hall.want).toContain(hall.got)
    const hallDate = await around(dateIn('UTC'), () => ask(mesh, 'hall', 'what day is it'))
    expect(hallDate.want).toContain(hallDate.got)

    // A zone the system does not know: a clear 400, and the node's settings are kept as they were.
    const bad = await putConfig(mesh, 'kitchen', { timeZone: 'Mars/Olympus_Mons' })
    expect(bad.status).toBe(400)
    expect(JSON.stringify(bad.body)).toMatch(/timeZone: not a time zone this system knows/)
    expect((await putConfig(mesh, 'kitchen', { clock: '25h' })).status).toBe(400)
    const again = await around(inZone('Asia/Kolkata', 'h23'), () => ask(mesh, 'kitchen', 'what time is it'))
    expect(again.want).toContain(again.got)
  })
})
