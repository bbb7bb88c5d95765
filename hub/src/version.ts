import { createRequire } from 'node:module'

const pkg = createRequire(import.meta.url)('../package.json') as { version: string }

export const versions: Record<string, string> = { hub: pkg.version, node: process.versions.node }
