// The runbooks' mosquitto_pub/mosquitto_sub check as one command: subscribe to the
// node's probe topic, publish probes, time the round trips.
import { randomUUID } from 'node:crypto'
import mqtt from 'mqtt'
import { noDelay, quantile, redactUrl, topicFor } from '@mirrormesh/broker'

interface CheckOptions { url: string; username?: string; password?: string; node?: string; base: string; count: string; timeoutMs: string; json?: boolean }

export async function checkCommand(opts: CheckOptions): Promise<number> {
  const username = opts.username ?? process.env.MQTT_USERNAME ?? process.env.NODE_ID
  const password = opts.password ?? process.env.MQTT_PASSWORD
  const nodeId = opts.node ?? username
  const count = Math.max(1, Math.min(100, Number(opts.count) || 3))
  const timeoutMs = Math.max(100, Number(opts.timeoutMs) || 5000)
  const fail = (why: string) => {
    if (opts.json) process.stdout.write(JSON.stringify({ ok: false, error: why }) + '\n')
    else process.stderr.write(`mirrormesh check: FAILED: ${why}\n`)
    return 1
  }
  if (!username || !password || !nodeId) return fail('credentials needed: --username/--password (or MQTT_USERNAME/MQTT_PASSWORD)')
  let topic: string
  try {
    topic = topicFor(opts.base, 'nodeProbe', { node: nodeId })
  } catch (err) {
    return fail((err as Error).message)
  }
  // A probe client id of its own so the check never takes over the node's live session.
  const client = mqtt.connect(opts.url, {
    clientId: `node-${nodeId}/check-${randomUUID().slice(0, 8)}`, username, password,
    protocolVersion: 4, reconnectPeriod: 0, connectTimeout: timeoutMs,
  })
  try {
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => { noDelay(client); resolve() })
      client.once('error', (err) => reject(err))
      client.once('close', () => reject(new Error('connection closed')))
    })
  } catch (err) {
    client.end(true)
    const msg = (err as Error).message
    return fail(`cannot connect to ${redactUrl(opts.url)}: ${/authori|password|identifier/i.test(msg) ? `refused (${msg}): wrong username or password?` : msg}`)
  }
  const rtts: number[] = []
  try {
    const granted = await client.subscribeAsync(topic, { qos: 1 })
    if (granted[0]?.qos === 128) throw new Error(`subscription to ${topic} refused by the broker ACL`)
    for (let i = 0; i < count; i++) {
      const token = randomUUID()
      const started = performance.now()
      const got = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => { client.off('message', onMsg); reject(new Error(`probe ${i + 1} not received within ${timeoutMs} ms (publish refused by the ACL?)`)) }, timeoutMs)
        const onMsg = (t: string, payload: Buffer) => {
          if (t === topic && payload.toString() === token) { clearTimeout(timer); client.off('message', onMsg); resolve() }
        }
        client.on('message', onMsg)
      })
      await client.publishAsync(topic, token, { qos: 1 })
      await got
      rtts.push(performance.now() - started)
    }
  } catch (err) {
    client.end(true)
    return fail((err as Error).message)
  }
  await client.endAsync()
  const result = { ok: true, url: redactUrl(opts.url), topic, probes: rtts.length, rttMs: { p50: round(quantile(rtts, 0.5)), max: round(quantile(rtts, 1)) } }
  if (opts.json) process.stdout.write(JSON.stringify(result) + '\n')
  else process.stdout.write(`OK: ${rtts.length} probe(s) through ${result.url} on ${topic}: round trip p50 ${result.rttMs.p50} ms, max ${result.rttMs.max} ms\n`)
  return 0
}

const round = (n: number) => Math.round(n * 100) / 100
