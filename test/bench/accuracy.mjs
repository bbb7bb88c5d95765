// `bench accuracy`: what the assistant understands, on a generated set the tests never use
// (accuracy-set.mjs: skill requests in several wordings, out-of-skill requests, 7 voices from
// espeak-ng and flite, clean / quiet / noisy / reverberant). Each utterance is decoded by the
// engines the product runs, with the grammar the product generates from its skills:
//   hub   PocketsphinxAsr (the hub's fallback ASR without a sherpa model), grammar from
//         builtinSkills(); its transcript goes through the SkillMatcher as on the hub. Shown
//         without and with the second opinion (phone-loop margin, second-opinion.ts): answers
//         need the hub's margin, phrases that change something (actsOn) the action margin.
//   node  OfflineRecognizer (the mirror's offline recogniser, its own confidence checks), then
//         the same matcher; also shown with the second opinion on top.
//   sherpa  only when SHERPA_ASR_DIR names a model directory (none on this machine).
// An utterance counts as: right (the effect the user asked for: skill and its slots), wrong
// (another effect), rejected (no skill fired: "say that again" or the LLM); an out-of-skill
// utterance that fires any skill is a false accept.
// Settings: --quick (a third of the requests, 3 voices), BENCH_CONCURRENCY=2, BENCH_VERBOSE=1, MIN_MARGIN, ACTION_MIN_MARGIN,
// ACCURACY_CACHE (audio cache dir).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DEFAULT_ACTION_MIN_MARGIN, DEFAULT_HUB_MIN_MARGIN, DEFAULT_MIN_MARGIN, jsgfFromPhrases, PocketsphinxAsr, readDictionaryWords, thresholdFor } from '@mirrormesh/speech'
import { actsOn } from '../../hub/dist/pipeline/early-end.js'
import { builtinSkills, parseNumber, SkillMatcher } from '../../hub/dist/pipeline/skills.js'
import { OfflineRecognizer } from '../../node-agent/dist/offline/recognizer.js'
import { audioOf, evaluationSet } from './accuracy-set.mjs'
import { table } from './lib.mjs'

const quiet = { debug() {}, info() {}, warn() {}, error() {}, trace() {}, fatal() {}, child() { return quiet } }
const verbose = process.env.BENCH_VERBOSE === '1'
const concurrency = Math.max(1, Number(process.env.BENCH_CONCURRENCY) || 2)

/** The effect of a skill match, as a user would notice it. */
export function effectOf(match) {
  if (!match) return null
  const { skill, slots } = match
  switch (skill.id) {
    case 'light': return `light:${slots.onoff ?? 'on'}:${slots.room}`
    case 'timer': return `timer:${parseNumber(slots.number ?? '') ?? '?'}`
    case 'volume': {
      const n = slots.number !== undefined ? parseNumber(slots.number) : undefined
      if (n !== undefined) return `volume:=${n}`
      return `volume:${slots.updown ?? (slots.louderquieter === 'louder' ? 'up' : 'down')}`
    }
    default: return skill.id
  }
}

/** Offline, a phrase acts when it sets or cancels a timer or changes the volume (a light is refused offline and journaled). */
const offlineActs = (r) => r.node !== null && /^(timer:|timer_cancel|volume)/.test(r.node)
/** On the hub, the product's own judgement of the phrase heard (actsOn). */
const hubActs = (r) => r.acts

const verdict = (expect, got) => (got === null ? 'rejected' : expect === null ? 'false_accept' : got === expect ? 'right' : 'wrong')

function summarize(rows, pick, acts = hubActs) {
  const skill = rows.filter((r) => r.expect !== null)
  const oos = rows.filter((r) => r.expect === null)
  const v = (r) => verdict(r.expect, pick(r))
  const n = (list, k) => list.filter((r) => v(r) === k).length
  const faAct = oos.filter((r) => pick(r) !== null && acts(r)).length
  return { skillN: skill.length, right: n(skill, 'right'), wrong: n(skill, 'wrong'), rejected: n(skill, 'rejected'), oosN: oos.length, fa: n(oos, 'false_accept'), faAct }
}
const pct = (a, b) => (b ? `${((100 * a) / b).toFixed(1)}%` : '-')

