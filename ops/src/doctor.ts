// Validate configuration and the things start-up would trip on; report all problems.
import { constants } from 'node:fs'
import { access, mkdir } from 'node:fs/promises'
import { ConfigError, CredentialStore } from '@mirrormesh/broker'
import { importHub } from './hub.js'

export async function doctorCommand(opts: { role?: 'hub' | 'agent' }): Promise<number> {
  const role = opts.role ?? (process.env.NODE_ID ? 'agent' : 'hub')
  const problems: string[] = []
  try {
    if (role === 'hub') {
      // Imported on demand: a mirror node installs without the hub package.
      const { loadHubConfig } = await importHub('doctor --role hub')
      const cfg = loadHubConfig(process.env)
      try {
        await mkdir(cfg.stateDir, { recursive: true })
        await access(cfg.stateDir, constants.W_OK)
      } catch (err) {
        problems.push(`MIRRORMESH_STATE_DIR ${cfg.stateDir} is not writable (${(err as Error).message}). Fix: create it and give the hub's user write access.`)
      }
      try {
        await new CredentialStore(cfg.credentialsFile).refresh()
      } catch (err) {
        problems.push(`CREDENTIALS_FILE ${cfg.credentialsFile} is unreadable (${(err as Error).message}). Fix: restore it from backup or move it away and re-add nodes.`)
      }
    } else {
      const { agentProblems, loadAgentConfig } = await import('@mirrormesh/node-agent')
      problems.push(...(await agentProblems(loadAgentConfig(process.env))))
    }
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    problems.push(...err.problems)
  }
  if (problems.length === 0) {
    process.stdout.write(`mirrormesh doctor (${role}): configuration OK\n`)
    return 0
  }
  process.stdout.write(`mirrormesh doctor (${role}): ${problems.length} problem${problems.length === 1 ? '' : 's'}\n${problems.map((p) => `  - ${p}`).join('\n')}\n`)
  return 1
}
