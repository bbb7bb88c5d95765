/** Ids used in topic levels: no wildcards, separators or control characters. */
export const idPattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/

export function isValidId(id: string): boolean {
  return idPattern.test(id)
}
