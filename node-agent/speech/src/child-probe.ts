// onnxruntime inside sherpa-onnx aborts the whole process on a wrong-kind or corrupt model,
// with no exception to catch. So a model is first loaded and run once in a short-lived
// child process; only if that exits cleanly may the caller load it in its own process.
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { TailBuffer } from './proc.js'
import { EngineError } from './types.js'

/** Absolute path of sherpa-onnx-node, for scripts run with `node -e`. */
export function sherpaPath(): string {
  return createRequire(import.meta.url).resolve('sherpa-onnx-node')
}

/**
 * Runs `script` (CommonJS, `SHERPA_PATH` defined) with `args` in a child Node; it must print
 * exactly `ok` and exit 0. Otherwise rejects with EngineError('model_invalid') naming `what`,
 * how the child ended, and the last line it wrote to stderr.
 */
export async function probeInChild(what: string, script: string, args: string[], timeoutMs = 120_000): Promise<void> {
  const js = `const SHERPA_PATH = ${JSON.stringify(sherpaPath())}\n${script}`
  const child = spawn(process.execPath, ['-e', js, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  const err = new TailBuffer()
  let out = ''
  child.stdout.on('data', (b: Buffer) => (out += b.toString()))
  child.stderr.on('data', (b: Buffer) => err.push(b))
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const [code, sig] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
    child.on('error', () => resolve([null, null]))
    child.on('close', (c, s) => resolve([c, s]))
  }).finally(() => clearTimeout(timer))
  if (code === 0 && out === 'ok') return
  const how = sig ? `killed by ${sig}` : `exit ${code}`
  throw new EngineError('model_invalid', `${what} failed to load (${how}): ${err.reason() || 'no message'}`)
}
