// The hub package, loaded on demand by the commands that run or inspect the hub.
// ops/package.json deliberately does not list @mirrormesh/hub in any dependency field: npm then
// installs the hub and its engines (node-llama-cpp, …) into a mirror's `npm ci -w
// @mirrormesh/node-agent -w @mirrormesh/ops` — measured for devDependencies, even with
// --omit=dev; for an optional peer dependency see commit 5f3422c. What declares it instead:
// ops/tsconfig.json's project reference (types, build order) and the lint rule in
// eslint.config.js that allows only type imports of it in ops/src, besides this file.
// On a mirror the import fails, and this says why and what to do.
type HubModule = typeof import('@mirrormesh/hub')

export class HubMissingError extends Error {
  readonly code = 'HUB_NOT_INSTALLED'
}

export async function importHub(command: string): Promise<HubModule> {
  try {
    return await import('@mirrormesh/hub')
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    if (e.code !== 'ERR_MODULE_NOT_FOUND' || !e.message.startsWith("Cannot find package '@mirrormesh/hub'")) throw err
    throw new HubMissingError(`\`mirrormesh ${command}\` needs the hub package (@mirrormesh/hub), which this install left out ` +
      '(a mirror node installs only the agent and the CLI). Fix: run it on the hub machine, or install everything there: `npm ci && npm run build`.')
  }
}
