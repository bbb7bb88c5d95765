// fast-check settings shared by the fuzz tests: a fixed seed (printed, so a failure can be
// replayed with FUZZ_SEED=<seed>) and a run count per topic that CI keeps small and
// `npm run fuzz` raises (FUZZ_RUNS=10000).
import fc from 'fast-check'

export const FUZZ_SEED = Number(process.env.FUZZ_SEED ?? 20261202)
export const FUZZ_RUNS = Number(process.env.FUZZ_RUNS ?? 300)

let logged = false
/** This (vitest worker) process's RSS in MB: printed before and after a file's properties. */
export const rssMb = (): number => Math.round(process.memoryUsage.rss() / 1048576)
/** Parameters for fc.assert; logs the seed once per file. `scale` shrinks the count for slow properties. */
export function fuzzParams(scale = 1): fc.Parameters<unknown> {
  if (!logged) {
    console.log(`fuzz: seed ${FUZZ_SEED}, ${FUZZ_RUNS} runs per property (replay: FUZZ_SEED=${FUZZ_SEED}); test process RSS ${rssMb()} MB`)
    logged = true
  }
  return { seed: FUZZ_SEED, numRuns: Math.max(1, Math.round(FUZZ_RUNS * scale)), endOnFailure: true }
}

/** JSON values nested `depth` deep: objects and arrays mixed. */
export function deepJson(depth: number): string {
  let s = '0'
  for (let i = 0; i < depth; i++) s = i % 2 ? `{"a":${s}}` : `[${s}]`
  return s
}

/** Payloads a hostile client sends: random bytes, non-UTF-8, JSON of the wrong shape, huge, deep. */
export const hostilePayload: fc.Arbitrary<Buffer> = fc.oneof(
  fc.uint8Array({ maxLength: 512 }).map((a) => Buffer.from(a)),
  // Lone continuation bytes and overlong forms: not UTF-8 at all.
  fc.array(fc.constantFrom(0x80, 0xbf, 0xc0, 0xc1, 0xf5, 0xff, 0xfe, 0xed, 0xa0), { minLength: 1, maxLength: 64 }).map((a) => Buffer.from(a)),
  fc.json({ maxDepth: 4 }).map((s) => Buffer.from(s)),
  fc.jsonValue({ maxDepth: 3 }).map((v) => Buffer.from(JSON.stringify({ v: 1, ts: Date.now(), type: 'ttfa', extra: v }))),
  fc.string({ unit: 'grapheme', maxLength: 200 }).map((s) => Buffer.from(s)),
  fc.integer({ min: 1, max: 5000 }).map((d) => Buffer.from(deepJson(d))),
  fc.integer({ min: 70_000, max: 300_000 }).map((n) => Buffer.alloc(n, 0x7b)),
  fc.constantFrom('{', '[]', 'null', '1e309', '-0', '"\\ud800"', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{}}}').map((s) => Buffer.from(s)),
)
