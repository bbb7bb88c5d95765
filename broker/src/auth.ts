// aedes hooks: authenticate, authorizePublish, authorizeSubscribe — small functions
// over the credential store and the contract-derived ACL.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { Client, AuthenticateError, ConnectPacket, PublishPacket, Subscription } from 'aedes'
import type { Registry, Counter } from 'prom-client'
import { canPublish, retainAllowed, canSubscribe, clientIdAllowed, type Principal } from './acl.js'
import { parseTopic, topics, type TopicDef } from './contract.js'
import { defaultScryptCost, hashPassword, verifyPassword, type CredentialStore } from './credentials.js'
import { getOrCreateCounter } from './inbound.js'
import { FailureLimiter, RefusalLog } from './limiter.js'
import { LogLimiter, type Logger } from './log.js'
import { forLog } from './sanitize.js'

export interface InternalUser {
  username: string
  password: string
  role: Principal['role']
  /** The one client id this user connects with (default: the username); no other credential may use it. */
  clientId?: string
}

export { FailureLimiter } from './limiter.js'

const safeEqual = (a: string, b: Buffer) => {
  const x = createHash('sha256').update(a).digest()
  const y = createHash('sha256').update(b).digest()
  return timingSafeEqual(x, y)
}

function authError(message: string, returnCode: 2 | 4 | 5): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError
}

export interface AuthHooksOptions {
  base: string
  store: CredentialStore
  internalUsers?: InternalUser[]
  registry: Registry
  log: Logger
  /** scrypt cost of the dummy hash unknown usernames are checked against (default: the store's default). */
  dummyCost?: number
  /** Interval of the refusal summary log line. */
  refusalLogMs?: number
}

/** Where a connection comes from: TCP/TLS socket, or the HTTP request of a WebSocket. */
export function remoteOf(client: Client): string {
  const conn = client.conn as { remoteAddress?: string } | undefined
  const req = (client as { req?: { socket?: { remoteAddress?: string } } }).req
  return conn?.remoteAddress ?? req?.socket?.remoteAddress ?? '?'
}

type Check = Principal | 'missing_credentials' | 'bad_password' | 'unknown_user' | 'client_id_not_allowed'

