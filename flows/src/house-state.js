// Keeps the whole house as one object in flow context, from what the observer reads on
// mirrormesh/#, and sends a snapshot for the dashboard. A tick (topic "tick") only
// recomputes ages and banners, so a silent node turns stale and then offline on screen.
const base = env.get('MQTT_BASE') || 'mirrormesh'
const staleS = Number(env.get('STALE_AFTER_S') || 10)
const offlineAlertMin = Number(env.get('OFFLINE_ALERT_MIN') || 5)
const s = flow.get('house') || { nodes: {}, hubs: {}, health: {}, rooms: {}, turns: [], ttfa: [], replies: {}, errors: 0, replayed: 0, notified: {} }
const now = Date.now()
const nodeOf = (id) => (s.nodes[id] = s.nodes[id] || { id, status: 'unknown', since: now })
const notes = []

if (msg.status) {
  // Status of the observer's MQTT nodes: with the embedded broker, a hub that dies takes the
  // broker with it, so a lost connection is the "hub down" a dashboard can see.
  const text = String(msg.status.text || '')
  if (msg.status.fill === 'red' || text.includes('disconnected')) s.brokerDown = s.brokerDown || now
  else if (msg.status.fill === 'green' || text.includes('connected')) s.brokerDown = 0
} else if (msg.topic !== 'tick') {
  const parts = String(msg.topic).slice(base.length + 1).split('/')
  let p = msg.payload
  if (Buffer.isBuffer(p)) p = p.toString('utf8')
  const json = () => { try { return typeof p === 'string' ? JSON.parse(p) : p } catch { return undefined } }
  if (parts[0] === 'nodes' && parts.length >= 3) {
    const n = nodeOf(parts[1])
    const leaf = parts.slice(2).join('/')
    if (leaf === 'status') {
      const st = String(p)
      if (st !== n.status) { n.status = st; n.since = now }
    } else if (leaf === 'heartbeat') {
      const hb = json()
      if (hb) { n.hbAt = now; n.mode = hb.mode; n.skewMs = now - hb.ts; n.cpuPct = hb.cpuPct; n.temperatureC = hb.temperatureC; n.rssMb = hb.rssMb; if (hb.room) n.room = hb.room }
    } else if (leaf === 'presence') {
      const pr = json()
      if (pr) n.present = pr.present
    } else if (leaf === 'config') {
      const c = json()
      if (c && c.room) n.room = c.room
    } else if (leaf === 'events') {
      const e = json()
      if (e && e.type === 'transcript') s.turns.unshift({ node: n.id, at: now, transcript: e.text, reply: '' })
      else if (e && e.type === 'reply') {
        const t = s.turns.find((x) => x.node === n.id && !x.reply)
        if (t) t.reply = e.text
        else s.turns.unshift({ node: n.id, at: now, transcript: '', reply: e.text })
        s.replies[e.kind] = (s.replies[e.kind] || 0) + 1
      } else if (e && e.type === 'turn_error') s.errors++
      else if (e && e.type === 'ttfa') { s.ttfa.unshift(e.ms); s.ttfa.length = Math.min(s.ttfa.length, 50) }
      s.turns.length = Math.min(s.turns.length, 8)
    } else if (leaf === 'response/replay') {
      const r = json()
      if (r && r.status === 'ok' && r.data) s.replayed += r.data.kept || 0
    }
  } else if (parts[0] === 'hub' && parts.length === 3) {
    const h = (s.hubs[parts[1]] = s.hubs[parts[1]] || { id: parts[1] })
    if (parts[2] === 'status') { h.status = String(p); h.since = now }
    else if (parts[2] === 'heartbeat') { const hb = json(); if (hb) { h.hbAt = now; h.sessions = hb.sessions; h.queueDepth = hb.queueDepth; h.load = hb.load; h.engines = hb.engines; if (hb.fallbacks) h.fallbacks = hb.fallbacks } }
  } else if (parts[0] === 'health' && parts.length === 2) {
    const hl = json()
    if (hl) s.health[parts[1]] = { state: hl.state, reason: hl.reason || '' }
  } else if (parts[0] === 'clients' && parts[1] === 'online') {
    const c = json()
    if (c && Array.isArray(c.nodes)) for (const x of c.nodes) { const n = nodeOf(x.id); if (x.room) n.room = x.room }
  }
}

