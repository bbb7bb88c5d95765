// `npm run fuzz`: the fuzz tests (test/fuzz) with 10,000 runs per property (FUZZ_RUNS), on the
// fixed seed (FUZZ_SEED to replay another). The validator tests print the test process's RSS
// before and after; the hub tests print the hub's RSS before and after their flood.
import { spawnSync } from 'node:child_process'

const env = { FUZZ_RUNS: '10000', ...process.env }
console.log(`fuzz: FUZZ_RUNS=${env.FUZZ_RUNS} FUZZ_SEED=${env.FUZZ_SEED ?? '(fixed default)'}`)
const r = spawnSync('npx', ['vitest', 'run', '--project', 'faults', 'test/fuzz', ...process.argv.slice(2)], { stdio: 'inherit', env })
process.exit(r.status ?? 1)
