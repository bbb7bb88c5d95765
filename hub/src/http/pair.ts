// Browser nodes: a page that talks to the hub gets its own node identity (`browser-<random>`,
// role node, so the node ACL: its own topics only; never the hub's or an observer's rights).
//   POST /api/pair        { code? } → { nodeId, password }
//     loopback listener:  free (whoever can reach 127.0.0.1 is on the box already)
//     LAN listener:       Authorization: Bearer <admin token>, or a one-time pairing code from
//                         `mirrormesh pair`; failures count against the address (FailureLimiter)
//   POST /api/pair/code   → { code, expiresAt }: a new one-time code (admin: loopback or token)
// Codes live in memory only, hashed, 10 minutes, at most 16 at once; a code works once.
import { createHash, randomBytes, randomInt } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { ApiError, Role } from '@mirrormesh/broker'
import { secretEquals, type LanAuthOptions } from './auth.js'

export const PAIR_CODE_TTL_MS = 10 * 60_000
const MAX_CODES = 16
// No 0/O, 1/I/L: a code is read off one screen and typed on another.
const ALPHABET = 'ABCDEFGHJKMNPQRSTUVWXYZ23456789'

export interface PairResponse { nodeId: string; password: string }
export interface PairCodeResponse { code: string; expiresAt: number }

/** What the pairing routes need from the hub: a way to add a node credential. */
export interface PairApi {
  addCredential(id: string, role: Role): Promise<string>
}

const hash = (code: string): string => createHash('sha256').update(normalize(code)).digest('hex')
/** Case and dashes do not matter when typing a code. */
const normalize = (code: string): string => code.toUpperCase().replace(/[^A-Z0-9]/g, '')

export class PairCodes {
  private readonly codes = new Map<string, number>()
  constructor(private readonly now = () => Date.now()) {}

  issue(ttlMs = PAIR_CODE_TTL_MS): PairCodeResponse {
    this.prune()
    while (this.codes.size >= MAX_CODES) this.codes.delete(this.codes.keys().next().value!)
    let raw = ''
    for (let i = 0; i < 8; i++) raw += ALPHABET[randomInt(ALPHABET.length)]
    const code = `${raw.slice(0, 4)}-${raw.slice(4)}`
    const expiresAt = this.now() + ttlMs
    this.codes.set(hash(code), expiresAt)
    return { code, expiresAt }
  }

  /** True once for a valid, unexpired code; the code is used up. */
  consume(code: string): boolean {
    this.prune()
    const h = hash(code)
    if (!this.codes.has(h)) return false
    this.codes.delete(h)
    return true
  }

  private prune(): void {
    const now = this.now()
    for (const [h, exp] of this.codes) if (exp <= now) this.codes.delete(h)
  }
}

export function newBrowserNodeId(): string {
  return `browser-${randomBytes(4).toString('hex')}`
}

/** `lan` unset: the loopback listener (free pairing). */
export function pairRoutes(api: PairApi | undefined, codes: PairCodes, lan: LanAuthOptions | undefined) {
  return async (app: FastifyInstance): Promise<void> => {
    if (!api) return
    app.post('/api/pair/code', async () => codes.issue() satisfies PairCodeResponse)
    app.post<{ Body: { code?: unknown } | undefined }>('/api/pair', async (req, reply) => {
      if (lan && !(await allowed(req, reply, codes, lan))) return reply
      const nodeId = newBrowserNodeId()
      const password = await api.addCredential(nodeId, 'node')
      req.log.info({ nodeId }, 'browser node paired')
      return reply.code(201).send({ nodeId, password } satisfies PairResponse)
    })
  }
}

/** On a LAN listener: the admin token, or a one-time code; every failure is counted and limited. */
async function allowed(req: FastifyRequest<{ Body: { code?: unknown } | undefined }>, reply: FastifyReply, codes: PairCodes, lan: LanAuthOptions): Promise<boolean> {
  const token = /^Bearer (\S{1,512})$/i.exec(req.headers.authorization ?? '')?.[1]
  if (token !== undefined && secretEquals(token, lan.adminToken)) return true
  const wait = lan.limiter.retryAfterS(req.ip)
  if (wait > 0) {
    lan.failures.inc({ kind: 'rate_limited' })
    await reply.code(429).header('retry-after', String(wait)).send({ error: 'too_many_attempts', message: `too many failed pairing attempts from this address; try again in ${wait} s` } satisfies ApiError)
    return false
  }
  const code = req.body?.code
  if (typeof code === 'string' && code.length <= 32 && codes.consume(code)) return true
  lan.limiter.fail(req.ip)
  lan.failures.inc({ kind: 'pair' })
  lan.log?.warn({ remote: req.ip, kind: 'pair' }, 'pairing refused: no valid pairing code or admin token')
  await reply.code(401).send({ error: 'unauthorized', message: 'a pairing code is needed: run `mirrormesh pair` on the hub and type the code it shows (codes work once, for 10 minutes)' } satisfies ApiError)
  return false
}
