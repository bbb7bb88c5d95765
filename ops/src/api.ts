// The one HTTP client every ops command uses to reach the hub: base URL from --hub, HUB_URL or
// the default, an admin token when there is one, and errors an operator can act on.
import { redactUrl, type ApiError } from '@mirrormesh/broker'
import { readAdminTokenSync } from './admin-token.js'

export const defaultHubUrl = 'http://127.0.0.1:8080'

/** What commands pass in from their --hub / --token options. */
export interface HubTarget { hub?: string; token?: string }

/** The admin token in the hub's state dir (`<stateDir>/admin-token`) when neither --token nor MIRRORMESH_ADMIN_TOKEN gives one. */
export function defaultToken(env: Record<string, string | undefined> = process.env): string | undefined {
  return readAdminTokenSync(env.MIRRORMESH_STATE_DIR || undefined)
}

export type HubErrorKind = 'unreachable' | 'timeout' | 'unauthorized' | 'http'

export class HubError extends Error {
  constructor(readonly kind: HubErrorKind, message: string, readonly status?: number, readonly code?: string) {
    super(message)
    this.name = 'HubError'
  }
}

export interface RequestOptions { method?: string; body?: unknown; timeoutMs?: number }

export class HubClient {
  readonly base: string
  private readonly token: string | undefined

  constructor(target: HubTarget = {}, env: Record<string, string | undefined> = process.env) {
    this.base = target.hub ?? env.HUB_URL ?? defaultHubUrl
    this.token = target.token ?? env.MIRRORMESH_ADMIN_TOKEN ?? defaultToken(env)
  }

  /** The base URL as it may be printed (a password in it is hidden). */
  get where(): string { return redactUrl(this.base) }

  /** JSON of a 2xx answer; any other status throws a HubError. */
  async json<T>(path: string, opts: RequestOptions = {}): Promise<T> {
    const { status, body } = await this.request(path, opts)
    if (status >= 200 && status < 300) return body as T
    throw this.statusError(status, body)
  }

  /** Status and JSON body, whatever the status (probes: /readyz answers 503 with a body). */
  async request(path: string, { method = 'GET', body, timeoutMs = 5000 }: RequestOptions = {}): Promise<{ status: number; body: unknown }> {
    let url: URL
    try {
      url = new URL(path, this.base)
    } catch {
      throw new HubError('unreachable', `hub URL ${this.where} is not a URL. Fix: --hub http://HOST:PORT (or HUB_URL)`)
    }
    const headers: Record<string, string> = {}
    if (this.token) headers.authorization = `Bearer ${this.token}`
    if (body !== undefined) headers['content-type'] = 'application/json'
    let res: Response
    try {
      res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs) })
    } catch (err) {
      throw this.networkError(err as Error, timeoutMs)
    }
    const text = await res.text()
    let parsed: unknown = text
    try { parsed = text ? JSON.parse(text) : undefined } catch { /* not JSON: keep the text */ }
    return { status: res.status, body: parsed }
  }

  private networkError(err: Error, timeoutMs: number): HubError {
    if (err.name === 'TimeoutError' || err.name === 'AbortError') return new HubError('timeout', `hub at ${this.where} did not answer within ${timeoutMs} ms`)
    const code = (err.cause as { code?: string } | undefined)?.code
    const why = code === 'ECONNREFUSED' ? 'connection refused' : code ?? err.message
    return new HubError('unreachable', `hub not reachable at ${this.where} (${why}). Is it running? Set --hub or HUB_URL.`)
  }

  private statusError(status: number, body: unknown): HubError {
    const api = body && typeof body === 'object' && 'message' in body ? (body as ApiError) : undefined
    if (status === 401 || status === 403) {
      const what = this.token ? 'admin token refused' : 'admin token missing'
      return new HubError('unauthorized', `${what}: the hub at ${this.where} answered HTTP ${status}${api ? ` (${api.message})` : ''}. Fix: run it on the hub as its user (it reads $MIRRORMESH_STATE_DIR/admin-token), or pass --token / MIRRORMESH_ADMIN_TOKEN`, status, api?.error)
    }
    const detail = api ? `${api.error}: ${api.message}` : typeof body === 'string' && body ? body.slice(0, 200) : 'no details'
    return new HubError('http', `hub at ${this.where} answered HTTP ${status} (${detail})`, status, api?.error)
  }
}

/** The message of any error a command prints (HubError messages are already for people). */
export const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err))
