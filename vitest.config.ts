import { defineConfig } from 'vitest/config'

// The fault suite and the fuzz tests kill hubs, flood brokers and reconnect hundreds of clients:
// they get a project of their own, run one file at a time, so they never race the rest.
const serial = ['test/faults/**/*.test.ts', 'test/fuzz/**/*.test.ts']

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Fault tests start real hubs, agents and brokers; two cores cannot run many at once.
    fileParallelism: false,
    // The JSON report is what .ci/run counts passed/failed from (one report for all projects).
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results/vitest.json' },
    projects: [
      {
        extends: true,
        test: {
          name: 'default',
          include: ['**/src/**/*.test.ts', 'test/**/*.test.ts'],
          exclude: ['**/node_modules/**', '**/dist/**', 'test/bench/**', ...serial],
        },
      },
      {
        extends: true,
        test: {
          name: 'faults',
          include: serial,
          exclude: ['**/node_modules/**', '**/dist/**'],
          testTimeout: 120_000,
          hookTimeout: 60_000,
          fileParallelism: false,
          // A later group: it starts once the default project has finished, never alongside it.
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
})
