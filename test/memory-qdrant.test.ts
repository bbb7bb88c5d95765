// The Qdrant store under the same conformance suite as the embedded one, when QDRANT_URL points
// at a Qdrant server (none can be installed on this project's machines or in CI). Without it
// the suite is reported as skipped, by name, with the reason.
import { randomUUID } from 'node:crypto'
import { afterAll, describe, it } from 'vitest'
import { HASHED_DIM } from '../hub/src/memory/hash-embed.js'
import { QdrantMemoryStore } from '../hub/src/memory/qdrant.js'
import type { MemoryStore } from '../hub/src/memory/types.js'
import { memoryConformance } from './support/memory-conformance.js'

const url = process.env.QDRANT_URL

if (url) {
  const collections = new WeakMap<MemoryStore, string>()
  const opened: QdrantMemoryStore[] = []
  const open = async (collection: string) => {
    const s = await QdrantMemoryStore.open({ url, apiKey: process.env.QDRANT_API_KEY, collection, dim: HASHED_DIM })
    collections.set(s, collection)
    opened.push(s)
    return s
  }
  afterAll(async () => { for (const s of opened) await s.drop().catch(() => undefined) })
  memoryConformance(`Qdrant at ${url}`, {
    fresh: () => open(`mm_test_${randomUUID().slice(0, 8)}`),
    reopen: (s) => open(collections.get(s)!),
  })
} else {
  describe('MemoryStore conformance: Qdrant', () => {
    it.skip('SKIPPED: QDRANT_URL is not set (no Qdrant server here); set QDRANT_URL=http://HOST:6333 to run the conformance suite against Qdrant', () => undefined)
  })
}
