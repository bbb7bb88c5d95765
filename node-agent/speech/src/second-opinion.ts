// A second opinion on a grammar result. A JSGF search always forces speech onto the nearest
// grammar phrase, so its hypothesis alone cannot tell "volume up" from "what is the capital
// of France". The same audio is also decoded by a context-independent phone loop
// (pocketsphinx's `-allphone` with the en-us phone LM that ships with pocketsphinx-en-us):
// free phone sequences, no words. Both decoders print the path score of their hypothesis;
// when the grammar phrase really was said its path scores about as well as the best free
// phone sequence, and when it was forced the phone loop scores far better. The margin per
// 10 ms frame, (grammar - loop) / frames, is the evidence; below the threshold the grammar
// result is not trusted. The CI phone loop costs ~0.1 s of CPU per utterance (the
// context-dependent one is 8x real time here: unusable).
import path from 'node:path'
import { PocketsphinxProcess } from './pocketsphinx-process.js'
import type { SpawnFn } from './spawn-host.js'

export const DEFAULT_MODEL_DIR = '/usr/share/pocketsphinx/model/en-us'

/**
 * Default least margin per frame for a grammar result to be trusted. Chosen on the accuracy
 * set (`npm run bench -- accuracy` prints the trade-off table); see README "Understanding".
 */
export const DEFAULT_MIN_MARGIN = -3

/**
 * The hub's threshold, a little lower. At −3 the hub refused `mirrormesh ask`'s own "what time
 * is it" (espeak-ng en-us resampled by ask: margin −3.96; the same words through sox: +1.5), so
 * it was off by default and every open question became a skill (81 % of them on the set). On the
 * full set −4.5 against −3: right 58.5 % vs 56.0 %, wrong 4.4 vs 3.3 %, out-of-skill firing a
 * skill 16.4 vs 14.3 % (README "Understanding"). The offline recogniser keeps −3.
 */
export const DEFAULT_HUB_MIN_MARGIN = -4.5

/**
 * The hub's least margin for a phrase that changes something (a light, a timer set or cancelled,
 * the volume): a wrong action is worse than "say that again". On the full accuracy set, actions
 * at 0 instead of −4.5: out-of-skill speech firing an action 5.9 % → 1.7 %, wrong 4.6 → 2.9 %,
 * right 58.9 → 53.1 % (README "Understanding"). Answers (time, date, weather) keep the general
 * threshold: a wrong one is heard and asked again. Offline, where a light is refused anyway, −3
 * already kept actions to 2 of 238 open questions, so the offline recogniser does not use it.
 */
export const DEFAULT_ACTION_MIN_MARGIN = 0

/** The threshold a phrase needs: `acts(phrase)` phrases need at least `actionMinMargin` too. */
export function thresholdFor(minMargin: number, actionMinMargin: number | undefined, acts: ((phrase: string) => boolean) | undefined): (phrase: string) => number {
  if (actionMinMargin === undefined || !acts || actionMinMargin <= minMargin) return () => minMargin
  return (phrase) => (acts(phrase) ? actionMinMargin : minMargin)
}

/** Arguments of the phone-loop decoder. */
export function phoneLoopArgs(modelDir = DEFAULT_MODEL_DIR, dictPath?: string): string[] {
  // The loop uses no words, but pocketsphinx loads a dictionary anyway: a small one starts faster.
  return ['-infile', '/dev/stdin', '-hmm', path.join(modelDir, 'en-us'), '-dict', dictPath ?? path.join(modelDir, 'cmudict-en-us.dict'),
    '-allphone', path.join(modelDir, 'en-us-phone.lm.bin'), '-allphone_ci', 'yes', '-backtrace', 'yes']
}

const HYP_LINE = /pocketsphinx\.c\(\d+\): (.*) \((-?\d+)\)\s*$/

/** The path scores of the hypotheses in a pocketsphinx log (one per utterance), summed; undefined if none. */
export function hypothesisScore(log: string): number | undefined {
  let sum: number | undefined
  for (const line of log.split('\n')) {
    const m = HYP_LINE.exec(line)
    if (m && m[1]!.trim()) sum = (sum ?? 0) + Number(m[2])
  }
  return sum
}

/** (grammar - loop) per 10 ms frame of `samples` 16 kHz samples. */
export function marginPerFrame(grammarScore: number, loopScore: number, samples: number): number {
  return (grammarScore - loopScore) / Math.max(1, samples / 160)
}

export interface PhoneLoopOptions {
  bin: string
  modelDir?: string
  /** Pronunciation dictionary to load (default the model's cmudict; any small one will do). */
  dictPath?: string
  signal: AbortSignal
  timeoutMs?: number
  spawn?: SpawnFn
}

/** One phone-loop decoder for one utterance: write the same audio as the grammar decoder, then score(). */
export class PhoneLoop {
  private readonly proc: PocketsphinxProcess
  private samples = 0

  constructor(opts: PhoneLoopOptions) {
    this.proc = new PocketsphinxProcess({ bin: opts.bin, args: phoneLoopArgs(opts.modelDir, opts.dictPath), signal: opts.signal,
      timeoutMs: opts.timeoutMs ?? 10_000, keepLog: true, ...(opts.spawn ? { spawn: opts.spawn } : {}) })
  }

  write(pcm: Int16Array): void {
    this.samples += pcm.length
    this.proc.write(pcm)
  }

  get sampleCount(): number {
    return this.samples
  }

  /** The loop's path score, or undefined when it found nothing (silence) or failed. */
  async score(): Promise<number | undefined> {
    try {
      const { log } = await this.proc.finish()
      return hypothesisScore(log ?? '')
    } catch {
      return undefined
    }
  }

  kill(): void {
    this.proc.kill()
  }
}

export interface Verdict {
  /** (grammar - loop) per frame; undefined when either score is missing. */
  margin: number | undefined
  trusted: boolean
}

/**
 * The verdict on a grammar result. A missing loop score (the loop failed) does not veto:
 * the grammar result stands as it did before the check existed, and the caller logs it.
 */
export function judgeMargin(grammarScore: number | undefined, loopScore: number | undefined, samples: number, minMargin: number): Verdict {
  if (grammarScore === undefined || loopScore === undefined) return { margin: undefined, trusted: grammarScore !== undefined }
  const margin = marginPerFrame(grammarScore, loopScore, samples)
  return { margin: Math.round(margin * 100) / 100, trusted: margin >= minMargin }
}
