// `npm run fuzz`: the fuzz tests (test/fuzz) with 10,000 runs per property (FUZZ_RUNS), on the
// fixed seed (FUZZ_SEED to replay another). Prints this runner's RSS before and after; the hub
// tests print the hub's RSS before and after their flood.
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'

const rss = (pid) => Math.round(Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024)
const env = { FUZZ_RUNS: '10000', ...process.env }
const before = rss(process.pid)
console.log(`fuzz: FUZZ_RUNS=${env.FUZZ_RUNS} FUZZ_SEED=${env.FUZZ_SEED ?? '(fixed default)'}; runner RSS before ${before} MB`)
const r = spawnSync('npx', ['vitest', 'run', '--project', 'faults', 'test/fuzz', ...process.argv.slice(2)], { stdio: 'inherit', env })
console.log(`fuzz: runner RSS after ${rss(process.pid)} MB (vitest worker peak: see the hub RSS lines above)`)
process.exit(r.status ?? 1)
