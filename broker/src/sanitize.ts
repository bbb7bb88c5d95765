// Strings from the wire, made safe to show. Control characters (C0, DEL, C1: terminal escape
// sequences start with ESC or CSI), NUL, and the bidi overrides/isolates that reorder what an
// operator reads ("Trojan Source") are refused by the contract's schemas and replaced here
// wherever text from a node reaches a terminal or a log line.

/** Characters no id, room, name or version may contain. */
// eslint-disable-next-line no-control-regex
export const unsafeChars = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069\u061c\ufeff\u2028\u2029]/

const unsafeGlobal = new RegExp(unsafeChars.source, 'g')

/** True when `s` has no control, NUL or bidi-override characters. */
export function isPrintable(s: string): boolean {
  return !unsafeChars.test(s)
}

/** `s` with every unsafe character shown as a visible escape (`\u001b`), so nothing acts on the terminal. */
export function forTerminal(s: string): string {
  return s.replace(unsafeGlobal, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

/** Like forTerminal, also cut to `max` characters (for log fields). */
export function forLog(s: string, max = 64): string {
  const safe = forTerminal(s)
  return safe.length > max ? `${safe.slice(0, max)}…` : safe
}
