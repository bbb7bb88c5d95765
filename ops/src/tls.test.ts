// `mirrormesh tls init|rotate` as an operator uses them: the chain a node checks, the files and
// their modes, what is printed (never a key), and refusing to overwrite a CA nodes may trust.
import { readFile, stat } from 'node:fs/promises'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect, createServer, type TLSSocket } from 'node:tls'
import { X509Certificate } from 'node:crypto'
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest'
import { tlsFiles, tlsInitCommand, tlsRotateCommand } from './tls.js'

const root = mkdtempSync(join(tmpdir(), 'mm-tls-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))
let n = 0
const fresh = () => join(root, `d${n++}`)

/** Runs a command, returning its exit code and what it printed. */
async function run(fn: () => Promise<number>): Promise<{ code: number; out: string; err: string }> {
  let out = ''
  let err = ''
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => { out += String(s); return true })
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s) => { err += String(s); return true })
  try {
    return { code: await fn(), out, err }
  } finally {
    o.mockRestore()
    e.mockRestore()
  }
}
afterEach(() => vi.restoreAllMocks())

/** A real TLS handshake on 127.0.0.1 with the hub's files, checked against `caPem` for `servername`. */
async function handshake(dir: string, caPem: Buffer, servername: string | undefined): Promise<{ authorized: boolean; error?: string }> {
  const f = tlsFiles(dir)
  const server = createServer({ cert: await readFile(f.cert), key: await readFile(f.key) }, (s) => s.end())
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as { port: number }).port
  try {
    return await new Promise((resolve) => {
      const sock: TLSSocket = connect({ host: '127.0.0.1', port, ca: caPem, ...(servername ? { servername } : {}) }, () => { resolve({ authorized: sock.authorized }); sock.destroy() })
      sock.on('error', (err) => resolve({ authorized: false, error: err.message }))
    })
  } finally {
    await new Promise((r) => server.close(r))
  }
}

describe('mirrormesh tls', () => {
  it('init makes a CA and a hub certificate a node verifies by name and by IP; keys are 0600 and never printed', async () => {
    const dir = fresh()
    const r = await run(() => tlsInitCommand({ dir, name: ['localhost', 'hub.lan'], ip: ['127.0.0.1'] }))
    expect(r.code, r.err).toBe(0)
    const f = tlsFiles(dir)
    for (const key of [f.key, f.caKey]) expect((await stat(key)).mode & 0o777).toBe(0o600)
    const caPem = await readFile(f.ca)
    expect(await handshake(dir, caPem, 'localhost')).toEqual({ authorized: true })
    expect(await handshake(dir, caPem, undefined)).toEqual({ authorized: true }) // IP SAN 127.0.0.1
    // A name the certificate was not made for is refused (hostname verification).
    expect((await handshake(dir, caPem, 'other.lan')).error).toMatch(/altnames|does not match/i)
    const leaf = new X509Certificate(await readFile(f.cert))
    const caCert = new X509Certificate(caPem)
    expect(leaf.verify(caCert.publicKey)).toBe(true)
    expect(caCert.ca).toBe(true)
    expect(leaf.ca).toBe(false)
    expect(leaf.subjectAltName).toBe('DNS:localhost, DNS:hub.lan, IP Address:127.0.0.1')
    expect(r.out).toContain(f.ca)
    expect(r.out).toMatch(/MQTT_TLS_CERT=.*hub\.pem/)
    const keys = await Promise.all([f.key, f.caKey].map((k) => readFile(k, 'utf8')))
    for (const k of keys) expect(r.out + r.err).not.toContain(k.split('\n')[1]!)
    expect(r.out).not.toContain('PRIVATE KEY')
  })

  it('init refuses to overwrite an existing CA without --force, and changes nothing', async () => {
    const dir = fresh()
    await run(() => tlsInitCommand({ dir, name: ['hub.lan'] }))
    const before = await readFile(tlsFiles(dir).ca, 'utf8')
    const r = await run(() => tlsInitCommand({ dir, name: ['hub.lan'] }))
    expect(r.code).toBe(1)
    expect(r.err).toMatch(/already exist.*tls rotate.*--force/)
    expect(await readFile(tlsFiles(dir).ca, 'utf8')).toBe(before)
    const forced = await run(() => tlsInitCommand({ dir, name: ['hub.lan'], force: true }))
    expect(forced.code).toBe(0)
    expect(await readFile(tlsFiles(dir).ca, 'utf8')).not.toBe(before)
  })

  it('init without a name or with a bad address says what to give', async () => {
    expect((await run(() => tlsInitCommand({ dir: fresh() }))).err).toMatch(/at least one --name/)
    expect((await run(() => tlsInitCommand({ dir: fresh(), ip: ['hub.lan'] }))).err).toMatch(/--ip hub\.lan is not an IP address/)
  })

  it('rotate re-issues the hub certificate from the same CA with the same names; --ca makes a new CA that old nodes no longer trust', async () => {
    const dir = fresh()
    await run(() => tlsInitCommand({ dir, name: ['localhost'], ip: ['127.0.0.1'] }))
    const f = tlsFiles(dir)
    const ca1 = await readFile(f.ca)
    const leaf1 = await readFile(f.cert, 'utf8')
    const r = await run(() => tlsRotateCommand({ dir }))
    expect(r.code, r.err).toBe(0)
    expect(r.out).toMatch(/CA certificate \(unchanged\)/)
    expect(r.out).toMatch(/nothing to copy/)
    expect(await readFile(f.ca)).toEqual(ca1)
    const leaf2 = await readFile(f.cert, 'utf8')
    expect(leaf2).not.toBe(leaf1)
    expect(new X509Certificate(leaf2).serialNumber).not.toBe(new X509Certificate(leaf1).serialNumber)
    expect(new X509Certificate(leaf2).subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1')
    expect(await handshake(dir, ca1, 'localhost')).toEqual({ authorized: true })
    expect((await stat(f.key)).mode & 0o777).toBe(0o600)

    const withCa = await run(() => tlsRotateCommand({ dir, ca: true }))
    expect(withCa.code).toBe(0)
    expect(withCa.out).toMatch(/CA certificate \(new\)/)
    const ca2 = await readFile(f.ca)
    expect(ca2).not.toEqual(ca1)
    expect(await handshake(dir, ca2, 'localhost')).toEqual({ authorized: true })
    expect((await handshake(dir, ca1, 'localhost')).authorized).toBe(false)
    expect((await stat(f.caKey)).mode & 0o777).toBe(0o600)
  })

  it('rotate without a CA says to run init first', async () => {
    const r = await run(() => tlsRotateCommand({ dir: fresh(), name: ['hub.lan'] }))
    expect(r.code).toBe(1)
    expect(r.err).toMatch(/no CA .*tls init/)
  })
})
