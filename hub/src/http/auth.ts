// Who may use the HTTP API from the LAN. A listener is either "local" (bound to loopback: the box's
// own tools and Prometheus, no auth, as before) or "lan" (the HTTPS listener, or a plain one bound
// beyond loopback). The rule keys on that role, not on the peer address, so a test can bind a LAN
// listener to 127.0.0.1 and still get the LAN rule. On a LAN listener:
//   /healthz /readyz /metrics          open (probes, a remote Prometheus)
//   /api/bundle/...                    a node's own MQTT credential (HTTP Basic, role node), or the admin token
//   POST /api/turns                    the same; http/turns.ts then lets a node start turns on itself only
//   the browser page, POST /api/pair   open (the page is static; pairing checks a one-time code, http/pair.ts)
//   everything else                    Authorization: Bearer <admin token>
// Failed attempts are counted (mirrormesh_http_auth_failures_total) and limited per address,
// which also caps the scrypt work a stranger can make the hub do.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { open, readFile } from 'node:fs/promises'
import { isIP } from 'node:net'
import { join } from 'node:path'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Counter, type Registry } from 'prom-client'
import { isValidId, type ApiError, type Logger, type Principal } from '@mirrormesh/broker'
import { isPagePath } from './page.js'

export type ListenerRole = 'local' | 'lan'

const OPEN_PATHS = new Set(['/healthz', '/readyz', '/metrics'])
const BUNDLE_PREFIX = '/api/bundle/'
const TURNS_PATH = '/api/turns'

/** The node whose Basic credential let this request in (undefined: the admin token, or a local listener). */
const nodeCredentials = new WeakMap<FastifyRequest, string>()
export const nodeCredentialOf = (req: FastifyRequest): string | undefined => nodeCredentials.get(req)

/** Loopback addresses: a plain listener bound there is "local". */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase()
  if (h === 'localhost' || h === '::1') return true
  return isIP(h) === 4 && h.startsWith('127.')
}

