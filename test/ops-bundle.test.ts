// `mirrormesh bundle --turn`: a real turn on a real hub, bundled; the archive holds that turn's
// log lines, health, versions and setting names — and no secret value anywhere, in the archive
// or in what the commands print. The hub runs against Mosquitto so MQTT_PASSWORD is really set.
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { extract } from 'tar'
import { cli, killAll, removeDir, tempDir } from './support/harness.js'
import { createMesh } from './support/mesh.js'

const dirs: string[] = []

afterEach(async () => {
  await killAll()
  for (const d of dirs.splice(0)) await removeDir(d)
})

async function readAll(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (e.isFile()) out[join(e.parentPath, e.name).slice(dir.length + 1)] = await readFile(join(e.parentPath, e.name), 'utf8')
  }
  return out
}

describe('mirrormesh bundle', () => {
  it('packs the turn\'s log lines, health, versions and setting names, and never a secret value', async () => {
    const dir = await tempDir('mm-bundle-test-')
    dirs.push(dir)
    // Secret values the hub has: its broker password (set by the mesh), its state dir and an LLM
    // model path (paths name users and layouts), and a secret setting of the operator's own.
    const llm = join(dir, 'models-of-alice', 'secret-model-7f3a.gguf')
    await mkdir(join(dir, 'models-of-alice'))
    await writeFile(llm, Buffer.from('GGUF but not really a model'))
    const fake = 'fake-secret-value-5c1d9e'
    const m = await createMesh('mosquitto', { readyPath: '/healthz', hubEnv: { LLM_MODEL: llm, MIRRORMESH_WEBHOOK_SECRET: fake } })
    dirs.push(m.stateDir, m.mosq!.dir)
    const secrets = [m.passwords['hub-main'], m.passwords.kitchen, llm, fake, m.stateDir]
    const hub = `http://127.0.0.1:${m.hub.httpPort}`

    const ask = await cli(['ask', 'what time is it', '--node', 'kitchen', '--url', m.url, '--json'], { MQTT_PASSWORD: m.passwords.kitchen }, { timeoutMs: 40_000 })
    expect(ask.code, ask.stderr).toBe(0)
    const { turnId } = JSON.parse(ask.stdout) as { turnId: number }

    const file = join(dir, 'bug.tar.gz')
    const r = await cli(['bundle', '--turn', String(turnId), '--node', 'kitchen', '--out', file, '--context-s', '300', '--hub', hub])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(new RegExp(`^wrote ${file.replace(/[.]/g, '\\.')}: 1 log record\\(s\\) of turn ${turnId}, \\d+ around it, health, versions, \\d+ setting name\\(s\\)\\n$`))

    const out = join(dir, 'x')
    await mkdir(out)
    await extract({ file, cwd: out })
    const files = await readAll(out)
    const names = Object.keys(files).map((f) => f.split('/').slice(1).join('/')).sort()
    expect(names).toEqual(['README.txt', 'context.jsonl', 'health.json', 'node.json', 'settings.txt', 'status.json', 'turn.jsonl', 'versions.json'])
    const get = (name: string) => Object.entries(files).find(([f]) => f.endsWith(`/${name}`))![1]

    const turn = get('turn.jsonl').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(turn).toHaveLength(1)
    expect(turn[0]).toMatchObject({ msg: 'turn finished', turnId, nodeId: 'kitchen', outcome: 'ok', engines: { asr: 'pocketsphinx', skill: 'time' } })
    expect(turn[0]).not.toHaveProperty('pii')
    expect(get('context.jsonl')).toContain('"msg":"turn finished"')
    expect(JSON.parse(get('health.json'))).toMatchObject({ asr: { state: 'degraded' }, tts: { state: 'degraded' }, llm: { state: 'down' } })
    expect(JSON.parse(get('versions.json'))).toMatchObject({ hub: expect.any(String), node: process.versions.node, cli: expect.any(String) })
    const settings = get('settings.txt').trim().split('\n')
    expect(settings).toEqual(expect.arrayContaining(['MQTT_URL', 'MQTT_USERNAME', 'MQTT_PASSWORD', 'LLM_MODEL', 'MIRRORMESH_WEBHOOK_SECRET', 'MIRRORMESH_STATE_DIR']))
    // The broken model's failure is in the hub's log with its path; the bundle has the setting's name instead.
    // The hub logs where it looked for the sherpa models, inside its state dir: in the bundle
    // the path reads [MIRRORMESH_STATE_DIR]/models/asr.
    expect(m.hub.out.text).toContain(`${m.stateDir}/models/asr`)
    expect(get('context.jsonl')).toContain('[MIRRORMESH_STATE_DIR]/models/asr')

    const everything = [...Object.values(files), r.stdout, r.stderr, ask.stdout, ask.stderr].join('\n')
    for (const s of secrets) expect(everything).not.toContain(s)
  }, 90_000)

  it('says what it knows when no record carries the turn, and exits 1', async () => {
    const m = await createMesh('embedded', { hubEnv: { PIPELINE_ENABLED: 'false' } })
    dirs.push(m.stateDir)
    const r = await cli(['bundle', '--turn', '12345', '--hub', `http://127.0.0.1:${m.hub.httpPort}`])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/no log record carries turn 12345; the hub keeps its last 5000 lines \(oldest: \d{4}-.*\) and forgets them on restart/)
    const bad = await cli(['bundle', '--turn', 'abc'])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toMatch(/a turn id is a number/)
  })
})
