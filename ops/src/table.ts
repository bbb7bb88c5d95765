import { forTerminal } from '@mirrormesh/broker'

/**
 * Plain aligned columns for terminal output. Every cell goes through forTerminal: values come
 * from nodes over MQTT, and a `versions` string with escape sequences could retitle or clear
 * the operator's terminal.
 */
export function renderTable(header: string[], rows: string[][]): string {
  const safe = rows.map((r) => r.map((c) => forTerminal(c)))
  const widths = header.map((h, i) => Math.max(h.length, ...safe.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()
  return [line(header), ...safe.map(line)].join('\n') + '\n'
}
