import { CredentialStore, defaultCredentialsPath, type Role } from '@mirrormesh/broker'

function store(file: string | undefined): CredentialStore {
  return new CredentialStore(file ?? defaultCredentialsPath(process.env))
}

export async function nodeAddCommand(id: string, opts: { credentialsFile?: string; role: Role; replace?: boolean }): Promise<number> {
  const s = store(opts.credentialsFile)
  try {
    const password = await s.add(id, opts.role, { replace: opts.replace })
    process.stdout.write(`created ${opts.role} credentials for ${id} in ${s.path}\n` +
      `password (shown once, store it in the node's env file as MQTT_PASSWORD):\n${password}\n`)
    return 0
  } catch (err) {
    process.stderr.write(`mirrormesh node add: ${(err as Error).message}\n`)
    return 1
  }
}

export async function nodeRemoveCommand(id: string, opts: { credentialsFile?: string }): Promise<number> {
  const s = store(opts.credentialsFile)
  if (await s.remove(id)) {
    process.stdout.write(`removed ${id}; its next connection attempt is refused\n`)
    return 0
  }
  process.stderr.write(`mirrormesh node remove: no credentials for ${id} in ${s.path}\n`)
  return 1
}

export async function nodeListCommand(opts: { credentialsFile?: string; json?: boolean }): Promise<number> {
  const s = store(opts.credentialsFile)
  await s.refresh()
  const rows = s.list()
  if (opts.json) process.stdout.write(JSON.stringify(rows, null, 2) + '\n')
  else for (const r of rows) process.stdout.write(`${r.id}\t${r.role}\t${r.createdAt}\n`)
  return 0
}
