// Test helpers for the node's offline modules: a small generated reply bundle and a node:http
// server serving it the way the hub does. Lives in test/support so that it never ships in dist.
import { createHash } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { bundleFilePath, monthKeys, weekdayKeys, type BundleFallback, type BundleManifest, type BundleReply } from '@mirrormesh/broker'

const sha256Hex = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex')

/** Every fragment key the responder may use. */
export function fragmentKeys(): string[] {
  const keys = ['its', 'am', 'pm', 'today_is', 'timer_done', ...weekdayKeys, ...monthKeys]
  for (let h = 1; h <= 12; h++) keys.push(`h${h}`)
  for (let m = 0; m < 60; m++) keys.push(`m${String(m).padStart(2, '0')}`)
  for (let d = 1; d <= 31; d++) keys.push(`d${d}`)
  // A 24-hour clock (node config `clock: "24h"`): h0, h13..h23 and "hundred" on the hour.
  for (const h of [0, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23]) keys.push(`h${h}`)
  keys.push('hundred')
  return keys
}

/** A clip whose samples all equal `marker` (so a test can read back which clips were joined). */
export function markerClip(marker: number, samples = 4): Int16Array {
  return new Int16Array(samples).fill(marker)
}

export interface TestBundle {
  manifest: BundleManifest
  manifestBytes: Buffer
  sha256: string
  /** File name → bytes. */
  files: Map<string, Buffer>
  /** File name → marker value of its samples. */
  markers: Map<string, number>
}

export function makeTestBundle(opts: { version?: string; replies?: BundleReply[]; omitFragments?: string[]; salt?: number; noFallbacks?: boolean } = {}): TestBundle {
  const files = new Map<string, Buffer>()
  const markers = new Map<string, number>()
  let next = 1 + (opts.salt ?? 0) * 1000
  const add = (name: string): string => {
    const marker = next++
    const pcm = markerClip(marker)
    files.set(name, Buffer.from(pcm.buffer))
    markers.set(name, marker)
    return name
  }
  const fragments: Record<string, string> = {}
  for (const k of fragmentKeys()) if (!opts.omitFragments?.includes(k)) fragments[k] = add(`frag-${k}.pcm`)
  const replies: BundleReply[] = opts.replies ?? [
    // As hub/src/bundle/builder.ts makes them.
    { phrase: 'what time is it', skill: 'time', text: '{time}', clips: ['{time}'] },
    { phrase: 'what day is it', skill: 'date', text: '{date}', clips: ['{date}'] },
    { phrase: 'turn on the kitchen light', skill: 'lights', text: 'Kitchen light on', clips: [add('kitchen-on.pcm')], action: { component: 'light', action: 'set', room: 'kitchen', state: 'on' } },
    { phrase: 'set a timer for five minutes', skill: 'timer', text: 'Timer set for five minutes', clips: [add('timer-5.pcm')], timerMs: 300_000 },
    { phrase: 'stop', skill: 'stop', text: '', clips: [], stop: true },
  ]
  const fallbacks: { offline: BundleFallback; not_understood: BundleFallback } | undefined = opts.noFallbacks ? undefined : {
    offline: { text: "I'm offline right now, I'll pass that on.", clips: [add('offline.pcm')] },
    not_understood: { text: "Sorry, I didn't catch that.", clips: [add('not-understood.pcm')] },
  }
  for (const r of replies) for (const c of r.clips) if (!c.startsWith('{') && !files.has(c)) add(c)
  const manifest: BundleManifest = {
    v: 1,
    version: opts.version ?? 'v1',
    createdAt: new Date(0).toISOString(),
    voice: 'test',
    sampleRate: 16000,
    files: [...files].map(([name, data]) => ({ name, sha256: sha256Hex(data), bytes: data.length })),
    replies,
    fragments,
    ...(fallbacks ? { fallbacks } : {}),
  }
  const manifestBytes = Buffer.from(JSON.stringify(manifest))
  return { manifest, manifestBytes, sha256: sha256Hex(manifestBytes), files, markers }
}

export interface BundleServer {
  url: string
  server: Server
  bundles: Map<string, TestBundle>
  /** Paths requested, in order. */
  requests: string[]
  /** Overrides the body served for a path (e.g. a corrupted file). */
  tamper: Map<string, Buffer>
  close(): Promise<void>
}

export async function serveBundles(...bundles: TestBundle[]): Promise<BundleServer> {
  const map = new Map(bundles.map((b) => [b.manifest.version, b]))
  const requests: string[] = []
  const tamper = new Map<string, Buffer>()
  const server = createServer((req, res) => {
    const p = req.url ?? ''
    requests.push(p)
    let body = tamper.get(p)
    if (!body) {
      for (const b of map.values()) {
        const v = b.manifest.version
        if (p === bundleFilePath(v, 'manifest.json')) body = b.manifestBytes
        for (const [name, data] of b.files) if (p === bundleFilePath(v, name)) body = data
      }
    }
    if (!body) {
      res.writeHead(404).end()
      return
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length }).end(body)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    bundles: map,
    requests,
    tamper,
    close: () => new Promise((r) => server.close(() => r())),
  }
}

export function announcementOf(b: TestBundle): { version: string; sha256: string; url: string } {
  return { version: b.manifest.version, sha256: b.sha256, url: bundleFilePath(b.manifest.version, 'manifest.json') }
}
