// The accuracy evaluation set: generated, never committed as audio. Requests are written as
// intents with several wordings and slots; each is spoken by voices the project's tests do not
// use (test/support/voice.ts and the other benches use espeak en-us, en, en+f3, en-us+m3,
// en-gb-x-rp), from two synthesizers Debian ships (espeak-ng, flite), each utterance with one of
// four acoustic variants (clean, -18 dB gain, white noise at 15 dB SNR, room reverb via sox).
// Audio is cached under $ACCURACY_CACHE (default $TMPDIR/mirrormesh-accuracy-cache) so a
// rerun synthesizes nothing.
//
// Run alone to list the set: `node test/bench/accuracy-set.mjs [--quick]`.
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** Voices: synthesizer + voice. None of them is used by a test. */
export const VOICES = [
  { id: 'espeak:en-gb-scotland', synth: 'espeak', voice: 'en-gb-scotland', wpm: 165 },
  { id: 'espeak:en-029', synth: 'espeak', voice: 'en-029', wpm: 155 },
  { id: 'espeak:en-us+f4', synth: 'espeak', voice: 'en-us+f4', wpm: 175 },
  { id: 'flite:slt', synth: 'flite', voice: 'slt' },
  { id: 'flite:rms', synth: 'flite', voice: 'rms' },
  { id: 'flite:awb', synth: 'flite', voice: 'awb' },
  { id: 'flite:kal16', synth: 'flite', voice: 'kal16' },
]
export const QUICK_VOICES = ['espeak:en-029', 'flite:slt', 'flite:awb']
export const VARIANTS = ['clean', 'quiet', 'noise', 'reverb']

const ROOMS = ['kitchen', 'bedroom', 'living room', 'office', 'bathroom', 'hall']
const NUMS = [['five', 5], ['ten', 10], ['three', 3], ['twenty', 20], ['fifteen', 15], ['two', 2]]

// Intents: the expected effect (what a user would notice) and several wordings. `{room}`,
// `{state}`, `{n}` are filled in rotation so each request is one concrete sentence.
const INTENTS = [
  { expect: 'time', say: ['what time is it', 'what is the time', 'tell me the time', "what's the time now", 'do you know what time it is', 'what time is it right now'] },
  { expect: 'date', say: ['what is the date', 'what day is it', "what's today's date", 'what is the date today', 'which day is it today', 'what day of the week is it'] },
  { expect: 'light:{state}:{room}', say: ['turn {state} the {room} light', 'switch {state} the {room} lights', 'turn the {room} light {state}',
    'switch the {room} lights {state}', 'can you turn {state} the {room} light', 'please turn {state} the {room} lights', 'lights {state} in the {room}',
    'turn {state} the light in the {room}', 'put the {room} light {state}', 'turn {state} the {room} light please'] },
  { expect: 'timer:{n}', say: ['set a timer for {n} minutes', 'set a {n} minute timer', 'start a timer for {n} minutes', 'timer for {n} minutes',
    'can you set a timer for {n} minutes', 'count down {n} minutes'] },
  { expect: 'timer_cancel', say: ['cancel the timer', 'cancel all timers', 'stop the timer', 'delete my timer'] },
  { expect: 'timer_status', say: ['how long is left', 'how much time is left on the timer', 'which timers are running'] },
  { expect: 'volume:up', say: ['volume up', 'turn it up', 'make it louder', 'louder please', 'turn the volume up'] },
  { expect: 'volume:down', say: ['volume down', 'turn it down', 'make it quieter', 'quieter please', 'turn the volume down'] },
  { expect: 'volume:={n}', say: ['set the volume to {n}', 'volume {n}', 'change the volume to {n}'] },
  { expect: 'stop', say: ['stop', 'cancel', 'never mind', 'be quiet', 'stop talking', 'quiet please'] },
  { expect: 'presence', say: ['are you there', 'hello mirror', 'can you hear me', 'are you listening', 'hello are you there'] },
  { expect: 'weather', say: ['what is the weather', 'what is the weather like', 'how is the weather', "what's the weather like today", 'how is the weather outside'] },
]

// No skill covers these: open questions, chit-chat, near misses (other devices, rooms not in the
// house, other times), and memory requests (their own intent comes with the memory module).
const OUT_OF_SKILL = [
  'what is the capital of france', 'how tall is mount everest', 'who wrote romeo and juliet', 'what is two plus two',
  'tell me a joke', 'how do i make pancakes', 'why is the sky blue', 'what should i cook for dinner',
  'tell me about the roman empire', 'who won the football game last night', 'how far away is the moon', 'what does a fox say',
  'good morning how are you', 'thank you very much', 'i am feeling tired today', 'that was funny',
  'play some music', 'read me the news', 'call my mother', 'order a pizza',
  'open the garage door', 'turn on the television', 'lock the front door', 'turn on the porch light',
  'turn on the kitchen fan', 'what is the weather like tomorrow', 'set an alarm for seven in the morning', 'turn up the heating',
  'remember that my keys are in the drawer', 'what did i tell you about my keys', 'forget that', 'remind me to buy milk',
  'remember to water the plants', 'where did i put my glasses',
]

