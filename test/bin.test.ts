// `npx mirrormesh` after `npm ci`: npm links the committed ops/bin wrapper (npm skips a bin whose
// target is missing, and ops/dist does not exist on a fresh clone until the first build).
import { execFile } from 'node:child_process'
import { copyFile, cp, mkdir, readdir, readlink, rm, symlink } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'
import { root, tempDir as newTempDir } from './support/harness.js'

const run = promisify(execFile)
const dirs: string[] = []
async function tempDir(): Promise<string> {
  const dir = await newTempDir()
  dirs.push(dir)
  return dir
}
afterAll(async () => {
  // rm does not follow the symlinks into the repo's node_modules.
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))
})

describe('the mirrormesh bin', () => {
  it('node_modules/.bin/mirrormesh is the ops/bin wrapper and `--help` lists the commands', async () => {
    const bin = join(root, 'node_modules', '.bin', 'mirrormesh')
    expect(await readlink(bin)).toMatch(/ops\/bin\/mirrormesh\.js$/)
    const { stdout } = await run(bin, ['--help'])
    expect(stdout).toMatch(/^Usage: mirrormesh /)
    for (const cmd of ['hub', 'agent', 'nodes', 'node', 'check', 'models', 'broker', 'doctor']) {
      expect(stdout).toMatch(new RegExp(`^  ${cmd} `, 'm'))
    }
  })

  it('without dist and without the repo\'s TypeScript it says what to run and exits 1', async () => {
    const dir = await tempDir()
    await mkdir(join(dir, 'ops', 'bin'), { recursive: true })
    const wrapper = join(dir, 'ops', 'bin', 'mirrormesh.js')
    await copyFile(join(root, 'ops', 'bin', 'mirrormesh.js'), wrapper)
    const err = await run(process.execPath, [wrapper, '--help']).then(() => undefined, (e: { code: number; stderr: string }) => e)
    expect(err?.code).toBe(1)
    expect(err?.stderr).toMatch(/ops\/dist\/cli\.js is missing: the CLI is not built\.\nFix: in the repository run `npm ci && npm run build`/)
  })
})

describe('the CLI on a mirror install (no @mirrormesh/hub)', () => {
  // The tree a Pi gets: ops and every other package, the hub left out.
  async function piTree(): Promise<string> {
    const dir = await tempDir()
    await mkdir(join(dir, 'node_modules', '@mirrormesh'), { recursive: true })
    for (const name of await readdir(join(root, 'node_modules'))) {
      if (name === '@mirrormesh' || name === '.bin') continue
      await symlink(join(root, 'node_modules', name), join(dir, 'node_modules', name))
    }
    for (const name of ['broker', 'speech', 'node-agent']) {
      await symlink(join(root, 'node_modules', '@mirrormesh', name), join(dir, 'node_modules', '@mirrormesh', name))
    }
    for (const part of ['package.json', 'bin', 'dist']) await cp(join(root, 'ops', part), join(dir, 'ops', part), { recursive: true })
    return dir
  }

  it('`hub`, `doctor --role hub` and `models check` say the hub is not installed here and how to fix it; `--help` works', async () => {
    const dir = await piTree()
    const bin = join(dir, 'ops', 'bin', 'mirrormesh.js')
    const help = await run(process.execPath, [bin, '--help'])
    expect(help.stdout).toMatch(/^ {2}agent /m)
    for (const args of [['hub'], ['doctor', '--role', 'hub'], ['models', 'check']]) {
      const err = await run(process.execPath, [bin, ...args], { env: { ...process.env, MIRRORMESH_STATE_DIR: join(dir, 'state') } })
        .then(() => undefined, (e: { code: number; stderr: string }) => e)
      expect(err?.code, args.join(' ')).toBe(1)
      expect(err?.stderr).toMatch(/needs the hub package \(@mirrormesh\/hub\), which this install left out .*Fix: run it on the hub machine/)
    }
  })
})
