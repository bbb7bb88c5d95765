#!/usr/bin/env node
// The `mirrormesh` bin npm links at install time. It is committed plain JS because npm skips a
// bin whose target is missing, and ops/dist/cli.js does not exist until `tsc -b` has run: with
// this file `npm ci && npx mirrormesh --help` works on a fresh clone. If dist is missing and the
// repo's TypeScript is installed, it builds once (progress on stderr); otherwise it says what to run.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const cli = new URL('../dist/cli.js', import.meta.url)

if (!existsSync(cli)) {
  const root = fileURLToPath(new URL('../../', import.meta.url))
  let tsc
  try {
    tsc = existsSync(new URL('../../tsconfig.json', import.meta.url))
      ? createRequire(new URL('../../package.json', import.meta.url)).resolve('typescript/bin/tsc')
      : undefined
  } catch { tsc = undefined }
  if (!tsc) {
    process.stderr.write(`mirrormesh: ${fileURLToPath(cli)} is missing: the CLI is not built.\n` +
      'Fix: in the repository run `npm ci && npm run build` (TypeScript is a dev dependency), ' +
      'or copy the built */dist folders here.\n')
    process.exit(1)
  }
  process.stderr.write(`mirrormesh: first run, building with \`tsc -b\` in ${root} …\n`)
  const r = spawnSync(process.execPath, [tsc, '-b'], { cwd: root, stdio: ['ignore', 2, 2] })
  if (r.status !== 0 || !existsSync(cli)) {
    process.stderr.write(`mirrormesh: the build failed (${r.error?.message ?? `exit ${r.status ?? r.signal}`}). Fix: run \`npm run build\` in ${root} and read its errors.\n`)
    process.exit(1)
  }
}

await import(cli.href)