/** Every request of the set: { text, expect } with expect null for out-of-skill. */
export function requests({ quick = false } = {}) {
  const out = []
  let k = 0
  for (const intent of INTENTS) {
    // Lights get more requests: rooms are where confusions happen.
    const copies = intent.expect.startsWith('light') ? 2 : 1
    for (let c = 0; c < copies; c++) {
      for (const w of intent.say) {
        const room = ROOMS[k % ROOMS.length]
        const state = k % 2 ? 'off' : 'on'
        const [nw, n] = NUMS[k % NUMS.length]
        k++
        const fill = (s, num) => s.replaceAll('{room}', room).replaceAll('{state}', state).replaceAll('{n}', String(num))
        out.push({ text: fill(w, nw), expect: fill(intent.expect, n) })
      }
    }
  }
  for (const text of OUT_OF_SKILL) out.push({ text, expect: null })
  // --quick: every third request (all intents and kinds still appear).
  return quick ? out.filter((_, i) => i % 3 === 0) : out
}

/** The set: every request spoken by every voice, each with one variant (rotating). */
export function evaluationSet({ quick = false } = {}) {
  const voices = quick ? VOICES.filter((v) => QUICK_VOICES.includes(v.id)) : VOICES
  const items = []
  requests({ quick }).forEach((r, i) => {
    voices.forEach((v, j) => items.push({ ...r, voice: v, variant: VARIANTS[(i + j) % VARIANTS.length] }))
  })
  return items
}

export const cacheDir = () => process.env.ACCURACY_CACHE || join(tmpdir(), 'mirrormesh-accuracy-cache')

function run(cmd, args, input) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] })
    const out = []
    const err = []
    p.stdout.on('data', (c) => out.push(c))
    p.stderr.on('data', (c) => err.push(c))
    p.on('error', reject)
    p.on('close', (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`${cmd} exited ${code}: ${Buffer.concat(err).toString().slice(-300)}`))))
    p.stdin.on('error', () => {})
    p.stdin.end(input)
  })
}

/** Deterministic white noise at `snrDb` under the speech's RMS (mulberry32 PRNG). */
function addNoise(pcm, snrDb, seed) {
  let s = 0
  for (const x of pcm) s += x * x
  const rms = Math.sqrt(s / Math.max(1, pcm.length))
  const amp = rms / 10 ** (snrDb / 20) * Math.sqrt(3) // uniform noise: RMS = amp / sqrt(3)
  let a = seed >>> 0
  const rnd = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const out = new Int16Array(pcm.length)
  for (let i = 0; i < pcm.length; i++) out[i] = Math.max(-32768, Math.min(32767, Math.round(pcm[i] + (rnd() * 2 - 1) * amp)))
  return out
}

/**
 * 16 kHz mono PCM16 of one item: 300 ms of room silence before and after the speech (a node's
 * pre-roll and its end-of-speech tail), the variant applied. Cached by content.
 */
export async function audioOf(item) {
  const key = createHash('sha1').update(JSON.stringify([item.text, item.voice, item.variant, 2])).digest('hex').slice(0, 16)
  const dir = cacheDir()
  const file = join(dir, `${key}.raw`)
  if (existsSync(file)) {
    const b = readFileSync(file)
    return new Int16Array(b.buffer, b.byteOffset, b.length >> 1)
  }
  mkdirSync(dir, { recursive: true })
  const { voice } = item
  const wav = voice.synth === 'espeak'
    ? await run('espeak-ng', ['-v', voice.voice, '-s', String(voice.wpm ?? 160), '--stdout', item.text])
    : await run('sh', ['-c', 'f=$(mktemp --suffix .wav) && flite -voice "$1" -t "$2" -o "$f" && cat "$f"; r=$?; rm -f "$f"; exit $r', 'sh', voice.voice, item.text])
  const effects = { clean: [], quiet: ['gain', '-18'], noise: [], reverb: ['reverb', '60', '50', '80', 'gain', '-3'] }[item.variant]
  const raw = await run('sox', ['-t', 'wav', '-', '-t', 'raw', '-r', '16000', '-e', 'signed', '-b', '16', '-c', '1', '-', 'pad', '0.3', '0.3', ...effects], wav)
  let pcm = new Int16Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length - (raw.length % 2)))
  if (item.variant === 'noise') pcm = addNoise(pcm, 15, parseInt(key.slice(0, 8), 16))
  writeFileSync(`${file}.tmp`, Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength))
  renameSync(`${file}.tmp`, file)
  return pcm
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const quick = process.argv.includes('--quick')
  const reqs = requests({ quick })
  const set = evaluationSet({ quick })
  console.log(`${reqs.filter((r) => r.expect).length} skill requests, ${reqs.filter((r) => !r.expect).length} out-of-skill; ${set.length} utterances`)
  for (const r of reqs) console.log(`${r.expect ?? '(none)'}\t${r.text}`)
}