/** `<stateDir>/admin-token`: read, or created (32 random bytes, base64url, 0600) when missing. */
export async function ensureAdminToken(stateDir: string): Promise<string> {
  const path = join(stateDir, 'admin-token')
  try {
    const token = (await readFile(path, 'utf8')).trim()
    if (token) return token
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const token = randomBytes(32).toString('base64url')
  // 'w' after the read above: an empty file is replaced; mode applies only when it is created.
  const fh = await open(path, 'w', 0o600)
  try {
    await fh.chmod(0o600)
    await fh.writeFile(`${token}\n`)
    await fh.sync()
  } finally {
    await fh.close()
  }
  return token
}

/** Equal-time comparison of secrets of any length (hashing first evens out the lengths). */
export function secretEquals(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest()
  const hb = createHash('sha256').update(b).digest()
  return timingSafeEqual(ha, hb)
}

/** Failed attempts per address in a sliding minute; bounded in addresses remembered. */
export class FailureLimiter {
  private readonly fails = new Map<string, number[]>()
  constructor(private readonly perMinute: number, private readonly maxAddresses = 10_000, private readonly now = () => Date.now()) {}

  private recent(addr: string): number[] {
    const cutoff = this.now() - 60_000
    const list = (this.fails.get(addr) ?? []).filter((t) => t > cutoff)
    if (list.length) this.fails.set(addr, list)
    else this.fails.delete(addr)
    return list
  }

  /** Seconds until `addr` may try again; 0 when it may now. */
  retryAfterS(addr: string): number {
    const list = this.recent(addr)
    if (list.length < this.perMinute) return 0
    return Math.max(1, Math.ceil((list[list.length - this.perMinute]! + 60_000 - this.now()) / 1000))
  }

  fail(addr: string): void {
    const list = this.recent(addr)
    list.push(this.now())
    this.fails.set(addr, list.slice(-this.perMinute))
    // Oldest first (Map keeps insertion order): a flood of addresses cannot grow this without bound.
    while (this.fails.size > this.maxAddresses) this.fails.delete(this.fails.keys().next().value!)
  }
}

export interface LanAuthOptions {
  adminToken: string
  /** The broker's CredentialStore.verify: the node's MQTT username and password. */
  verify(username: string, password: string): Promise<Principal | undefined>
  limiter: FailureLimiter
  failures: Counter<'kind'>
  /** One warn line per refusal (address, route kind, the node id tried): never the secret. Refusals past the limit are only counted. */
  log?: Logger
}

/** Every kind the counter uses: each starts at 0, so rate()/increase() see the first refusal. */
export const AUTH_FAILURE_KINDS = ['token', 'node', 'pair', 'rate_limited'] as const

export function authFailuresCounter(registry: Registry): Counter<'kind'> {
  const name = 'mirrormesh_http_auth_failures_total'
  const have = registry.getSingleMetric(name) as Counter<'kind'> | undefined
  if (have) return have
  const counter = new Counter({ name, help: 'Refused HTTP requests on the LAN listeners, by kind: token (admin routes), node (bundle routes), pair (browser pairing), rate_limited', labelNames: ['kind'], registers: [registry] })
  for (const kind of AUTH_FAILURE_KINDS) counter.inc({ kind }, 0)
  return counter
}

function basicCredentials(header: string): { username: string; password: string } | undefined {
  const m = /^Basic ([A-Za-z0-9+/=]{1,1024})$/i.exec(header)
  if (!m) return undefined
  const text = Buffer.from(m[1]!, 'base64').toString('utf8')
  const colon = text.indexOf(':')
  if (colon <= 0) return undefined
  return { username: text.slice(0, colon), password: text.slice(colon + 1) }
}

function bearer(header: string): string | undefined {
  return /^Bearer (\S{1,512})$/i.exec(header)?.[1]
}

/** The onRequest hook of a LAN listener. Nothing secret goes into a reply or a log. */
export function lanAuthHook(opts: LanAuthOptions) {
  return async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const path = req.url.split('?')[0] ?? ''
    if (OPEN_PATHS.has(path)) return
    // The browser page and its pairing route (which checks a pairing code or the token itself).
    if (isPagePath(path)) return
    const bundleRoute = path.startsWith(BUNDLE_PREFIX) || (path === TURNS_PATH && req.method === 'POST')
    const header = req.headers.authorization ?? ''
    const token = bearer(header)
    // A valid admin token is checked first and never locked out: a stranger failing from the same
    // (NAT) address cannot lock the operator out. Guessing 32 random bytes gains nothing anyway.
    if (token !== undefined && secretEquals(token, opts.adminToken)) return
    const wait = opts.limiter.retryAfterS(req.ip)
    if (wait > 0) {
      opts.failures.inc({ kind: 'rate_limited' })
      await reply.code(429).header('retry-after', String(wait))
        .send({ error: 'too_many_attempts', message: `too many failed logins from this address; try again in ${wait} s` } satisfies ApiError)
      return
    }
    let username: string | undefined
    if (bundleRoute && token === undefined) {
      const cred = basicCredentials(header)
      if (cred && isValidId(cred.username)) username = cred.username
      const who = cred && await opts.verify(cred.username, cred.password).catch(() => undefined)
      if (who?.role === 'node') { nodeCredentials.set(req, who.id); return }
    }
    opts.limiter.fail(req.ip)
    opts.failures.inc({ kind: bundleRoute ? 'node' : 'token' })
    opts.log?.warn({ remote: req.ip, method: req.method, path, kind: bundleRoute ? 'node' : 'token', ...(username ? { username } : {}) }, bundleRoute ? 'bundle request refused: no valid node credential' : 'admin request refused: no valid admin token')
    const message = bundleRoute
      ? 'node credentials required: HTTP Basic with the node\'s MQTT username and password (MQTT_PASSWORD from `mirrormesh node add`)'
      : 'admin token required: Authorization: Bearer <the hub\'s <state dir>/admin-token>, or use the loopback listener on the hub'
    await reply.code(401).header('www-authenticate', bundleRoute ? 'Basic realm="mirrormesh"' : 'Bearer realm="mirrormesh"')
      .send({ error: 'unauthorized', message } satisfies ApiError)
  }
}
