// The page as a mirrormesh node (hub-served only): its own node credential (paired once, kept
// in localStorage), MQTT over WebSocket on the page's own origin, the microphone through an
// AudioWorklet (capture.js: PCM16 16 kHz, 20 ms frames) and audio/out played through Web Audio.
// Frames follow broker/src/audio.ts exactly; the rules are a mirror's (node-agent/src/voice.ts):
// push-to-talk ends the turn on release; hands-free leaves the end to the hub's VAD; pressing
// while the reply plays stops it at once and tells the hub (barge-in flag).
'use strict'
;(function () {
  var $ = function (id) { return document.getElementById(id) }
  var FLAGS = { start: 1, end: 2, cancel: 4, bargeIn: 8 }
  var LEAD_S = 0.06 // playback jitter buffer; the hub paces audio/out a little ahead
  var STORE = 'mirrormesh.node'
  var OFFLINE = 'Offline \u2014 the hub is not answering'

  window.mirrormeshNode = function (info) {
    var render = window.mirrormesh.render
    var base = info.baseTopic
    var state = { nodeId: '', room: null, name: 'this browser', state: 'offline', activity: 'idle', presence: true, transcript: '', reply: '', hubLatencyMs: null, banner: 'Connecting to the hub\u2026' }
    function update(p) { for (var k in p) state[k] = p[k]; render(state) }
    update({})
    $('controls').hidden = false
    var btn = $('talk-btn')
    var handsFree = $('handsfree')
    handsFree.checked = localStorage.getItem('mirrormesh.handsfree') === '1'
    function label() { btn.textContent = handsFree.checked ? 'Tap to talk' : 'Hold to talk' }
    handsFree.onchange = function () { localStorage.setItem('mirrormesh.handsfree', handsFree.checked ? '1' : '0'); label() }
    label()

    // Observable by tests and the benchmark: one record per turn.
    var turns = []
    window.mirrormesh.turns = turns
    window.mirrormesh.level = 0

    // ── identity ──────────────────────────────────────────────────────────────────────
    var cred = null
    try { cred = JSON.parse(localStorage.getItem(STORE) || 'null') } catch (e) { cred = null }
    if (cred && cred.hubId !== info.hubId) cred = null

    function pair(code) {
      return fetch('api/pair', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(code ? { code: code } : {}) })
        .then(function (r) { return r.json().then(function (b) { return { ok: r.ok, body: b } }) })
        .then(function (res) {
          if (!res.ok) throw new Error(res.body && res.body.message || 'pairing refused')
          cred = { nodeId: res.body.nodeId, password: res.body.password, hubId: info.hubId }
          localStorage.setItem(STORE, JSON.stringify(cred))
          return cred
        })
    }
    function askCode(why) {
      var form = $('pair')
      form.hidden = false
      if (why) showNote(why)
      form.onsubmit = function (ev) {
        ev.preventDefault()
        pair($('pair-code').value.trim()).then(function () { form.hidden = true; showNote(''); connect() }, function (err) { showNote(err.message) })
      }
    }
    function identity() {
      if (cred) return connect()
      var m = /[#&]pair=([A-Za-z0-9-]{4,16})/.exec(location.hash)
      if (m) history.replaceState(null, '', location.pathname)
      if (info.pairing === 'open' || m) return pair(m ? m[1] : '').then(connect, function (err) { askCode(err.message) })
      askCode('This browser is not paired with the hub yet.')
    }
    function showNote(text) { var n = $('mic-note'); n.textContent = text; n.hidden = !text }

    // ── MQTT ──────────────────────────────────────────────────────────────────────────
    var client = null
    var hubOnline = false
    var topic = {}
    function connect() {
      if (!info.mqttPath) { update({ banner: 'The hub uses an external broker: this page cannot talk from here.' }); return }
      var id = cred.nodeId
      topic = { audioIn: base + '/nodes/' + id + '/audio/in', audioOut: base + '/nodes/' + id + '/audio/out', events: base + '/nodes/' + id + '/events', turnEnd: base + '/nodes/' + id + '/turn/end', hubStatus: base + '/hub/' + info.hubId + '/status', hubBeat: base + '/hub/' + info.hubId + '/heartbeat' }
      update({ nodeId: id })
      var url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + info.mqttPath
      var refused = 0
      client = window.mqtt.connect(url, {
        username: id, password: cred.password, protocolVersion: 4, reconnectPeriod: 1000, connectTimeout: 5000,
        clientId: 'node-' + id + '/page-' + Math.random().toString(16).slice(2, 10),
      })
      // No status/heartbeat: a tab is not a mirror, and closing one must not open a node outage
      // incident or list a stale node. The hub needs only audio/in and events to run a turn.
      client.on('connect', function () {
        refused = 0
        client.subscribe([topic.audioOut, topic.events, topic.turnEnd, topic.hubStatus, topic.hubBeat], { qos: 0 })
      })
      client.on('message', onMessage)
      client.on('close', function () { hubOnline = false; window.mirrormesh.closes = (window.mirrormesh.closes || 0) + 1; showState() })
      client.on('error', function (err) {
        // Bad username or password: the credential was removed (`mirrormesh node remove`); pair again.
        if (err && (err.code === 4 || err.code === 5 || /Not authorized|Bad User/i.test(err.message)) && ++refused >= 2) {
          client.end(true)
          localStorage.removeItem(STORE)
          cred = null
          identity()
        }
      })
    }
    window.mirrormesh.sendText = function (text) {
      if (!client || !client.connected || !hubOnline) return Promise.reject(new Error('The hub is unreachable: typed questions need the hub.'))
      return new Promise(function (resolve, reject) {
        client.publish(base + '/nodes/' + cred.nodeId + '/turn/text', JSON.stringify({ text: text }), { qos: 1 }, function (err) { if (err) reject(err); else { update({ transcript: text, reply: '', activity: 'thinking' }); resolve() } })
      })
    }
    function showState() {
      var online = hubOnline && client && client.connected
      update({ state: online ? 'online' : 'offline', banner: online ? null : OFFLINE })
      btn.disabled = !online || !mediaOk
      if (!online) { endTurn(false); stopPlayback() }
    }
    function send(flags, turnId, seq, pcm) {
      var n = pcm ? pcm.length : 0
      var buf = new ArrayBuffer(16 + n * 2)
      var v = new DataView(buf)
      v.setUint8(0, 0x4d); v.setUint8(1, 0x4d); v.setUint8(2, 1); v.setUint8(3, flags)
      v.setUint32(4, turnId >>> 0, true); v.setUint32(8, seq >>> 0, true); v.setUint32(12, Date.now() % 4294967296, true)
      for (var i = 0; i < n; i++) v.setInt16(16 + i * 2, pcm[i], true)
      if (client && client.connected) client.publish(topic.audioIn, new Uint8Array(buf), { qos: 0 })
    }
    function onMessage(t, payload) {
      if (t === topic.hubStatus) { hubOnline = String(payload) === 'online'; window.mirrormesh.hubStatus = String(payload); return showState() }
      if (t === topic.hubBeat) return showEngines(payload)
      if (t === topic.audioOut) return onAudioOut(payload)
      // The hub's early end of turn: it answers already; stop streaming, send no end flag.
      if (t === topic.turnEnd) {
        var te
        try { te = JSON.parse(String(payload)) } catch (e) { return }
        if (turn && turn.id === te.turnId) endTurn(false)
        return
      }
      if (t === topic.events) {
        var ev
        try { ev = JSON.parse(String(payload)) } catch (e) { return }
        onEvent(ev)
      }
    }
    function showEngines(payload) {
      var hb
      try { hb = JSON.parse(String(payload)) } catch (e) { return }
      var el = $('engines')
      el.textContent = ''
      Object.keys(hb.engines || {}).sort().forEach(function (k) {
        var s = document.createElement('span')
        s.className = hb.engines[k] === 'ok' ? 'ok' : 'down'
        s.textContent = k + (hb.engines[k] === 'ok' ? ' \u2713 ' : ' ' + hb.engines[k] + ' ')
        el.appendChild(s)
      })
    }
    function onEvent(ev) {
      var rec = record(ev.turnId)
      if (ev.type === 'transcript') {
        update({ transcript: ev.text })
        if (rec) rec.transcript = ev.text
        // Hands-free: the hub has ended the utterance; stop streaming it.
        if (turn && turn.id === ev.turnId) endTurn(false)
      }
      if (ev.type === 'reply' || ev.type === 'reply_partial') { update({ reply: ev.text }); if (rec) rec.reply = ev.text }
      if (ev.type === 'stop') stopPlayback()
      if (ev.type === 'turn_error' || ev.type === 'busy') { if (turn && turn.id === ev.turnId) endTurn(false) }
      if ((ev.type === 'turn_error' || (ev.type === 'reply' && !ev.audio)) && !playing()) update({ activity: 'idle' })
    }
    function record(turnId) { for (var i = turns.length - 1; i >= 0; i--) if (turns[i].turnId === turnId) return turns[i]; return null }

    // ── microphone ────────────────────────────────────────────────────────────────────
    var mediaOk = Boolean(window.isSecureContext && navigator.mediaDevices && window.AudioWorkletNode)
    if (!mediaOk) {
      showNote(window.isSecureContext
        ? 'This browser has no Web Audio microphone support.'
        : 'The microphone is off: browsers open it only on https:// or localhost. Open this page at https://' + location.hostname + ':8443/ (the hub\u2019s certificate, `mirrormesh tls init`).')
    }
    // No echo cancellation: barge-in is a press of the button, not the mic hearing the speaker,
    // and the canceller would also eat the start of a request made over the reply.
    var ctx = null
    var micReady = null
    var turn = null
    var nextTurnId = (Math.random() * 0x7fffffff) >>> 0
    function audio() {
      if (!ctx) ctx = new (window.AudioContext || window.webkitAudioContext)()
      if (ctx.state === 'suspended') ctx.resume()
      return ctx
    }
    function openMic() {
      if (micReady) return micReady
      var c = audio()
      micReady = navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false } })
        .then(function (stream) {
          return c.audioWorklet.addModule('capture.js').then(function () {
            var node = new AudioWorkletNode(c, 'mirrormesh-capture')
            node.port.onmessage = function (m) { onMic(m.data.pcm, m.data.rms) }
            c.createMediaStreamSource(stream).connect(node)
          })
        })
        .catch(function (err) { micReady = null; showNote('The microphone could not be opened: ' + err.message); throw err })
      return micReady
    }
    window.mirrormesh.openMic = openMic
    function onMic(pcm, rms) {
      window.mirrormesh.level = rms
      $('level').firstChild.style.width = Math.min(100, Math.round(rms * 400)) + '%'
      if (!turn) return
      if (rms > 0.02) turn.lastLoudAt = Date.now()
      send(turn.seq === 0 ? FLAGS.start : 0, turn.id, turn.seq++, pcm)
      if (window.mirrormesh.keepAudio) window.mirrormesh.keepAudio.push(Array.from(pcm))
      // Bounded even if nobody releases the button: the hub's own limit is 15 s.
      if (Date.now() - turn.startedAt > 15000) endTurn(true)
    }
    function startTurn() {
      if (playing() && reply) {
        // Barge-in: stop talking at once, then tell the hub which reply was interrupted.
        var interrupted = reply.turnId
        stopPlayback()
        send(FLAGS.bargeIn, interrupted, 0, null)
        var r = record(interrupted)
        if (r) r.bargeIn = Date.now()
      }
      if (turn) endTurn(true)
      var id = nextTurnId = (nextTurnId + 1) >>> 0
      turn = { id: id, seq: 0, startedAt: Date.now(), lastLoudAt: 0, handsFree: handsFree.checked }
      turns.push({ turnId: id, startedAt: turn.startedAt, endOfSpeechAt: null, firstSampleAt: null, samples: 0, transcript: '', reply: '', bargeIn: null })
      if (turns.length > 50) turns.shift()
      btn.classList.add('on')
      update({ activity: 'listening', transcript: '', reply: '' })
    }
    /** `sendEnd`: the page ends the utterance (push-to-talk release); otherwise the hub did. */
    function endTurn(sendEnd) {
      if (!turn) return
      var t = turn
      turn = null
      btn.classList.remove('on')
      var r = record(t.id)
      if (r) r.endOfSpeechAt = sendEnd || !t.lastLoudAt ? Date.now() : t.lastLoudAt
      if (sendEnd) send(FLAGS.end, t.id, t.seq++, null)
      if (state.activity === 'listening') update({ activity: 'thinking' })
    }
    function press(ev) {
      if (ev) ev.preventDefault()
      if (btn.disabled) return
      openMic().then(function () {
        if (handsFree.checked && turn) return endTurn(true) // a second tap ends it early
        startTurn()
      }, function () {})
    }
    function release() {
      if (handsFree.checked || !turn) return
      // Wait for the mic open (first press) so the start is never after the end.
      micReady.then(function () { endTurn(true) })
    }
    btn.addEventListener('pointerdown', press)
    btn.addEventListener('pointerup', release)
    btn.addEventListener('pointerleave', release)
    document.addEventListener('keydown', function (e) { if (e.code === 'Space' && !e.repeat && e.target === document.body) press(e) })
    document.addEventListener('keyup', function (e) { if (e.code === 'Space' && e.target === document.body) release() })

    // ── playback ──────────────────────────────────────────────────────────────────────
    var reply = null // { turnId, sources: [], endAt, ended }
    function playing() { return Boolean(reply && (!reply.ended || audio().currentTime < reply.endAt)) }
    function stopPlayback() {
      if (!reply) return
      reply.sources.forEach(function (s) { try { s.stop() } catch (e) { /* not started */ } })
      reply.sources = []
      reply.ended = true
      reply.endAt = 0
      if (state.activity === 'speaking') update({ activity: 'idle' })
    }
    function onAudioOut(payload) {
      var b = payload
      if (b.length < 16 || b[0] !== 0x4d || b[1] !== 0x4d || b[2] !== 1) return
      var v = new DataView(b.buffer, b.byteOffset, b.byteLength)
      var flags = b[3]
      var turnId = v.getUint32(4, true)
      if (flags & FLAGS.cancel) { if (reply && reply.turnId === turnId) stopPlayback(); return }
      if (!reply || reply.turnId !== turnId) {
        if (reply) stopPlayback()
        reply = { turnId: turnId, sources: [], endAt: 0, ended: false }
      }
      if (reply.ended && reply.sources.length === 0 && reply.endAt === 0 && !(flags & FLAGS.start)) return // stopped (barge-in): drop the rest
      var n = (b.length - 16) >> 1
      if (n > 0) schedule(turnId, v, n)
      if (flags & FLAGS.end) {
        reply.ended = true
        var left = Math.max(0, reply.endAt - audio().currentTime)
        var r = reply
        setTimeout(function () { if (reply === r && state.activity === 'speaking') update({ activity: 'idle' }) }, left * 1000 + 50)
      }
    }
    function schedule(turnId, v, n) {
      var c = audio()
      var buf = c.createBuffer(1, n, 16000)
      var data = buf.getChannelData(0)
      for (var i = 0; i < n; i++) data[i] = v.getInt16(16 + i * 2, true) / 32768
      var src = c.createBufferSource()
      src.buffer = buf
      src.connect(c.destination)
      var at = Math.max(reply.endAt, c.currentTime + LEAD_S)
      src.start(at)
      reply.endAt = at + n / 16000
      reply.sources.push(src)
      src.onended = function () { if (reply) reply.sources = reply.sources.filter(function (s) { return s !== src }) }
      var r = record(turnId)
      if (r) {
        r.samples += n
        if (r.firstSampleAt === null) {
          r.firstSampleAt = Date.now() + (at - c.currentTime) * 1000
          update({ activity: 'speaking' })
          if (r.endOfSpeechAt) {
            var ms = Math.max(0, Math.round(r.firstSampleAt - r.endOfSpeechAt))
            update({ hubLatencyMs: ms })
            if (client && client.connected) client.publish(topic.events, JSON.stringify({ v: 1, ts: Date.now(), type: 'ttfa', turnId: turnId, ms: ms, kind: 'browser' }), { qos: 1 })
          }
        }
      }
    }
    identity()
  }
})()