// Derived view: the three-way state, ages, rooms, banners.
const view = { nodes: [], hubs: [], health: s.health, rooms: [], turns: s.turns, banners: [], replayed: s.replayed, replies: s.replies, errors: s.errors, at: now }
for (const n of Object.values(s.nodes)) {
  const ageS = n.hbAt ? Math.round((now - n.hbAt) / 1000) : null
  const state = n.status !== 'online' ? 'offline' : ageS === null || ageS > staleS ? 'stale' : 'online'
  const offlineMin = state === 'offline' ? (now - n.since) / 60000 : 0
  view.nodes.push({ id: n.id, state, ageS, mode: n.mode || '', skewMs: n.skewMs ?? null, cpuPct: n.cpuPct ?? null, temperatureC: n.temperatureC ?? null, room: n.room || '', present: !!n.present })
  const key = 'offline:' + n.id
  if (state === 'offline' && n.status !== 'unknown' && offlineMin >= offlineAlertMin) {
    view.banners.push({ kind: 'node-offline', text: `${n.id} offline for ${offlineMin < 1 ? Math.round(offlineMin * 60) + ' s' : Math.floor(offlineMin) + ' min'}` })
    if (!s.notified[key]) { s.notified[key] = true; notes.push(`mirror ${n.id} has been offline for ${offlineAlertMin} minutes`) }
  } else delete s.notified[key]
}
view.nodes.sort((a, b) => a.id.localeCompare(b.id))
const rooms = {}
for (const n of view.nodes) if (n.room) { const r = (rooms[n.room] = rooms[n.room] || { room: n.room, present: false, nodes: [] }); r.nodes.push(n.id); r.present = r.present || n.present }
view.rooms = Object.values(rooms).sort((a, b) => a.room.localeCompare(b.room))
for (const h of Object.values(s.hubs)) {
  const ageS = h.hbAt ? Math.round((now - h.hbAt) / 1000) : null
  view.hubs.push({ id: h.id, status: h.status || 'unknown', sessions: h.sessions ?? null, queueDepth: h.queueDepth ?? null, ageS, engines: h.engines || {} })
  const key = 'hub:' + h.id
  if (h.status === 'draining') view.banners.push({ kind: 'hub-draining', text: `hub ${h.id} is draining: new turns are refused` })
  if (h.status === 'offline') {
    view.banners.push({ kind: 'hub-down', text: `hub ${h.id} is down` })
    if (!s.notified[key]) { s.notified[key] = true; notes.push(`hub ${h.id} is down`) }
  } else delete s.notified[key]
}
if (s.brokerDown) {
  if (!view.banners.some((b) => b.kind === 'hub-down')) view.banners.push({ kind: 'hub-down', text: "hub down: no connection to the hub's broker" })
  if (!s.notified.broker) { s.notified.broker = true; notes.push("hub down: the dashboard lost its connection to the hub's broker") }
} else delete s.notified.broker
const sorted = [...s.ttfa].sort((a, b) => a - b)
view.ttfa = { count: sorted.length, p50: sorted.length ? sorted[Math.floor(sorted.length / 2)] : null, last: s.ttfa[0] ?? null }
// Fallbacks as each hub counts them (its heartbeat's `fallbacks`, the sum of
// mirrormesh_fallback_total by stage since that hub started), added up over the hubs.
view.fallbacks = { total: 0, byStage: {} }
for (const h of Object.values(s.hubs)) for (const [stage, n] of Object.entries(h.fallbacks || {})) { view.fallbacks.total += n; view.fallbacks.byStage[stage] = (view.fallbacks.byStage[stage] || 0) + n }
flow.set('house', s)
return [{ payload: view }, notes.length ? notes.map((n) => ({ payload: n, topic: 'mirrormesh' })) : null]
