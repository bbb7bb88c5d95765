// mirrormesh mirror screen: state arrives over SSE (/events) from a mirror's agent, or from the
// page's own MQTT node (node.js) when the hub serves it; the clock runs locally.
'use strict'
;(function () {
  var $ = function (id) { return document.getElementById(id) }
  var LABELS = { idle: '', listening: 'Listening…', thinking: 'Thinking…', speaking: 'Speaking' }
  var OFFLINE = 'Offline \u2014 answering from memory'
  var clockOffset = 0 // server clock minus ours
  var last = null

  function pad(n) { return n < 10 ? '0' + n : '' + n }
  function tick() {
    var d = new Date(Date.now() + clockOffset)
    $('clock').textContent = pad(d.getHours()) + ':' + pad(d.getMinutes())
    $('date').textContent = d.toLocaleDateString(undefined, { weekday: 'long', month: 'long', day: 'numeric' })
  }
  setInterval(tick, 1000)
  tick()

  function setText(id, text) {
    var el = $(id)
    if (el.textContent !== text) el.textContent = text
  }

  function render(s) {
    last = s
    if (typeof s.clock === 'number') {
      var off = s.clock - Date.now()
      // Only correct clearly wrong local clocks; small differences are transport delay.
      clockOffset = Math.abs(off) > 2000 ? off : 0
    }
    document.body.classList.toggle('absent', s.presence === false)
    document.body.classList.toggle('present', s.presence !== false)
    $('muted').hidden = s.muted !== true
    var act = LABELS.hasOwnProperty(s.activity) ? s.activity : 'idle'
    $('activity').className = act
    setText('activity-label', LABELS[act])
    setText('transcript', s.transcript || '')
    setText('reply', s.reply || '')
    // The name people call the mirror, then its room (both from the hub); the node id until the hub names it.
    setText('room', [s.name, s.room].filter(Boolean).join(' · ') || s.nodeId || '')
    setText('latency', typeof s.hubLatencyMs === 'number' ? 'hub ' + Math.round(s.hubLatencyMs) + ' ms' : '')
    var banner = s.state && s.state !== 'online' ? (s.banner || OFFLINE) : s.banner
    var b = $('banner')
    if (banner) { setText('banner', banner); b.hidden = false } else { b.hidden = true }
    document.body.dataset.state = s.state || ''
    tick()
  }

  var es = null
  var retryMs = 1000
  function connect() {
    es = new EventSource('events')
    es.onopen = function () { retryMs = 1000; $('conn').className = 'conn'; setText('conn', '') }
    es.onmessage = function (ev) {
      try { render(JSON.parse(ev.data)) } catch (e) { /* ignore a malformed event */ }
    }
    es.onerror = function () {
      $('conn').className = 'conn lost'
      setText('conn', 'reconnecting…')
      // EventSource retries by itself unless the server refused; then retry by hand.
      if (es.readyState === EventSource.CLOSED) {
        es = null
        setTimeout(connect, retryMs)
        retryMs = Math.min(retryMs * 2, 10000)
      }
    }
  }
  // Served by the hub (GET page.json answers), the page is a node itself (node.js); served by a
  // mirror's agent (404), it shows the agent's state over SSE and the agent owns the microphone.
  function load(src) {
    return new Promise(function (resolve, reject) {
      var s = document.createElement('script')
      s.src = src
      s.onload = resolve
      s.onerror = reject
      document.head.appendChild(s)
    })
  }
  // The keyboard: a typed line is a text turn for this mirror; the reply shows (and is spoken)
  // as a spoken turn's is. Served by an agent: POST text (the agent publishes it); served by the
  // hub, node.js replaces sendText with a publish on the page's own MQTT connection.
  function sendText(text) {
    return fetch('text', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: text }) })
      .then(function (r) { return r.ok ? null : r.json().then(function (b) { throw new Error(b.message || 'not sent') }, function () { throw new Error('not sent (' + r.status + ')') }) })
  }
  function typeNote(text) { var n = $('type-note'); n.textContent = text; n.hidden = !text }
  $('type').onsubmit = function (ev) {
    ev.preventDefault()
    var input = $('type-text')
    var text = input.value.trim()
    if (!text) return
    $('type-send').disabled = true
    typeNote('')
    window.mirrormesh.sendText(text)
      .then(function () { input.value = '' }, function (err) { typeNote(err.message) })
      .then(function () { $('type-send').disabled = false })
  }
  window.mirrormesh = { state: function () { return last }, render: render, sendText: sendText }
  fetch('page.json', { cache: 'no-store' })
    .then(function (r) { return r.ok ? r.json() : null })
    .catch(function () { return null })
    .then(function (info) {
      if (!info || info.mode !== 'hub') return connect()
      return load('vendor/mqtt.min.js').then(function () { return load('node.js') }).then(function () { window.mirrormeshNode(info) })
    })
})()
