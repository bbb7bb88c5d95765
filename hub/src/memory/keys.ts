// Memory keys: whose memories a turn reads and writes. A room's mirrors share `room:<room>`
// (a mirror with no room: `node:<id>`); a text turn may name a user, `user:<name>`. Keys are
// derived from the registry's room and the caller's name, never from a connection, so they
// stay the same across reconnects and hub restarts.

export const memoryKeyPattern = /^[a-z]{1,16}:[a-z0-9][a-z0-9._-]{0,63}$/

const slug = (s: string) => s.trim().toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 64)

export function roomKey(room: string | null, nodeId: string): string {
  const r = room ? slug(room) : ''
  return r ? `room:${r}` : `node:${slug(nodeId)}`
}

/** A named user's key; undefined when the name has nothing usable in it. */
export function userKey(name: string): string | undefined {
  const s = slug(name)
  return s ? `user:${s}` : undefined
}

export const isMemoryKey = (k: string): boolean => memoryKeyPattern.test(k)
