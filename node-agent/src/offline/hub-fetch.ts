// How the node fetches its offline bundle from the hub: over HTTPS it trusts MQTT_CA (the hub's
// ca.pem; hostname verified) and sends its own MQTT credential as HTTP Basic, which the hub's LAN
// listener requires. Over plain HTTP the credential goes only to a loopback hub: a password is
// never sent in clear across the LAN (the hub's loopback listener needs none anyway).
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { Readable } from 'node:stream'

export type FetchImpl = (url: string | URL, init?: { signal?: AbortSignal }) => Promise<Response>

export interface HubFetchOptions {
  /** PEM CA(s) the hub's certificate must chain to (MQTT_CA); unset: the system's CAs. */
  ca?: Buffer
  username: string
  password: string
}

const TLS_TRUST_CODES = /^(CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|ERR_TLS_CERT_ALTNAME_INVALID)/

function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '')
  return h === 'localhost' || h === '::1' || /^127\./.test(h)
}

export function hubFetch(opts: HubFetchOptions): FetchImpl {
  const basic = `Basic ${Buffer.from(`${opts.username}:${opts.password}`).toString('base64')}`
  return (input, init) => new Promise<Response>((resolve, reject) => {
    const url = new URL(input)
    const https = url.protocol === 'https:'
    const headers: Record<string, string> = {}
    if (https || isLoopbackHost(url.hostname)) headers.authorization = basic
    const req = (https ? httpsRequest : httpRequest)(url, { headers, signal: init?.signal, ...(https && opts.ca ? { ca: opts.ca } : {}) }, (res: IncomingMessage) => {
      const h = new Headers()
      for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') h.set(k, v)
      const status = res.statusCode ?? 502
      const body = status === 204 || status === 304 ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>)
      resolve(new Response(body, { status, headers: h }))
    })
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (https && err.code && TLS_TRUST_CODES.test(err.code)) {
        reject(new Error(`${url.host}: the hub's TLS certificate is not trusted (${err.message}); set MQTT_CA to the hub's ca.pem (from \`mirrormesh tls init\`) and use the name the certificate was made for`))
      } else reject(err)
    })
    req.end()
  })
}
