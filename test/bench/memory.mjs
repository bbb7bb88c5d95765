// `bench memory`: the embedded memory store (SQLite + sqlite-vec + FTS5) at 1k / 10k / 100k
// memories: insert throughput (one transaction per memory, as turns store them), recall p50/p99
// (hashed-n-gram embedding + hybrid search, what a "where are my …" turn waits for), file size.
// Every memory sits under ONE key: the worst case (a search reads only its key's vectors).
// As the hub stores them, facts carry a vector and turns do not (turns are never searched by
// vector). BENCH_FACT_SHARE=0.33 (default): a third of the memories are facts; 1: all facts.
// With QDRANT_URL set, the same against Qdrant (collection bench_<time>, dropped after).
//   BENCH_MEMORY_SIZES=1000,10000,100000   BENCH_QUERIES=500
// Then what memory adds to a turn's TTFA through a real hub (memory-ttfa.mjs; BENCH_MEMORY_TTFA=0 skips it).
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { hashedVector, HASHED_DIM } from '../../hub/dist/memory/hash-embed.js'
import { SqliteMemoryStore } from '../../hub/dist/memory/sqlite.js'
import { QdrantMemoryStore } from '../../hub/dist/memory/qdrant.js'
import { ttfaBench } from './memory-ttfa.mjs'
import { envInt, fmt, printMachine, quantile, table, trackDir } from './lib.mjs'

const things = 'keys wallet glasses charger umbrella passport bike helmet remote scissors tape gloves scarf ticket receipt battery torch hammer drill ladder'.split(' ')
const places = 'drawer shelf cupboard garage shed fridge basket box hook table desk bag car attic cellar hall porch sofa bench window'.split(' ')
const people = 'ana ben carla dev eli finn gus hana ivo jo'.split(' ')
const verbs = 'are in|is on|went into|is under|sits behind|was left by|is next to'.split('|')

/** A deterministic pseudo-random sentence (seeded): what people ask to be remembered. */
function sentence(i) {
  let x = (i * 2654435761) >>> 0
  const pick = (a) => { x = (x * 1103515245 + 12345) >>> 0; return a[x % a.length] }
  return `${pick(people)}'s ${pick(things)} ${pick(verbs)} the ${pick(places)} number ${i % 977}`
}

const factShare = Math.min(1, Math.max(0.01, Number(process.env.BENCH_FACT_SHARE ?? 0.33)))

async function measure(store, n, queries) {
  const t0 = performance.now()
  for (let i = 0; i < n; i++) {
    const text = sentence(i)
    const fact = (i % 100) < factShare * 100
    await store.add('room:bench', fact ? 'fact' : 'turn', text, fact ? hashedVector(text) : undefined, 1_700_000_000_000 + i)
  }
  const insertS = (performance.now() - t0) / 1000
  const lat = []
  for (let q = 0; q < queries; q++) {
    const text = `where are ${sentence(q * 7919 + 13).split(' ').slice(1, 2).join(' ')} ${things[q % things.length]}`
    const s = performance.now()
    await store.search(['room:bench'], { text, vector: hashedVector(text), k: 4, kind: 'fact' })
    lat.push(performance.now() - s)
  }
  lat.sort((a, b) => a - b)
  return { insertPerS: n / insertS, p50: quantile(lat, 0.5), p99: quantile(lat, 0.99), max: lat[lat.length - 1] }
}

export async function main() {
  printMachine()
  const sizes = (process.env.BENCH_MEMORY_SIZES ?? '1000,10000,100000').split(',').map(Number).filter((n) => n > 0)
  const queries = envInt('BENCH_QUERIES', 500)
  const rows = [['store', `memories (${Math.round(factShare * 100)}% facts)`, 'insert/s', 'recall p50 ms', 'recall p99 ms', 'max ms', 'file MB']]
  for (const n of sizes) {
    const dir = trackDir(await mkdtemp(join(tmpdir(), 'mm-bench-memory-')))
    const path = join(dir, 'memory.db')
    const store = new SqliteMemoryStore(path, { dim: HASHED_DIM })
    const r = await measure(store, n, queries)
    const { bytes } = await store.stats()
    await store.close()
    const { bytes: closed } = await new SqliteMemoryStore(path, { dim: HASHED_DIM }).stats()
    rows.push(['embedded', n, fmt(r.insertPerS, 0), fmt(r.p50, 2), fmt(r.p99, 2), fmt(r.max, 1), `${fmt(bytes / 1e6, 1)} (${fmt(closed / 1e6, 1)} after checkpoint)`])
    await rm(dir, { recursive: true, force: true })
  }
  if (process.env.QDRANT_URL) {
    for (const n of sizes) {
      const collection = `bench_${Date.now()}`
      const store = await QdrantMemoryStore.open({ url: process.env.QDRANT_URL, apiKey: process.env.QDRANT_API_KEY, collection, dim: HASHED_DIM })
      try {
        const r = await measure(store, n, queries)
        rows.push(['qdrant', n, fmt(r.insertPerS, 0), fmt(r.p50, 2), fmt(r.p99, 2), fmt(r.max, 1), '-'])
      } finally {
        await store.drop().catch(() => undefined)
      }
    }
  } else {
    console.log('qdrant: skipped (QDRANT_URL not set)')
  }
  table(rows)
  console.log(`recall = hashed-n-gram embedding + vector kNN + FTS5 BM25 + rank fusion, k=4, facts only, ${queries} queries, every memory under one key`)
  if (process.env.BENCH_MEMORY_TTFA !== '0') await ttfaBench()
}
