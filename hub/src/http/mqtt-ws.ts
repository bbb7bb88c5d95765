// MQTT over WebSocket at /mqtt on the hub's own HTTP(S) listeners, so the browser page reaches
// the broker on the same origin and certificate (wss:// on the LAN, ws:// on loopback). Each
// WebSocket becomes a stream handed to the embedded broker, exactly as its own WS listener does
// (broker/src/server.ts): the client logs in with its MQTT credential and gets that role's ACL.
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { WebSocketServer, createWebSocketStream } from 'ws'
import { MQTT_WS_PATH } from './page.js'

export type MqttHandle = (stream: Duplex, req: IncomingMessage) => void

export function attachMqttWs(app: FastifyInstance, handle: () => MqttHandle | undefined): void {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 256 * 1024 })
  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const h = handle()
    if ((req.url ?? '').split('?')[0] !== MQTT_WS_PATH || !h) {
      socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\n\r\n')
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const stream = createWebSocketStream(ws)
      stream.on('error', () => ws.terminate())
      h(stream, req)
    })
  })
  // Open sockets would keep close() waiting.
  app.addHook('preClose', async () => {
    for (const ws of wss.clients) ws.terminate()
    wss.close()
  })
}