async function pool(items, n, fn) {
  let next = 0
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) {
      const i = next++
      await fn(items[i], i)
    }
  }))
}

export async function main() {
  const quick = process.argv.includes('--quick') || process.env.BENCH_QUICK === '1'
  const set = evaluationSet({ quick })
  const skills = builtinSkills()
  const matcher = new SkillMatcher(skills)
  const dir = mkdtempSync(join(tmpdir(), 'mm-accuracy-'))
  try {
    const grammarPath = join(dir, 'grammar.gram')
    writeFileSync(grammarPath, jsgfFromPhrases(matcher.phrases(), { dictionary: readDictionaryWords() }))
    const acts = actsOn(matcher)
    const hub = new PocketsphinxAsr({ grammarPath, log: quiet, secondOpinion: { minMargin: -Infinity } })
    const node = new OfflineRecognizer({ grammarPath, log: quiet, secondOpinion: false }) // its margin is the hub's: same grammar, same audio
    if (hub.health() !== 'ok' || node.health() !== 'ok') throw new Error(`pocketsphinx unavailable: ${hub.downDetail ?? 'offline recognizer down'}`)
    console.log(`set: ${set.length} utterances (${set.filter((i) => i.expect).length} skill, ${set.filter((i) => !i.expect).length} out-of-skill)${quick ? ' --quick' : ''}; grammar ${matcher.phrases().length} phrases`)

    const t0 = Date.now()
    let synthMs = 0
    const rows = []
    await pool(set, concurrency, async (item) => {
      const s0 = Date.now()
      const pcm = await audioOf(item)
      synthMs += Date.now() - s0
      const ac = new AbortController()
      const hs = hub.start(ac.signal)
      for (let i = 0; i < pcm.length; i += 320) hs.write(pcm.subarray(i, i + 320))
      const [ht, nr] = await Promise.all([hs.finish(), node.recognize(pcm, ac.signal)])
      const heard = ht.text || ht.heard || ''
      const row = {
        ...item, voice: item.voice.id, heard, margin: ht.margin ?? null, acts: heard ? acts(heard) : false,
        hub: effectOf(heard ? matcher.match(heard) : undefined),
        nodeText: nr.text, nodeConfident: nr.confident, nodeReason: nr.reason ?? null,
      }
      row.node = nr.confident ? effectOf(matcher.match(nr.text)) : null
      rows.push(row)
      if (verbose) console.log(`${row.voice}\t${row.variant}\t${row.expect ?? '-'}\t"${row.text}" → hub "${heard}" (${row.hub ?? '-'}, margin ${row.margin}) node ${row.node ?? `- ${row.nodeReason}`}`)
    })
    console.log(`decoded in ${((Date.now() - t0) / 1000).toFixed(0)} s (synthesis/cache ${(synthMs / 1000).toFixed(0)} s of it, concurrency ${concurrency})`)

    // MIN_MARGIN overrides both defaults (the hub's and the offline recogniser's), ACTION_MIN_MARGIN the hub's actions'.
    const hubThr = Number(process.env.MIN_MARGIN ?? DEFAULT_HUB_MIN_MARGIN)
    const nodeThr = Number(process.env.MIN_MARGIN ?? DEFAULT_MIN_MARGIN)
    const actThr = Number(process.env.ACTION_MIN_MARGIN ?? DEFAULT_ACTION_MIN_MARGIN)
    // What the product does: a phrase that changes something needs the action margin too.
    const hubNeeds = (r, thr, act) => thresholdFor(thr, act, () => r.acts)(r.heard)
    const trusted = (r, thr) => r.margin === null || r.margin >= thr
    const paths = {
      'hub grammar only': (r) => r.hub,
      [`hub + second opinion (answers >= ${hubThr}, actions >= ${actThr})`]: (r) => (trusted(r, hubNeeds(r, hubThr, actThr)) ? r.hub : null),
      'node offline (coverage check only)': (r) => r.node,
      // Offline, one threshold: a light is refused there anyway, and −3 kept the other actions rare.
      [`node offline + second opinion (margin >= ${nodeThr})`]: (r) => (trusted(r, nodeThr) ? r.node : null),
    }
    console.log('\nper path: skill requests right / wrong / rejected; out-of-skill requests that fired a skill (and of them, an action: a light online, a timer, the volume)')
    const head = ['path', 'right', 'wrong', 'rejected', 'skill n', 'false accepts', 'of them actions', 'oos n']
    table([head, ...Object.entries(paths).map(([name, pick]) => {
      const s = summarize(rows, pick, name.startsWith('node') ? offlineActs : hubActs)
      return [name, pct(s.right, s.skillN), pct(s.wrong, s.skillN), pct(s.rejected, s.skillN), s.skillN, `${s.fa} (${pct(s.fa, s.oosN)})`, `${s.faAct} (${pct(s.faAct, s.oosN)})`, s.oosN]
    })])
    if (process.env.SHERPA_ASR_DIR) console.log('sherpa: SHERPA_ASR_DIR is set but this bench does not load sherpa yet')
    else console.log('sherpa: no model (SHERPA_ASR_DIR unset): path skipped')

    console.log('\nper voice (right % of skill requests / false accepts of out-of-skill)')
    const voices = [...new Set(rows.map((r) => r.voice))]
    table([['voice', ...Object.keys(paths).map((p) => p.split(' (')[0])], ...voices.map((v) => [v, ...Object.values(paths).map((pick) => {
      const s = summarize(rows.filter((r) => r.voice === v), pick)
      return `${pct(s.right, s.skillN)} / ${s.fa}`
    })])])
    console.log('\nper variant (hub + second opinion: right % / false accepts)')
    const variants = [...new Set(rows.map((r) => r.variant))]
    const so = Object.values(paths)[1]
    table([['variant', 'right', 'wrong', 'false accepts'], ...variants.map((v) => {
      const s = summarize(rows.filter((r) => r.variant === v), so)
      return [v, pct(s.right, s.skillN), pct(s.wrong, s.skillN), `${s.fa}/${s.oosN}`]
    })])

    console.log('\naccept/reject trade-off (hub; grammar result trusted when margin per frame >= threshold, the same for every phrase)')
    const ths = [-Infinity, -12, -9, -8, -7, -6, -5, -4.5, -4, -3.5, -3, -2, -1, 0, 2]
    table([['min margin', 'right', 'wrong', 'rejected', 'false accepts', 'of them actions'], ...ths.map((t) => {
      const s = summarize(rows, (r) => (r.margin === null || r.margin >= t ? r.hub : null))
      return [String(t), pct(s.right, s.skillN), pct(s.wrong, s.skillN), pct(s.rejected, s.skillN), pct(s.fa, s.oosN), pct(s.faAct, s.oosN)]
    })])
    console.log(`\nthe action margin (hub; answers at ${hubThr}, phrases that change something at the action margin)`)
    table([['action margin', 'right', 'wrong', 'rejected', 'false accepts', 'of them actions'], ...[-4.5, -3, -2, -1, 0, 1, 2, 4].map((t) => {
      const s = summarize(rows, (r) => (trusted(r, hubNeeds(r, hubThr, t)) ? r.hub : null))
      return [String(t), pct(s.right, s.skillN), pct(s.wrong, s.skillN), pct(s.rejected, s.skillN), pct(s.fa, s.oosN), pct(s.faAct, s.oosN)]
    })])

    console.log('\nconfusions (hub + second opinion): expected → got  [count] example')
    const conf = new Map()
    for (const r of rows) {
      const got = so(r)
      const v = verdict(r.expect, got)
      if (v !== 'wrong' && v !== 'false_accept') continue
      const k = `${r.expect ?? '(out of skill)'} → ${got}`
      const e = conf.get(k) ?? { n: 0, ex: `"${r.text}" heard "${r.heard}" (${r.voice}, ${r.variant}, margin ${r.margin})` }
      e.n++
      conf.set(k, e)
    }
    for (const [k, e] of [...conf].sort((a, b) => b[1].n - a[1].n).slice(0, 25)) console.log(`  ${k}  [${e.n}] ${e.ex}`)
    if (!conf.size) console.log('  (none)')
    return rows
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main()
