// aedes hooks: authenticate, authorizePublish, authorizeSubscribe — small functions
// over the credential store and the contract-derived ACL.
import type { Client, AuthenticateError, PublishPacket, Subscription } from 'aedes'
import type { Registry, Counter } from 'prom-client'
import { canPublish, retainAllowed, canSubscribe, clientIdAllowed, type Principal } from './acl.js'
import type { CredentialStore } from './credentials.js'
import { getOrCreateCounter } from './inbound.js'
import { LogLimiter, type Logger } from './log.js'

export interface InternalUser { username: string; password: string; role: Principal['role'] }

/** Refuses a source after `max` failures inside `windowMs`, until the window passes. */
export class FailureLimiter {
  private readonly failures = new Map<string, number[]>()
  constructor(private readonly max = 5, private readonly windowMs = 60_000) {}

  blocked(key: string, now = Date.now()): boolean {
    const recent = (this.failures.get(key) ?? []).filter((t) => now - t < this.windowMs)
    if (recent.length === 0) this.failures.delete(key)
    else this.failures.set(key, recent)
    return recent.length >= this.max
  }

  fail(key: string, now = Date.now()): void {
    if (this.failures.size > 10_000) this.failures.clear()
    const list = this.failures.get(key) ?? []
    list.push(now)
    this.failures.set(key, list)
  }
}

function authError(message: string, returnCode: 4 | 5): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError
}

export interface AuthHooksOptions {
  base: string
  store: CredentialStore
  internalUsers?: InternalUser[]
  registry: Registry
  log: Logger
}

export function createAuthHooks(opts: AuthHooksOptions) {
  const principals = new WeakMap<Client, Principal>()
  const limiter = new FailureLimiter()
  const logLimiter = new LogLimiter(60_000)
  const authFailures: Counter<'reason'> = getOrCreateCounter(opts.registry, 'mirrormesh_auth_failures_total', 'MQTT connections refused, by reason', ['reason'])
  const denied: Counter<'action'> = getOrCreateCounter(opts.registry, 'mirrormesh_acl_denied_total', 'MQTT publishes/subscriptions refused by the ACL', ['action'])

  const refuse = (client: Client, key: string, reason: string, done: (e: AuthenticateError | null, ok: boolean | null) => void, code: 4 | 5 = 4) => {
    authFailures.inc({ reason })
    if (reason !== 'rate_limited') limiter.fail(key)
    if (logLimiter.allow(`${key}|${reason}`)) opts.log.warn({ clientId: client.id, username: key.split('|')[1], reason }, 'mqtt connection refused')
    done(authError(`not authorized: ${reason}`, code), false)
  }

  async function check(client: Client, username: string | undefined, password: Buffer | undefined): Promise<Principal | string> {
    if (!username || !password) return 'missing_credentials'
    const internal = opts.internalUsers?.find((u) => u.username === username)
    if (internal) return internal.password === password.toString() ? { role: internal.role, id: username } : 'bad_password'
    const who = await opts.store.verify(username, password)
    if (!who) return 'bad_password'
    if (!clientIdAllowed(who, client.id)) return 'client_id_not_allowed'
    return who
  }

  return {
    principalOf: (client: Client) => principals.get(client),

    authenticate(client: Client, username: string | undefined, password: Buffer | undefined, done: (e: AuthenticateError | null, ok: boolean | null) => void) {
      const remote = (client.conn as { remoteAddress?: string } | undefined)?.remoteAddress ?? '?'
      const key = `${remote}|${username ?? ''}`
      if (limiter.blocked(key)) return refuse(client, key, 'rate_limited', done)
      check(client, username, password).then((res) => {
        if (typeof res === 'string') return refuse(client, key, res, done, res === 'client_id_not_allowed' ? 5 : 4)
        principals.set(client, res)
        done(null, true)
      }, (err: unknown) => {
        opts.log.error({ err }, 'credential store unreadable')
        refuse(client, key, 'store_error', done, 5)
      })
    },

    authorizePublish(client: Client | null, packet: PublishPacket, done: (e?: Error | null) => void) {
      if (!client) return done(null) // broker-internal publishes
      const who = principals.get(client)
      if (who && canPublish(opts.base, who, packet.topic)) {
        // A node or dashboard may not make a topic retained that the contract says is not:
        // a retained {"ptt":true} (Home Assistant's default) would open every mirror's mic on
        // each reconnect. The message is still delivered, just not kept.
        if (packet.retain && who.role !== 'hub' && !retainAllowed(opts.base, packet.topic)) packet.retain = false
        return done(null)
      }
      denied.inc({ action: 'publish' })
      if (logLimiter.allow(`pub|${client.id}`)) opts.log.warn({ clientId: client.id, topic: packet.topic }, 'publish denied by ACL')
      done(new Error(`publish to ${packet.topic} not allowed`))
    },

    authorizeSubscribe(client: Client, sub: Subscription, done: (e: Error | null, s?: Subscription | null) => void) {
      const who = principals.get(client)
      if (who && canSubscribe(opts.base, who, sub.topic)) return done(null, sub)
      denied.inc({ action: 'subscribe' })
      if (logLimiter.allow(`sub|${client.id}`)) opts.log.warn({ clientId: client.id, topic: sub.topic }, 'subscription denied by ACL')
      // A null subscription makes aedes answer SUBACK 0x80 (failure) instead of dropping the client.
      done(null, null)
    },
  }
}
