// prom-client's Registry and Counter without its index. The index also loads Gauge, Histogram,
// Summary, the push gateway (http, https), default metrics (perf_hooks, gc observers), cluster
// aggregation and their dependencies: ~10 MB of RSS imported alone, ~0.5 MB of live heap in the
// running agent, which only counts rejected payloads (the rest is Node built-ins fastify loads
// anyway; `BENCH_RSS_IMPORTS=1 npm run bench -- rss`). These are the very classes
// require('prom-client').Registry/.Counter are (one module instance), so they mix freely with
// metrics made from the index (the hub does).
import { createRequire } from 'node:module'
import type * as PromClient from 'prom-client'

const requireCjs = createRequire(import.meta.url)

export const Registry = requireCjs('prom-client/lib/registry') as typeof PromClient.Registry
export type Registry<T extends PromClient.RegistryContentType = PromClient.PrometheusContentType> = PromClient.Registry<T>
export const Counter = requireCjs('prom-client/lib/counter') as typeof PromClient.Counter
export type Counter<T extends string = string> = PromClient.Counter<T>