export function createAuthHooks(opts: AuthHooksOptions) {
  const principals = new WeakMap<Client, Principal>()
  // Per (source, username): five guesses a minute. Per source: thirty, whatever the usernames,
  // so a flood of made-up names from one address stops early. A username is not locked for every
  // source, so nobody can lock a node out from another machine.
  const pairs = new FailureLimiter({ max: 5, windowMs: 60_000, maxKeys: 10_000 })
  const sources = new FailureLimiter({ max: 30, windowMs: 60_000, maxKeys: 10_000 })
  const refusals = new RefusalLog((fields, msg) => opts.log.warn(fields, msg), opts.refusalLogMs)
  const logLimiter = new LogLimiter(60_000)
  /** Connections that sent an empty client id (aedes assigned one). */
  const assignedIds = new WeakSet<Client>()
  const reserved = new Set((opts.internalUsers ?? []).map((u) => u.clientId ?? u.username))
  let dummy: Promise<string> | undefined
  const dummyHash = () => (dummy ??= hashPassword(randomBytes(16).toString('hex'), opts.dummyCost ?? defaultScryptCost))
  void dummyHash() // made now, so the first unknown username is not answered slower than the rest
  const authFailures: Counter<'reason'> = getOrCreateCounter(opts.registry, 'mirrormesh_auth_failures_total', 'MQTT connections refused, by reason', ['reason'])
  const denied: Counter<'action'> = getOrCreateCounter(opts.registry, 'mirrormesh_acl_denied_total', 'MQTT publishes/subscriptions refused by the ACL', ['action'])
  const oversized: Counter<'where'> = getOrCreateCounter(opts.registry, 'mirrormesh_broker_oversized_total', 'MQTT packets/publishes refused for exceeding a size limit', ['where'])

  const refuse = (client: Client, username: string | undefined, reason: string, done: (e: AuthenticateError | null, ok: boolean | null) => void, code: 2 | 4 | 5 = 4) => {
    authFailures.inc({ reason })
    refusals.record(reason, { username: username === undefined ? undefined : forLog(username), source: remoteOf(client), clientId: forLog(client.id ?? '') })
    // An unknown user gets the same answer as a wrong password: no username oracle.
    done(authError(`not authorized${reason === 'unknown_user' ? ': bad_password' : `: ${reason}`}`, code), false)
  }

  async function check(client: Client, username: string | undefined, password: Buffer | undefined): Promise<Check> {
    if (!username || !password) return 'missing_credentials'
    const internal = opts.internalUsers?.find((u) => u.username === username)
    if (internal) {
      if (!safeEqual(internal.password, password)) return 'bad_password'
      return client.id === (internal.clientId ?? internal.username) ? { role: internal.role, id: username } : 'client_id_not_allowed'
    }
    await opts.store.refresh()
    if (!opts.store.has(username)) {
      // Same scrypt work as a known user: refusing an unknown name in 1 ms (a known one: 60–90 ms) told which names exist.
      await verifyPassword(await dummyHash(), password)
      return 'unknown_user'
    }
    const who = await opts.store.verify(username, password)
    if (!who) return 'bad_password'
    // A client id aedes assigned (empty one sent, clean session) is random: it cannot take over anyone.
    const idOk = assignedIds.has(client) ? who.role !== 'node' : !reserved.has(client.id) && clientIdAllowed(who, client.id)
    return idOk ? who : 'client_id_not_allowed'
  }

  return {
    principalOf: (client: Client) => principals.get(client),

    /** Flushes the refusal summary. */
    stop: () => refusals.stop(),

    /** Counts a packet cut off by the packet-size guard. */
    countOversizedPacket: (client: Client | undefined, size: number) => {
      oversized.inc({ where: 'packet' })
      if (logLimiter.allow('packet-size')) opts.log.warn({ clientId: client?.id ? forLog(client.id) : undefined, announced: size }, 'mqtt packet over the size limit; connection closed')
    },

    preConnect(client: Client, packet: ConnectPacket, done: (e: Error | null, ok: boolean) => void) {
      if (!packet.clientId) assignedIds.add(client)
      done(null, true)
    },

    authenticate(client: Client, username: string | undefined, password: Buffer | undefined, done: (e: AuthenticateError | null, ok: boolean | null) => void) {
      const remote = remoteOf(client)
      const pairKey = `${remote}|${username ?? ''}`
      // MQTT-3.1.3-8: an empty client id needs a clean session.
      if (assignedIds.has(client) && !client.clean) return refuse(client, username, 'empty_client_id', done, 2)
      // The in-process hub credential is a 24-byte random secret nobody can guess: it skips the
      // limiter, so failed logins from other local programs cannot lock the hub out of its broker.
      const internal = opts.internalUsers?.some((u) => u.username === username) ?? false
      // A full table of locked keys refuses new keys rather than forgetting old locks.
      if (!internal && (pairs.blocked(pairKey) || sources.blocked(remote) || !pairs.hasRoom(pairKey) || !sources.hasRoom(remote))) {
        return refuse(client, username, 'rate_limited', done)
      }
      check(client, username, password).then((res) => {
        if (typeof res === 'string') {
          // A wrong client id comes after a right password: not a guess, so not counted toward a lockout.
          if (res !== 'client_id_not_allowed' && !internal) {
            pairs.fail(pairKey)
            sources.fail(remote)
          }
          return refuse(client, username, res, done, res === 'client_id_not_allowed' ? 5 : 4)
        }
        principals.set(client, res)
        done(null, true)
      }, (err: unknown) => {
        opts.log.error({ err }, 'credential store unreadable')
        refuse(client, username, 'store_error', done, 5)
      })
    },

    authorizePublish(client: Client | null, packet: PublishPacket, done: (e?: Error | null) => void) {
      if (!client) return done(null) // broker-internal publishes
      const who = principals.get(client)
      if (who && canPublish(opts.base, who, packet.topic)) {
        // The contract's size limit, before the message is forwarded or stored: a 128 MB heartbeat
        // and a 16 MB retained status went to every subscriber (and onto disk) when only the hub checked.
        const parsed = parseTopic(opts.base, packet.topic)
        const def: TopicDef | undefined = parsed && topics[parsed.name]
        const size = Buffer.isBuffer(packet.payload) ? packet.payload.length : Buffer.byteLength(String(packet.payload))
        if (def && size > def.maxBytes) {
          oversized.inc({ where: 'publish' })
          if (logLimiter.allow(`size|${client.id}`)) opts.log.warn({ clientId: forLog(client.id), topic: forLog(packet.topic, 256), bytes: size, maxBytes: def.maxBytes }, 'publish over the contract size limit refused')
          return done(new Error(`publish to ${packet.topic}: ${size} bytes > ${def.maxBytes}`))
        }
        // A node or dashboard may not make a topic retained that the contract says is not:
        // a retained {"ptt":true} (Home Assistant's default) would open every mirror's mic on
        // each reconnect. The message is still delivered, just not kept.
        if (packet.retain && who.role !== 'hub' && !retainAllowed(opts.base, packet.topic)) packet.retain = false
        return done(null)
      }
      denied.inc({ action: 'publish' })
      if (logLimiter.allow(`pub|${client.id}`)) opts.log.warn({ clientId: forLog(client.id), topic: forLog(packet.topic, 256) }, 'publish denied by ACL')
      done(new Error(`publish to ${packet.topic} not allowed`))
    },

    authorizeSubscribe(client: Client, sub: Subscription, done: (e: Error | null, s?: Subscription | null) => void) {
      const who = principals.get(client)
      if (who && canSubscribe(opts.base, who, sub.topic)) return done(null, sub)
      denied.inc({ action: 'subscribe' })
      if (logLimiter.allow(`sub|${client.id}`)) opts.log.warn({ clientId: forLog(client.id), topic: forLog(sub.topic, 256) }, 'subscription denied by ACL')
      // A null subscription makes aedes answer SUBACK 0x80 (failure) instead of dropping the client.
      done(null, null)
    },
  }
}
