// `mirrormesh tls init|rotate`: a small local CA for the LAN. The hub serves MQTT/TLS and HTTPS
// with hub.pem; nodes and browsers trust ca.pem. ECDSA P-256, made with @peculiar/x509 on Node's
// webcrypto, so no openssl is needed on the hub. Keys are written 0600 and never printed.
import 'reflect-metadata' // @peculiar/x509's ASN.1 schemas need it loaded first
import * as x509 from '@peculiar/x509'
import { createPrivateKey, randomBytes, webcrypto } from 'node:crypto'
import { existsSync } from 'node:fs'
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { isIP } from 'node:net'
import { join, resolve } from 'node:path'

type CryptoKey = webcrypto.CryptoKey
type CryptoKeyPair = webcrypto.CryptoKeyPair
x509.cryptoProvider.set(webcrypto as never) // the library types it with the DOM Crypto, which is not in our lib
const subtle = webcrypto.subtle
const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const
const DAY_MS = 86_400_000
/** A home CA outlives many hub certificates; a leaf is re-issued with one command (rotate). */
export const CA_DAYS = 3650
export const LEAF_DAYS = 825

export interface TlsFiles { dir: string; ca: string; caKey: string; cert: string; key: string }

export function tlsFiles(dir: string): TlsFiles {
  const d = resolve(dir)
  return { dir: d, ca: join(d, 'ca.pem'), caKey: join(d, 'ca-key.pem'), cert: join(d, 'hub.pem'), key: join(d, 'hub-key.pem') }
}

/** Default folder: <MIRRORMESH_STATE_DIR>/tls, where the shipped hub.env points MQTT_TLS_CERT/KEY. */
export function defaultTlsDir(env: Record<string, string | undefined> = process.env): string {
  return join(env.MIRRORMESH_STATE_DIR || '.state/hub', 'tls')
}

const serial = () => '01' + randomBytes(15).toString('hex') // positive, 16 bytes

async function keyPem(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await subtle.exportKey('pkcs8', key), 'PRIVATE KEY')
}

async function importSigningKey(pem: string): Promise<CryptoKey> {
  const der = createPrivateKey(pem).export({ format: 'der', type: 'pkcs8' })
  return subtle.importKey('pkcs8', der, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign'])
}

function generalNames(names: string[], ips: string[]): x509.JsonGeneralNames {
  return [...names.map((value) => ({ type: 'dns' as const, value })), ...ips.map((value) => ({ type: 'ip' as const, value }))]
}

export async function makeCa(commonName = 'mirrormesh local CA'): Promise<{ cert: x509.X509Certificate; keys: CryptoKeyPair }> {
  const keys = await subtle.generateKey(alg, true, ['sign', 'verify']) as CryptoKeyPair
  const now = Date.now()
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(), name: `CN=${commonName}`, keys, signingAlgorithm: alg,
    notBefore: new Date(now - 60_000), notAfter: new Date(now + CA_DAYS * DAY_MS),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  })
  return { cert, keys }
}

export async function makeLeaf(ca: { cert: x509.X509Certificate; key: CryptoKey }, names: string[], ips: string[]): Promise<{ cert: x509.X509Certificate; keys: CryptoKeyPair }> {
  const keys = await subtle.generateKey(alg, true, ['sign', 'verify']) as CryptoKeyPair
  const now = Date.now()
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(), subject: `CN=${names[0] ?? ips[0] ?? 'mirrormesh hub'}`, issuer: ca.cert.subject,
    publicKey: keys.publicKey, signingKey: ca.key, signingAlgorithm: alg,
    notBefore: new Date(now - 60_000), notAfter: new Date(now + LEAF_DAYS * DAY_MS),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension(generalNames(names, ips), false),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  })
  return { cert, keys }
}

/** Written via a temp file and rename, so a crash never leaves half a key; keys 0600. */
async function put(path: string, text: string, mode: number): Promise<void> {
  const tmp = `${path}.tmp-${randomBytes(4).toString('hex')}`
  await writeFile(tmp, text, { mode })
  await chmod(tmp, mode)
  await rename(tmp, path)
}

function checkNames(names: string[], ips: string[]): string | undefined {
  if (names.length + ips.length === 0) return 'give at least one --name (e.g. hub.lan) or --ip: nodes check the hub\'s certificate against the name in their MQTT_URL'
  const badIp = ips.find((ip) => isIP(ip) === 0)
  if (badIp) return `--ip ${badIp} is not an IP address`
  const badName = names.find((n) => !/^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$/.test(n))
  if (badName) return `--name ${badName} is not a host name`
  return undefined
}

export interface TlsInitOptions { dir?: string; name?: string[]; ip?: string[]; force?: boolean }

function sansOf(cert: x509.X509Certificate): { names: string[]; ips: string[] } {
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension)
  const all = san?.names.toJSON() ?? []
  return { names: all.filter((n) => n.type === 'dns').map((n) => n.value), ips: all.filter((n) => n.type === 'ip').map((n) => n.value) }
}

