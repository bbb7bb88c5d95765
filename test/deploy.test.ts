// deploy/install.sh into a temporary root (never the real system): the system user, state
// folders, the env file (mode 600, never overwritten), the unit and the logrotate file; a second
// run changes nothing and keeps an edited env file; the installed units pass systemd-analyze
// verify; logrotate accepts the config and, run for real on a copy pointed at the temp root,
// rotates the day files and the fallback log but never the replay dedup store.
// Under CI (.ci/run installs systemd and logrotate) a missing tool fails; elsewhere it skips.
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdir, readFile, readdir, stat, writeFile, appendFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'
import { afterEach, describe, expect, it } from 'vitest'
import { removeDir, root, tempDir as newTempDir } from './support/harness.js'
import { hasTool } from './support/notify-socket.js'

const exec = promisify(execFile)
const script = join(root, 'deploy', 'install.sh')
// The installed unit's ExecStart is the `node` install.sh finds on PATH: make it this one.
const env = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}` }

async function install(...args: string[]): Promise<{ code: number; out: string }> {
  return exec('sh', [script, ...args], { env }).then(
    ({ stdout, stderr }) => ({ code: 0, out: stdout + stderr }),
    (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? 1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` }))
}

/** path → mode, owner, mtime and content hash of every file and folder under `dir`. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const name of await readdir(dir, { recursive: true })) {
    const p = join(dir, name)
    const s = await stat(p)
    const hash = s.isFile() ? createHash('sha256').update(await readFile(p)).digest('hex').slice(0, 12) : 'dir'
    out[name] = `${(s.mode & 0o7777).toString(8)} ${s.uid}:${s.gid} ${s.mtimeMs} ${hash}`
  }
  return out
}

const dirs: string[] = []
const tempDir = async (prefix: string) => { const d = await newTempDir(prefix); dirs.push(d); return d }
afterEach(async () => { for (const d of dirs.splice(0)) await removeDir(d) })

const mode = async (p: string) => ((await stat(p)).mode & 0o7777).toString(8)

describe.skipIf(process.getuid?.() !== 0 && !process.env.CI)('deploy/install.sh (needs root for chown)', () => {
  it('installs hub and agent into a temp root; a second run changes nothing and keeps an edited env file', async () => {
    const dir = await tempDir('mm-root-')
    const hub = await install('hub', '--root', dir)
    expect(hub.code, hub.out).toBe(0)
    expect(hub.out).toMatch(/\+ system user mirrormesh \(\d+\) in .*etc\/passwd \(no useradd under --root\)/)
    expect(hub.out).toContain('systemctl not run (--root')
    expect(hub.out).toMatch(/Next steps:[\s\S]*tls init[\s\S]*node add kitchen/)
    const agent = await install('agent', '--root', dir, '--no-start')
    expect(agent.code, agent.out).toBe(0)
    expect(agent.out).toContain('= user mirrormesh exists')

    const passwd = await readFile(join(dir, 'etc/passwd'), 'utf8')
    const [, uid, gid] = /^mirrormesh:x:(\d+):(\d+):[^:]*:\/var\/lib\/mirrormesh:\/usr\/sbin\/nologin$/m.exec(passwd) ?? []
    expect(uid, passwd).toBeDefined()
    expect(Number(uid)).toBeLessThan(1000)
    expect(await readFile(join(dir, 'etc/group'), 'utf8')).toContain(`mirrormesh:x:${gid}:`)
    for (const [p, m] of [['etc/mirrormesh/hub.env', '600'], ['etc/mirrormesh/agent.env', '600'], ['var/lib/mirrormesh', '750'], ['var/lib/mirrormesh-agent', '750'],
      ['etc/systemd/system/mirrormesh-hub.service', '644'], ['etc/systemd/system/mirrormesh-agent.service', '644'], ['etc/logrotate.d/mirrormesh', '644']] as const) {
      expect(await mode(join(dir, p)), p).toBe(m)
    }
    // The env files and state folders belong to the service user; the rest to root.
    for (const p of ['etc/mirrormesh/hub.env', 'var/lib/mirrormesh', 'var/lib/mirrormesh-agent']) expect((await stat(join(dir, p))).uid, p).toBe(Number(uid))
    expect((await stat(join(dir, 'etc/systemd/system/mirrormesh-hub.service'))).uid).toBe(0)
    expect(await readFile(join(dir, 'etc/mirrormesh/hub.env'), 'utf8')).toBe(await readFile(join(root, 'deploy/env/hub.env.example'), 'utf8'))
    const unit = await readFile(join(dir, 'etc/systemd/system/mirrormesh-hub.service'), 'utf8')
    expect(unit).toContain(`ExecStart=${process.execPath} ${root}/ops/dist/cli.js hub`)
    expect(unit).toContain(`WorkingDirectory=${root}`)
    expect(unit).toContain('StateDirectoryMode=0750')

    // Again: nothing changes, not even a timestamp.
    const before = await snapshot(dir)
    const again = await install('hub', '--root', dir)
    expect(again.out).toContain('nothing changed')
    expect(again.out).not.toMatch(/^ {2}\+ /m)
    expect(await snapshot(dir)).toEqual(before)

    // An edited env file is the operator's: kept as it is.
    const envFile = join(dir, 'etc/mirrormesh/hub.env')
    await appendFile(envFile, 'NODE_STALE_MS=5000\n')
    const edited = await readFile(envFile, 'utf8')
    const third = await install('hub', '--root', dir)
    expect(third.out).toContain('= /etc/mirrormesh/hub.env (kept: edited by you)')
    expect(await readFile(envFile, 'utf8')).toBe(edited)
    expect(await mode(envFile)).toBe('600')
  })

  it('refuses a bad role or a missing root with a usage line', async () => {
    expect(await install('mirror')).toMatchObject({ code: 2, out: expect.stringMatching(/usage: .* hub\|agent/) })
    expect(await install('hub', '--root', '/nonexistent-mm-root')).toMatchObject({ code: 2, out: expect.stringContaining('no such directory') })
  })

  it.skipIf(!hasTool('systemd-analyze') && !process.env.CI)('the installed units pass systemd-analyze verify', async () => {
    const dir = await tempDir('mm-root-')
    for (const role of ['hub', 'agent']) expect((await install(role, '--root', dir)).code).toBe(0)
    for (const name of ['mirrormesh-hub.service', 'mirrormesh-agent.service']) {
      const r = await exec('systemd-analyze', ['verify', join(dir, 'etc/systemd/system', name)]).then(
        ({ stdout, stderr }) => ({ code: 0, out: stdout + stderr }),
        (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? 1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` }))
      // verify exits 0 even for unknown keys ("ignoring"): any output is a finding.
      expect(r, name).toEqual({ code: 0, out: '' })
    }
  })
})

describe.skipIf(!hasTool('logrotate') && !process.env.CI)('deploy/logrotate/mirrormesh (needs logrotate)', () => {
  it('logrotate accepts it, rotates day files and the fallback log, and never the dedup store', async () => {
    const dir = await tempDir('mm-logrotate-')
    // The real config with its paths moved under `dir`; `su root root` because this machine has
    // no mirrormesh user (logrotate resolves the name) — the only change.
    const conf = (await readFile(join(root, 'deploy/logrotate/mirrormesh'), 'utf8'))
      .replaceAll('/var/lib/', `${dir}/var/lib/`).replaceAll('su mirrormesh mirrormesh', 'su root root')
    const confFile = join(dir, 'mirrormesh.conf')
    await writeFile(confFile, conf)
    const inc = join(dir, 'var/lib/mirrormesh/incidents')
    const fb = join(dir, 'var/lib/mirrormesh-agent/journal')
    await mkdir(inc, { recursive: true })
    await mkdir(fb, { recursive: true })
    await writeFile(join(inc, '2026-11-30.jsonl'), '{"type":"node_outage"}\n')
    await writeFile(join(inc, 'offline-turns.jsonl'), '{"id":"t1"}\n')
    await writeFile(join(fb, 'fallback.log'), '2026-11-30T10:00:00.000Z offline heard="x" replied="y"\n')
    const state = join(dir, 'logrotate.state')

    const dry = await exec('logrotate', ['-d', '-s', state, confFile]).then(({ stdout, stderr }) => stdout + stderr)
    expect(dry).not.toMatch(/^error:/m)
    expect(dry).toMatch(/considering log .*2026-11-30\.jsonl/)
    expect(dry).not.toMatch(/considering log .*offline-turns\.jsonl/)

    await exec('logrotate', ['-f', '-s', state, confFile])
    expect((await readdir(inc)).sort()).toEqual(['2026-11-30.jsonl.1', 'offline-turns.jsonl'])
    expect(await readFile(join(inc, '2026-11-30.jsonl.1'), 'utf8')).toBe('{"type":"node_outage"}\n')
    const rotated = (await readdir(fb)).sort()
    expect(rotated).toHaveLength(1)
    expect(rotated[0]).toMatch(/^fallback\.log-\d{8}$/) // nocreate: the agent creates the next one
  })
})
