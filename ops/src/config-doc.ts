// Writes the README's configuration tables from the settings schemas, so the docs
// cannot drift: `npm run docs:config` rewrites, `--check` fails when out of date.
import { readFileSync, writeFileSync } from 'node:fs'
import { renderConfigTable, type ConfigShape } from '@mirrormesh/broker'
import { hubSettings } from '@mirrormesh/hub'
import { agentSettings } from '@mirrormesh/node-agent'

const sections: Record<string, ConfigShape> = { hub: hubSettings, agent: agentSettings }

export function renderReadme(text: string): string {
  let out = text
  for (const [name, shape] of Object.entries(sections)) {
    const start = `<!-- config:${name} -->`
    const end = `<!-- /config:${name} -->`
    const i = out.indexOf(start)
    const j = out.indexOf(end)
    if (i < 0 || j < i) throw new Error(`README is missing the ${start} … ${end} markers`)
    out = out.slice(0, i + start.length) + '\n' + renderConfigTable(shape) + '\n' + out.slice(j)
  }
  return out
}

const [file = 'README.md', flag] = process.argv.slice(2)
const current = readFileSync(file, 'utf8')
const next = renderReadme(current)
if (flag === '--check') {
  if (next !== current) {
    process.stderr.write(`${file}: configuration tables are out of date; run \`npm run docs:config\`\n`)
    process.exit(1)
  }
  process.stdout.write(`${file}: configuration tables are up to date\n`)
} else {
  writeFileSync(file, next)
  process.stdout.write(`${file}: configuration tables written\n`)
}
