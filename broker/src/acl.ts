// ACL derived from the topic contract. Hub: everything. Node: publish only what the
// contract lets a node publish, under its own id; subscribe only to what it reads.
// Observer (dashboards): read everything under the base, publish nothing.
import { filterFor, parseTopic, topics, type Role, type TopicDef, type TopicName } from './contract.js'

export interface Principal { role: Role; id: string }

export function canPublish(base: string, who: Principal, topic: string): boolean {
  if (who.role === 'hub') return true
  if (who.role !== 'node') return false
  const parsed = parseTopic(base, topic)
  if (!parsed || parsed.params.node !== who.id) return false
  const def: TopicDef = topics[parsed.name]
  return def.publishers.includes('node')
}

/** Filters a node may subscribe to; wildcards in them are the widest it may ask for. */
export function nodeReadFilters(base: string, nodeId: string): string[] {
  return (Object.entries(topics) as [TopicName, TopicDef][])
    .filter(([, def]) => def.nodeReads)
    .map(([name]) => filterFor(base, name, { node: nodeId }))
}

/** True when every topic that `filter` can match is also matched by `allowed`. */
export function filterCovers(allowed: string, filter: string): boolean {
  const a = allowed.split('/')
  const f = filter.split('/')
  for (let i = 0; i < a.length; i++) {
    const al = a[i]!
    if (al === '#') return true
    const fl = f[i]
    if (fl === undefined) return false
    if (fl === '#') return false
    if (al === '+') continue
    if (fl === '+' || fl !== al) return false
  }
  return f.length === a.length
}

export function canSubscribe(base: string, who: Principal, filter: string): boolean {
  if (who.role === 'hub') return true
  if (who.role === 'observer') return filterCovers(`${base}/#`, filter)
  return nodeReadFilters(base, who.id).some((allowed) => filterCovers(allowed, filter))
}

/** Client ids a node may use: `node-{id}` or `node-{id}/anything`, so one node cannot take over another's session. */
export function clientIdAllowed(who: Principal, clientId: string): boolean {
  if (who.role !== 'node') return true
  return clientId === `node-${who.id}` || clientId.startsWith(`node-${who.id}/`)
}
