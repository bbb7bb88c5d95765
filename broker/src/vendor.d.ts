declare module 'aedes-persistence-level' {
  import type { Level } from 'level'
  const persistence: (db: Level<string, Buffer>) => unknown
  export default persistence
}
