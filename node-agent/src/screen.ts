// The mirror screen: the static app from mirror-client/public at '/', and its state as
// Server-Sent Events at GET /events. update() merges into the state and pushes to every
// client, coalesced to at most `maxRate` pushes a second. Nothing here ever waits on a
// browser: a client whose socket backs up is dropped (it reconnects and gets the full state).
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import fastifyStatic from '@fastify/static'
import type { FastifyInstance } from 'fastify'
import type { ServerResponse } from 'node:http'

export type ScreenMode = 'online' | 'offline' | 'recovering'
export type ScreenActivity = 'idle' | 'listening' | 'thinking' | 'speaking'

export interface ScreenState {
  /** Server clock (Date.now()) at push time; the page uses it to correct its own clock. */
  clock?: number
  nodeId: string
  room: string | null
  /** What people call this mirror (from the hub's node config). */
  name: string | null
  state: ScreenMode
  activity: ScreenActivity
  presence: boolean
  /** The microphone is muted: the mirror shows it. */
  muted?: boolean
  transcript: string
  reply: string
  hubLatencyMs: number | null
  banner: string | null
}

export interface ScreenOptions {
  /** Directory with index.html, app.js, style.css (see defaultPublicDir()). */
  publicDir: string
  initial?: Partial<ScreenState>
  /** Pushes per second at most (default 20). */
  maxRate?: number
  /** Bytes a client may have unsent before it is dropped (default 64 KiB). */
  maxBufferedBytes?: number
  /** Keep-alive comment period (default 15 s). */
  keepAliveMs?: number
}

export interface Screen {
  readonly state: Readonly<ScreenState>
  readonly clients: number
  /** Merge and push (coalesced). Never blocks. */
  update(partial: Partial<ScreenState>): void
  /** Counters for metrics/tests. */
  readonly stats: { pushes: number; dropped: number; connects: number }
  /** The screen's keyboard (POST /text): set by the screen feature; unset answers 503. */
  onText: ((text: string) => Promise<void>) | undefined
  close(): void
}

/** Why a typed line was not sent: the HTTP status and a message the page shows. */
export class TypedTextError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) { super(message) }
}

/** Longest typed line (the hub's text-turn limit). */
export const TYPED_MAX_CHARS = 500

export const OFFLINE_BANNER = 'Offline — answering from memory'

/** mirror-client/public, resolved through the workspace package or next to this source tree. */
export function defaultPublicDir(): string {
  try {
    const pkg = createRequire(import.meta.url).resolve('@mirrormesh/mirror-client/package.json')
    const dir = path.join(path.dirname(pkg), 'public')
    if (existsSync(dir)) return dir
  } catch {
    // not installed as a package: fall through
  }
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../mirror-client/public')
}

export function registerScreen(app: FastifyInstance, opts: ScreenOptions): Screen {
  const state: ScreenState = {
    nodeId: '',
    room: null,
    name: null,
    state: 'online',
    activity: 'idle',
    presence: true,
    transcript: '',
    reply: '',
    hubLatencyMs: null,
    banner: null,
    ...opts.initial,
  }
  const clients = new Set<ServerResponse>()
  const minGapMs = 1000 / (opts.maxRate ?? 20)
  const maxBuffered = opts.maxBufferedBytes ?? 64 * 1024
  const stats = { pushes: 0, dropped: 0, connects: 0 }
  let lastPush = 0
  let timer: NodeJS.Timeout | undefined
  let closed = false

  const message = (): string => `data: ${JSON.stringify({ ...state, clock: Date.now() })}\n\n`
  const drop = (res: ServerResponse): void => {
    clients.delete(res)
    stats.dropped++
    res.destroy()
  }
  const send = (res: ServerResponse, text: string): void => {
    if (res.destroyed || res.writableEnded) {
      clients.delete(res)
      return
    }
    // A client that cannot keep up is cut loose rather than buffered or awaited.
    if (res.writableLength > maxBuffered) return drop(res)
    res.write(text)
  }
  const flush = (): void => {
    timer = undefined
    lastPush = Date.now()
    stats.pushes++
    const text = message()
    for (const res of clients) send(res, text)
  }
  const keepAlive = setInterval(() => {
    for (const res of clients) send(res, ': ka\n\n')
  }, opts.keepAliveMs ?? 15_000)
  keepAlive.unref()

  void app.register(fastifyStatic, { root: opts.publicDir, prefix: '/', index: ['index.html'], cacheControl: false })
  app.get('/events', (req, reply) => {
    reply.hijack()
    const res = reply.raw
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    })
    req.raw.socket.setNoDelay(true)
    // Reconnect after 1 s if the stream drops (EventSource's own retry).
    res.write('retry: 1000\n\n')
    res.write(message())
    clients.add(res)
    stats.connects++
    const gone = (): void => void clients.delete(res)
    res.on('close', gone)
    res.on('error', gone)
  })
  // The keyboard: {"text": "..."} becomes a text turn for this node (features/screen.ts).
  app.post<{ Body: { text?: unknown } | undefined }>('/text', async (req, reply) => {
    const text = typeof req.body?.text === 'string' ? req.body.text.trim() : ''
    if (!text || text.length > TYPED_MAX_CHARS) return reply.code(400).send({ error: 'bad_request', message: `body must be {"text": "..."} with 1 to ${TYPED_MAX_CHARS} characters` })
    if (!screen.onText) return reply.code(503).send({ error: 'unavailable', message: 'the mirror is starting or stopping' })
    try {
      await screen.onText(text)
      return { sent: true }
    } catch (err) {
      if (err instanceof TypedTextError) return reply.code(err.status).send({ error: err.code, message: err.message })
      return reply.code(503).send({ error: 'not_sent', message: `not sent to the hub: ${(err as Error).message}`.slice(0, 200) })
    }
  })
  // preClose: open SSE streams would otherwise keep the server's close() waiting forever.
  app.addHook('preClose', async () => screen.close())

  const screen: Screen = {
    get state() {
      return state
    },
    get clients() {
      return clients.size
    },
    stats,
    onText: undefined,
    update(partial) {
      if (closed) return
      Object.assign(state, partial)
      if ('state' in partial && !('banner' in partial)) state.banner = state.state === 'online' ? null : OFFLINE_BANNER
      if (timer) return
      const wait = lastPush + minGapMs - Date.now()
      if (wait <= 0) flush()
      else timer = setTimeout(flush, wait)
    },
    close() {
      closed = true
      if (timer) clearTimeout(timer)
      clearInterval(keepAlive)
      for (const res of clients) res.end()
      clients.clear()
    },
  }
  return screen
}
