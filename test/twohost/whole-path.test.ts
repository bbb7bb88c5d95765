// The product's whole path across two hosts, each process started as its systemd unit starts it
// with the shipped env files filled in (test/support/twohost.ts): node added on the hub → the agent
// on the mirror host connects to hub.lan → it fetches the offline bundle over the LAN → the hub
// dies (SIGKILL) → the mirror answers a spoken "what time is it" from its cache and journals it →
// the hub comes back → the journal is replayed to the hub (GET /api/offline-turns) and trimmed.
import { readFile } from 'node:fs/promises'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { waitFor } from '../support/harness.js'
import { createBed, describeBed, type Bed } from '../support/twohost.js'
import { liveMic, synth } from '../support/voice.js'

let bed: Bed | undefined
afterAll(async () => { await bed?.teardown() })

describeBed('two hosts: the whole path (hub.lan, offline bundle, offline answer, journal replay)', () => {
  beforeAll(async () => {
    bed = await createBed({
      nodes: ['kitchen'],
      // A test machine has no microphone or speaker: the mic is the agent's stdin, the speaker a file.
      nodeEnv: { AUDIO_SOURCE: 'stdin', AUDIO_SINK: 'file', AUDIO_SINK_FILE: '/var/lib/mirrormesh-agent/played.jsonl' },
      why: { AUDIO_SOURCE: 'no microphone on a test machine: speech is fed on stdin', AUDIO_SINK: 'no speaker: what is played is recorded', AUDIO_SINK_FILE: 'where the recording goes' },
    })
  }, 60_000)

  it('node add → connects to hub.lan → bundle fetched across hosts → hub killed → offline answer → hub back → journal replayed', { timeout: 300_000 }, async () => {
    const b = bed!
    const steps: string[] = []
    const tls = await b.tls()
    await b.startHub()
    steps.push('hub ready')
    await b.addNode('kitchen')
    const kitchen = b.nodes.kitchen!
    const agent = await b.startNode('kitchen', { stdin: true })
    steps.push('agent ready')
    const mic = liveMic(agent.proc.stdin!)
    try {
      const health = async () => (await b.http('kitchen', '/healthz')).body
      // Connected to the hub across the bridge: the hub lists it online, the TCP peer is the node's address.
      await waitFor(async () => (await b.http('hub', '/api/nodes/kitchen')).body?.state === 'online', { timeoutMs: 30_000, what: 'hub sees kitchen online' })
      const mqttPort = tls ? b.hub.env.MQTT_TLS_PORT ?? '8883' : b.hub.env.MQTT_PORT ?? '1883'
      const ss = await b.exec('hub', ['ss', '-Htn', 'state', 'established', `( sport = :${mqttPort} )`])
      expect(ss.stdout, 'the node\'s MQTT connection on the hub host').toContain(`${kitchen.ip}:`)
      steps.push('connected')

      // The bundle the hub built, fetched by the node from hub.lan: same version on both.
      const manifest = await waitFor(async () => { const r = await b.http('hub', '/api/bundle/manifest'); return r.status === 200 && r.body }, { timeoutMs: 120_000, intervalMs: 500, what: 'hub built the offline bundle' })
      await waitFor(async () => (await health()).offline?.bundleVersion === manifest.version, { timeoutMs: 120_000, intervalMs: 500, what: `bundle ${manifest.version} synced to the node (node log ${agent.log})` })
      expect((await health()).state).toBe('online')
      steps.push('bundle synced')

      // The hub dies. The node notices from the missing heartbeats and goes offline.
      await b.killHub()
      await waitFor(async () => (await health()).state === 'offline', { timeoutMs: 20_000, what: 'node offline after the hub died' })
      steps.push('offline')

      const hourNow = new Date().getHours() % 12 || 12
      await mic.say(await synth('what time is it', { padMs: 1500 }))
      await waitFor(async () => (await health()).offline?.journalPending === 1, { timeoutMs: 30_000, what: 'offline turn journaled' })
      const answered = agent.out.text.split('\n').filter((l) => l.includes('offline turn answered')).map((l) => JSON.parse(l))
      expect(answered, agent.out.text.slice(-3000)).toHaveLength(1)
      expect(answered[0].matched, JSON.stringify(answered[0])).toBe(true)
      const played = String(kitchen.env.AUDIO_SINK_FILE)
      await waitFor(async () => (await readFile(played, 'utf8').catch(() => '')).trim().length > 0, { timeoutMs: 10_000, what: 'cached reply played' })
      const rec = JSON.parse((await readFile(played, 'utf8')).trim().split('\n')[0]!)
      expect(rec.samples / 16000).toBeGreaterThan(0.8)
      steps.push('answered offline')

      // The hub is back (a new process, same state dir): the node replays its journal.
      await b.startHub()
      await waitFor(async () => (await health()).state === 'online', { timeoutMs: 30_000, what: 'node online again' })
      await waitFor(async () => (await health()).offline?.journalPending === 0, { timeoutMs: 30_000, what: 'journal trimmed after the hub acked' })
      const turns = (await b.http('hub', '/api/offline-turns')).body.turns
      expect(turns).toHaveLength(1)
      expect(turns[0]).toMatchObject({ nodeId: 'kitchen', transcript: 'what time is it' })
      expect(turns[0].reply).toMatch(new RegExp(`^It's ${hourNow}:\\d{2} (AM|PM)`))
      steps.push('replayed')

      expect(steps).toEqual(['hub ready', 'agent ready', 'connected', 'bundle synced', 'offline', 'answered offline', 'replayed'])
      console.log(`two-host bed ${b.subnet}.0/24, tls ${tls ? 'on' : 'off'}; overrides of the shipped env files:\n${b.overrides.map((o) => `  ${o.host} ${o.key}: ${o.shipped ?? '(unset)'} → ${o.key === 'MQTT_PASSWORD' ? '(secret)' : o.used} — ${o.why}`).join('\n')}`)
    } finally {
      await mic.stop()
    }
  })
})
