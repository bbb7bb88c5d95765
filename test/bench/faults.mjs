// `npm run faults`: the fault suite (test/faults) at full size, printing its figures.
// Same scenarios as CI, larger: 50 hub kills, a minute of hub flapping, 10 partitions, 200
// nodes in the power recovery. Sizes can be overridden with the same environment variables.
// `npm run faults -- hub-kill` runs one file. Figures are the lines the tests print.
import { spawnSync } from 'node:child_process'

const env = {
  FAULTS_KILLS: '50', FAULTS_FLAP_S: '60', FAULTS_PARTITIONS: '10', FAULTS_NODES: '200',
  ...process.env,
}
const files = process.argv.slice(2).map((f) => (f.includes('/') ? f : `test/faults/${f}`))
console.log(`faults: FAULTS_KILLS=${env.FAULTS_KILLS} FAULTS_FLAP_S=${env.FAULTS_FLAP_S} FAULTS_PARTITIONS=${env.FAULTS_PARTITIONS} FAULTS_NODES=${env.FAULTS_NODES}`)
const r = spawnSync('npx', ['vitest', 'run', '--project', 'faults', '--reporter', 'verbose', ...(files.length ? files : ['test/faults'])], { stdio: 'inherit', env })
process.exit(r.status ?? 1)
