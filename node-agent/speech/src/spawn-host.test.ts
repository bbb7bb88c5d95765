import { afterAll, describe, expect, it } from 'vitest'
import { once } from 'node:events'
import { SpawnHost } from './spawn-host.js'
import { killGroup } from './proc.js'

const host = new SpawnHost()
afterAll(() => host.close())

describe('SpawnHost', () => {
  it('relays stdin to stdout and reports the exit code', async () => {
    const child = host.spawn('/bin/sh', ['-c', 'cat; echo err >&2; exit 3'])
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (b: Buffer) => out.push(b))
    child.stderr.on('data', (b: Buffer) => err.push(b))
    child.stdin.write(Buffer.from('hello '))
    child.stdin.end('world')
    const [code] = await once(child, 'close')
    expect(code).toBe(3)
    expect(child.exitCode).toBe(3)
    expect(Buffer.concat(out).toString()).toBe('hello world')
    expect(Buffer.concat(err).toString()).toBe('err\n')
    expect(child.pid).toBeGreaterThan(0)
  })

  it('pipes one child into another and iterates stdout', async () => {
    const a = host.spawn('/bin/sh', ['-c', 'printf abc'])
    const b = host.spawn('/bin/cat', [])
    a.stdout.pipe(b.stdin)
    let text = ''
    for await (const chunk of b.stdout as AsyncIterable<Buffer>) text += chunk.toString()
    expect(text).toBe('abc')
  })

  it('emits error for a missing binary', async () => {
    const child = host.spawn('/nonexistent/bin', [])
    const [err] = await once(child, 'error')
    expect((err as NodeJS.ErrnoException).code).toBe('ENOENT')
  })

  it('kills a detached child as a group, also before its pid is known', async () => {
    const child = host.spawn('/bin/sh', ['-c', 'sleep 30 | cat'], { detached: true })
    killGroup(child)
    const [, signal] = await once(child, 'close')
    expect(signal).toBe('SIGKILL')
  })
})
