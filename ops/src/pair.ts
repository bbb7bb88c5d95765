// `mirrormesh pair`: a one-time code that lets one browser on the LAN become a node (the hub's
// page, https://<hub>:8443/). The hub keeps the code in memory for 10 minutes; it works once.
// The browser gets its own `browser-…` node credential; `mirrormesh node remove <id>` revokes it.
import { HubClient, errorText, type HubTarget } from './api.js'

interface PairOptions extends HubTarget { url?: string; json?: boolean }

export async function pairCommand(opts: PairOptions): Promise<number> {
  const api = new HubClient(opts)
  try {
    const r = await api.json<{ code: string; expiresAt: number }>('/api/pair/code', { method: 'POST' })
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(r)}\n`)
      return 0
    }
    const mins = Math.round((r.expiresAt - Date.now()) / 60_000)
    const link = opts.url ? `\n  or open ${opts.url.replace(/\/?$/, '/')}#pair=${r.code}` : ''
    process.stdout.write(`Pairing code: ${r.code}\n  type it on the hub's page in the browser (https://<hub>:8443/)${link}\n  works once, for ${mins} minutes\n`)
    return 0
  } catch (err) {
    process.stderr.write(`mirrormesh pair: ${errorText(err)}\n`)
    return 1
  }
}