function describe(files: TlsFiles, cert: x509.X509Certificate, caChanged: boolean): string {
  const { names, ips } = sansOf(cert)
  return [
    `hub certificate for ${[...names, ...ips].join(', ')} (valid until ${cert.notAfter.toISOString().slice(0, 10)})`,
    `  ${files.cert}`,
    `  ${files.key} (private, 0600)`,
    caChanged ? `CA certificate (new): ${files.ca}` : `CA certificate (unchanged): ${files.ca}`,
    `  ${files.caKey} (private, 0600: keep it on the hub; only \`mirrormesh tls rotate\` needs it)`,
    '',
    'Next:',
    `  hub.env:   MQTT_TLS_CERT=${files.cert}`,
    `             MQTT_TLS_KEY=${files.key}`,
    '             then restart the hub (systemctl restart mirrormesh-hub)',
    ...(caChanged
      ? [`  each node: copy ${files.ca} to /etc/mirrormesh/ca.pem, set MQTT_CA=/etc/mirrormesh/ca.pem and MQTT_URL=mqtts://${names[0] ?? ips[0]}:8883`,
        '  browsers:  import ca.pem as a trusted authority to open https://<hub>:8443']
      : ['  nodes keep their ca.pem: nothing to copy']),
    '',
  ].join('\n')
}

export async function tlsInitCommand(opts: TlsInitOptions): Promise<number> {
  const files = tlsFiles(opts.dir ?? defaultTlsDir())
  const names = opts.name ?? []
  const ips = opts.ip ?? []
  const bad = checkNames(names, ips)
  if (bad) {
    process.stderr.write(`mirrormesh tls init: ${bad}\n`)
    return 2
  }
  const existing = [files.ca, files.caKey, files.cert, files.key].filter((f) => existsSync(f))
  if (existing.length && !opts.force) {
    process.stderr.write(`mirrormesh tls init: ${existing.join(', ')} already exist${existing.length === 1 ? 's' : ''}; nodes may trust that CA. Use \`mirrormesh tls rotate\` for a new hub certificate, or --force to start over (every node then needs the new ca.pem).\n`)
    return 1
  }
  await mkdir(files.dir, { recursive: true, mode: 0o700 })
  const ca = await makeCa()
  const leaf = await makeLeaf({ cert: ca.cert, key: ca.keys.privateKey }, names, ips)
  await put(files.caKey, await keyPem(ca.keys.privateKey), 0o600)
  await put(files.ca, ca.cert.toString('pem') + '\n', 0o644)
  await put(files.key, await keyPem(leaf.keys.privateKey), 0o600)
  await put(files.cert, leaf.cert.toString('pem') + '\n', 0o644)
  process.stdout.write(describe(files, leaf.cert, true))
  return 0
}

export interface TlsRotateOptions { dir?: string; name?: string[]; ip?: string[]; ca?: boolean }

export async function tlsRotateCommand(opts: TlsRotateOptions): Promise<number> {
  const files = tlsFiles(opts.dir ?? defaultTlsDir())
  const fail = (msg: string, code = 1) => { process.stderr.write(`mirrormesh tls rotate: ${msg}\n`); return code }
  let ca: { cert: x509.X509Certificate; key: CryptoKey }
  let names = opts.name ?? []
  let ips = opts.ip ?? []
  if (!opts.name && !opts.ip) {
    if (!existsSync(files.cert)) return fail(`${files.cert} does not exist: give --name/--ip, or run \`mirrormesh tls init\` first`)
    ;({ names, ips } = sansOf(new x509.X509Certificate(await readFile(files.cert, 'utf8'))))
  }
  const bad = checkNames(names, ips)
  if (bad) return fail(bad, 2)
  if (opts.ca) {
    const made = await makeCa()
    ca = { cert: made.cert, key: made.keys.privateKey }
    await put(files.caKey, await keyPem(made.keys.privateKey), 0o600)
    await put(files.ca, made.cert.toString('pem') + '\n', 0o644)
  } else {
    if (!existsSync(files.ca) || !existsSync(files.caKey)) return fail(`no CA in ${files.dir} (ca.pem and ca-key.pem): run \`mirrormesh tls init\` first, or pass --ca to make a new one`)
    try {
      ca = { cert: new x509.X509Certificate(await readFile(files.ca, 'utf8')), key: await importSigningKey(await readFile(files.caKey, 'utf8')) }
    } catch (err) {
      return fail(`cannot read the CA in ${files.dir}: ${(err as Error).message.split('\n')[0]}`)
    }
  }
  const leaf = await makeLeaf(ca, names, ips)
  await put(files.key, await keyPem(leaf.keys.privateKey), 0o600)
  await put(files.cert, leaf.cert.toString('pem') + '\n', 0o644)
  process.stdout.write(describe(files, leaf.cert, Boolean(opts.ca)))
  return 0
}
