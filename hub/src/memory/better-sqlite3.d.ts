// The few better-sqlite3 12 calls the memory store uses (the package ships no types and
// @types/better-sqlite3 is not installed).
declare module 'better-sqlite3' {
  interface RunResult { changes: number; lastInsertRowid: number | bigint }
  interface Statement {
    run(...params: unknown[]): RunResult
    get(...params: unknown[]): unknown
    all(...params: unknown[]): unknown[]
  }
  interface Options { readonly?: boolean; fileMustExist?: boolean; timeout?: number }
  class Database {
    constructor(path: string, options?: Options)
    prepare(sql: string): Statement
    exec(sql: string): this
    pragma(source: string, options?: { simple?: boolean }): unknown
    transaction<F extends (...args: never[]) => unknown>(fn: F): F
    loadExtension(path: string, entryPoint?: string): this
    close(): this
    readonly open: boolean
  }
  export default Database
}
