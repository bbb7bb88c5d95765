// Load generator for `bench heartbeat` (child_process.fork). Holds a slice of the simulated
// nodes: one mqtt.js connection each, retained status `online` on connect, then a heartbeat
// every second at the node's phase. One 5 ms ticker drives all heartbeats of this worker.
// Messages from the parent: {type:'connect', url, nodes:[{id,password,phaseMs}], batch, subscribe, maxMs},
// {type:'stats'}, {type:'stop'}. It exits by itself after maxMs or when the parent goes away.
import mqtt from 'mqtt'

const base = 'mirrormesh'
const nodes = [] // { id, client, phaseMs, seq, startedAt, topic }
const bySlot = Array.from({ length: 1000 }, () => [])
const stats = { published: 0, skipped: 0, connects: 0, closes: 0, errors: 0, lastError: '', statusAcked: 0, received: 0 }
let ticker

process.on('disconnect', () => process.exit(0)) // the parent is gone: never outlive it

process.on('message', (m) => {
  if (m.type === 'connect') void connectAll(m)
  else if (m.type === 'stats') process.send({ type: 'stats', stats: { ...stats, connected: nodes.filter((n) => n.client.connected).length } })
  else if (m.type === 'stop') stop()
})

function stop() {
  clearInterval(ticker)
  for (const n of nodes) n.client.end(true)
  setTimeout(() => process.exit(0), 200).unref()
}

async function connectAll({ url, nodes: list, batch, subscribe, maxMs }) {
  setTimeout(() => { stats.lastError = 'maxMs reached'; stop() }, maxMs).unref()
  const t0 = Date.now()
  startTicker() // nodes heartbeat as soon as they are connected, as an agent does
  for (let i = 0; i < list.length; i += batch) {
    await Promise.all(list.slice(i, i + batch).map((n) => connectOne(url, n, subscribe)))
  }
  process.send({ type: 'connected', ms: Date.now() - t0, connected: nodes.filter((n) => n.client.connected).length })
}

function connectOne(url, { id, password, phaseMs }, subscribe) {
  const statusTopic = `${base}/nodes/${id}/status`
  const client = mqtt.connect(url, {
    clientId: `node-${id}`,
    username: id,
    password,
    protocolVersion: 4,
    clean: true,
    keepalive: 30,
    connectTimeout: 10_000,
    reconnectPeriod: 3_000,
    queueQoSZero: false,
    will: { topic: statusTopic, payload: Buffer.from('offline'), qos: 1, retain: true },
  })
  const node = { id, client, phaseMs, seq: 0, startedAt: Date.now(), topic: `${base}/nodes/${id}/heartbeat` }
  nodes.push(node)
  bySlot[Math.floor(phaseMs) % 1000].push(node)
  client.on('connect', () => {
    stats.connects++
    client.stream?.setNoDelay?.(true) // as MeshClient does
    client.publish(statusTopic, 'online', { qos: 1, retain: true }, (err) => { if (!err) stats.statusAcked++ })
    if (subscribe) client.subscribe([`${base}/hub/main/status`, `${base}/hub/main/heartbeat`, `${base}/nodes/${id}/config`], { qos: 1 })
  })
  client.on('message', () => { stats.received++ })
  client.on('close', () => { stats.closes++ })
  client.on('error', (err) => { stats.errors++; stats.lastError = err.message })
  return new Promise((resolve) => {
    const t = setTimeout(resolve, 15_000)
    client.once('connect', () => { clearTimeout(t); resolve() })
  })
}

function beat(n) {
  if (!n.client.connected) { stats.skipped++; return }
  const now = Date.now()
  n.client.publish(n.topic, JSON.stringify({
    v: 1, ts: now, seq: n.seq++, uptimeS: Math.round((now - n.startedAt) / 1000),
    cpuPct: null, memPct: null, rssMb: 40, temperatureC: null, versions: { agent: 'bench' }, mode: 'online',
  }), { qos: 0 })
  stats.published++
}

function startTicker() {
  let last = Date.now()
  ticker = setInterval(() => {
    const now = Date.now()
    // Every millisecond slot passed since the last tick (a late tick catches up, at most one second's worth).
    for (let t = Math.max(last + 1, now - 999); t <= now; t++) for (const n of bySlot[t % 1000]) beat(n)
    last = now
  }, 5)
}
