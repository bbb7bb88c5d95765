// A tiny hand-built streaming transducer for sherpa-onnx's KeywordSpotter, generated at test
// time (a few KB, a few ms) so no model file is ever committed. It is an "lstm"-type online
// transducer as far as sherpa-onnx can tell (encoder/decoder/joiner ONNX files with the metadata
// OnlineLstmTransducerModel reads), but its weights are written by hand, not trained: it spots
// loud bursts, not words. Behaviour, per 40 ms encoder frame (4 fbank frames, like a real model's
// subsampling factor of 4):
//   - a frame is "loud" when log(mean mel power) of its 4x80 fbank bins exceeds `threshold`
//     (default -4; e.g. a 440 Hz sine of amplitude >~0.05, white noise of rms >~0.005, or
//     espeak-ng speech; digital silence is -15.9);
//   - after at least one quiet frame the spotter is armed; the first K loud frames of the next
//     burst then emit the K keyword tokens in order, and the keyword fires two frames after the
//     last one (sherpa needs num_trailing_blanks > 1) — about (K + 2) * 40 ms after the onset;
//   - the rest of the burst emits blanks; it re-arms only after `rearmFrames` consecutive quiet
//     frames (default 5 = 200 ms), so one burst (a tone, a spoken phrase with short gaps) fires
//     at most once. Gaps shorter than that inside the first K frames just pause the sequence;
//   - a fresh state (stream start, spotter.reset(stream), or sherpa's own reset after ~1.5 s of
//     blanks) is disarmed: a quiet first frame arms it at once, but once it has seen a loud
//     frame it needs the usual `rearmFrames` quiet frames. So resetting after a detection in the
//     middle of a burst (or a phrase with gaps under 200 ms) does not fire again on the same
//     burst, and audio that is loud from its very first frame does not fire until it pauses;
//   - while armed and quiet each frame emits a filler token (<sil>), which is not in any
//     keyword, so silence never fires and never piles up the trailing blanks that make sherpa
//     reset the stream.
// The recurrent state (phase counter, quiet-frame counter) lives in the two "LSTM" state
// tensors that sherpa carries between chunks; the per-frame recurrence inside a chunk is
// unrolled in the graph. The decoder turns the last token (context_size 1) into a 1-d
// "embedding" (its id) that the joiner multiplies by zero: emission depends on the audio alone.
// Result tokens come back with '\u2581' shown as a space (" HE"), as for real models.
//
// Use (verified with sherpa-onnx-node 1.13.8):
//   const m = await makeTinyKws(dir)
//   new sherpa.KeywordSpotter({
//     featConfig: { sampleRate: 16000, featureDim: 80 },
//     modelConfig: { transducer: { encoder: m.encoder, decoder: m.decoder, joiner: m.joiner },
//       tokens: m.tokens, numThreads: 1, provider: 'cpu', modelType: 'lstm' },
//     keywordsFile: m.keywordsFile,
//   })
// and a detection reads getResult(stream).keyword === m.keyword ('hey_jarvis' by default).
// tokens.txt also holds ▁A..▁Z and A..Z, so extra keywords.txt lines such as "▁S T O P @stop"
// load (and never fire). A keywords.txt token missing from tokens.txt makes sherpa exit(-1) the
// whole process, as does a malformed model: load untested variants in a child process.
import { mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'

// ---------- a minimal protobuf writer (only what ONNX's ModelProto needs) ----------

function varint(n: number): Buffer {
  // non-negative integers only (all we write: field tags, lengths, dims, enums, versions)
  const out: number[] = []
  let v = BigInt(n)
  if (v < 0n) throw new Error(`negative varint ${n}`)
  do {
    let b = Number(v & 0x7fn)
    v >>= 7n
    if (v > 0n) b |= 0x80
    out.push(b)
  } while (v > 0n)
  return Buffer.from(out)
}
const key = (field: number, wire: number): Buffer => varint((field << 3) | wire)
const pbInt = (field: number, n: number): Buffer => Buffer.concat([key(field, 0), varint(n)])
const pbBytes = (field: number, bytes: Buffer): Buffer => Buffer.concat([key(field, 2), varint(bytes.length), bytes])
const pbStr = (field: number, s: string): Buffer => pbBytes(field, Buffer.from(s, 'utf8'))
const pbFloat = (field: number, f: number): Buffer => { const b = Buffer.alloc(4); b.writeFloatLE(f); return Buffer.concat([key(field, 5), b]) }
const pbMsg = (field: number, parts: Array<Buffer | undefined>): Buffer => pbBytes(field, Buffer.concat(parts.filter((x): x is Buffer => Boolean(x))))

// onnx.proto field numbers / enums
const FLOAT = 1
const INT64 = 7
const ATTR_FLOAT = 1
const ATTR_INT = 2
const ATTR_INTS = 7

/** TensorProto (raw_data, little-endian). */
function tensor(field: number, name: string, dataType: number, dims: number[], values: number[]): Buffer {
  const raw = dataType === FLOAT
    ? Buffer.from(new Float32Array(values).buffer)
    : Buffer.from(new BigInt64Array(values.map((v) => BigInt(v))).buffer)
  return pbMsg(field, [...dims.map((d) => pbInt(1, d)), pbInt(2, dataType), pbStr(8, name), pbBytes(9, raw)])
}

/** ValueInfoProto for a tensor; dims are numbers (dim_value) or strings (dim_param). */
type Dim = number | string

function valueInfo(field: number, name: string, elemType: number, dims: Dim[]): Buffer {
  const shape = dims.map((d) => pbMsg(1, [typeof d === 'number' ? pbInt(1, d) : pbStr(2, d)]))
  const tensorType = pbMsg(1, [pbInt(1, elemType), pbMsg(2, shape)])
  return pbMsg(field, [pbStr(1, name), pbMsg(2, [tensorType])])
}

type AttrValue = number | number[]

function attr(name: string, value: AttrValue): Buffer {
  if (Array.isArray(value)) return pbMsg(5, [pbStr(1, name), pbInt(20, ATTR_INTS), ...value.map((v) => pbInt(8, v))])
  if (Number.isInteger(value)) return pbMsg(5, [pbStr(1, name), pbInt(20, ATTR_INT), pbInt(3, value)])
  return pbMsg(5, [pbStr(1, name), pbInt(20, ATTR_FLOAT), pbFloat(2, value)])
}

/** A small graph builder: node(op, inputs, attrs?, nOutputs?) returns the output name(s). */
type IoSpec = [name: string, elemType: number, dims: Dim[]]

function graphBuilder() {
  const nodes: Buffer[] = []
  const inits: Buffer[] = []
  let n = 0
  const api = {
    const(values: number[], dims: number[] = [values.length], type = FLOAT): string {
      const name = `c${n++}`
      inits.push(tensor(5, name, type, dims, values))
      return name
    },
    i64(values: number[]): string { return api.const(values, [values.length], INT64) },
    /** One node with one output; its name. */
    node(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}, nOut = 1, outNames?: string[]): string {
      return api.nodeN(op, inputs, attrs, nOut, outNames)[0]!
    },
    /** One node with `nOut` outputs; their names. */
    nodeN(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}, nOut = 1, outNames?: string[]): string[] {
      const id = n++
      const outs = outNames ?? Array.from({ length: nOut }, (_, k) => `${op.toLowerCase()}${id}_${k}`)
      nodes.push(pbMsg(1, [
        ...inputs.map((i) => pbStr(1, i)), ...outs.map((o) => pbStr(2, o)), pbStr(3, `${op}_${id}`), pbStr(4, op),
        ...Object.entries(attrs).map(([k, v]) => attr(k, v)),
      ]))
      return outs
    },
    /** ModelProto bytes. */
    model({ name, inputs, outputs, meta }: { name: string; inputs: IoSpec[]; outputs: IoSpec[]; meta: Record<string, string | number> }): Buffer {
      const graph = pbMsg(7, [
        ...nodes, pbStr(2, name), ...inits,
        ...inputs.map(([nm, t, d]) => valueInfo(11, nm, t, d)),
        ...outputs.map(([nm, t, d]) => valueInfo(12, nm, t, d)),
      ])
      return Buffer.concat([
        pbInt(1, 8), // ir_version 8
        pbStr(2, 'mirrormesh-tiny-kws'), pbStr(3, '1'),
        graph,
        pbMsg(8, [pbStr(1, ''), pbInt(2, 13)]), // opset_import: ai.onnx 13
        ...Object.entries(meta).map(([k, v]) => pbMsg(14, [pbStr(1, k), pbStr(2, String(v))])),
      ])
    },
  }
  return api
}

// ---------- the model ----------

export interface TinyKwsOptions {
  /** Tokens of the one keyword the model can emit (K = length). */
  keywordTokens?: string[]
  /** The @phrase reported as result.keyword (no whitespace). */
  keyword?: string
  /** Loudness gate: natural log of the mean mel power of a 40 ms frame. */
  threshold?: number
  /** Quiet 40 ms frames needed to re-arm after a burst. */
  rearmFrames?: number
  /** fbank frames per encoder call (multiple of 4; sherpa's T). */
  chunkFrames?: number
}

/** Builds the three ONNX models, tokens.txt and keywords.txt in memory. */
export function buildTinyKws({
  keywordTokens = ['\u2581HE', 'Y', '\u2581JAR', 'VIS'], keyword = 'hey_jarvis',
  threshold = -4, rearmFrames = 5, chunkFrames = 16,
}: TinyKwsOptions = {}) {
  if (chunkFrames % 4 !== 0) throw new Error('chunkFrames must be a multiple of 4')
  if (/\s/.test(keyword) || keywordTokens.some((t) => !t || /\s/.test(t))) throw new Error('no whitespace in keyword or tokens')
  const K = keywordTokens.length
  const Q = Math.max(1, rearmFrames)
  const F = chunkFrames / 4 // encoder output frames per chunk
  const FEAT = 80

  // vocabulary: specials, the keyword's tokens, then letters (so tests can add keywords that never fire)
  const vocab = ['<blk>', '<sos/eos>', '<unk>', '<sil>']
  for (const t of [...keywordTokens, ...'ABCDEFGHIJKLMNOPQRSTUVWXYZ'.split('').flatMap((c) => [`\u2581${c}`, c])]) {
    if (!vocab.includes(t)) vocab.push(t)
  }
  const V = vocab.length
  const SIL = vocab.indexOf('<sil>')
  const C = K + 1 // encoder/joiner dim: one-hot of [token 1..K, <sil>]; all zero = blank
  const FILL = K + 5 // phase code for "emit <sil>" (never a real phase)

  // --- encoder: x [N, T, 80], h [1, N, 1] (phase + 1; 0 = fresh), c [1, N, 1] (quiet run) ---
  const e = graphBuilder()
  const xr = e.node('Reshape', ['x', e.i64([0, F, 4 * FEAT])]) // [N, F, 320]
  const power = e.node('ReduceMean', [e.node('Exp', [xr])], { axes: [2], keepdims: 0 }) // [N, F]
  const loudness = e.node('Log', [power])
  const loudF = e.node('Cast', [e.node('Greater', [loudness, e.const([threshold], [])])], { to: FLOAT })
  const frames = F === 1 ? [loudF] : e.nodeN('Split', [loudF], { axis: 1 }, F) // F x [N, 1]
  const col = e.i64([-1, 1])
  const hv = e.node('Reshape', ['h', col])
  const qv = e.node('Reshape', ['c', col])
  const fresh = e.node('Less', [hv, e.const([0.5], [])])
  const one = e.const([1], [])
  const zero = e.const([0], [])
  let c = e.node('Where', [fresh, e.const([K + 1], []), e.node('Sub', [hv, one])]) // fresh: disarmed
  let q = e.node('Where', [fresh, e.const([Q - 1], []), qv]) // fresh: one quiet frame arms
  const codes = e.const([...Array.from({ length: K }, (_, k) => k + 1), FILL], [1, C])
  const outFrames: string[] = []
  for (let i = 0; i < F; i++) {
    const loud = e.node('Greater', [frames[i]!, e.const([0.5], [])]) // [N, 1] bool
    const cLoud = e.node('Min', [e.node('Add', [c, one]), e.const([K + 1], [])])
    const qQuiet = e.node('Min', [e.node('Add', [q, one]), e.const([Q], [])])
    const cQuiet = e.node('Where', [e.node('Less', [qQuiet, e.const([Q - 0.5], [])]), c, zero])
    c = e.node('Where', [loud, cLoud, cQuiet])
    q = e.node('Where', [loud, zero, qQuiet])
    const quietCode = e.node('Where', [e.node('Less', [c, e.const([0.5], [])]), e.const([FILL], []), e.const([-1], [])])
    const code = e.node('Where', [loud, c, quietCode])
    const onehot = e.node('Cast', [e.node('Equal', [code, codes])], { to: FLOAT }) // [N, C]
    outFrames.push(e.node('Reshape', [onehot, e.i64([0, 1, C])]))
  }
  const stateShape = e.i64([1, -1, 1])
  if (F === 1) e.node('Identity', [outFrames[0]!], {}, 1, ['encoder_out'])
  else e.node('Concat', outFrames, { axis: 1 }, 1, ['encoder_out'])
  e.node('Reshape', [e.node('Add', [c, one]), stateShape], {}, 1, ['new_h'])
  e.node('Reshape', [q, stateShape], {}, 1, ['new_c'])
  const encoder = e.model({
    name: 'tiny_kws_encoder',
    inputs: [['x', FLOAT, ['N', chunkFrames, FEAT]], ['h', FLOAT, [1, 'N', 1]], ['c', FLOAT, [1, 'N', 1]]],
    outputs: [['encoder_out', FLOAT, ['N', F, C]], ['new_h', FLOAT, [1, 'N', 1]], ['new_c', FLOAT, [1, 'N', 1]]],
    meta: {
      model_type: 'lstm', version: '1', model_author: 'mirrormesh tiny-kws (hand-written, untrained)',
      comment: 'emits the keyword tokens on the first frames of a loud burst',
      num_encoder_layers: 1, T: chunkFrames, decode_chunk_len: chunkFrames, rnn_hidden_size: 1, d_model: 1,
    },
  })

  // --- decoder: y [N, 1] int64 -> the last token's id as a 1-d "embedding" [N, 1] ---
  const d = graphBuilder()
  const emb = d.node('Gather', [d.const(vocab.map((_, i) => i), [V, 1]), 'y'], { axis: 0 }) // [N, 1, 1]
  d.node('Reshape', [emb, d.i64([0, -1])], {}, 1, ['decoder_out'])
  const decoder = d.model({
    name: 'tiny_kws_decoder',
    inputs: [['y', INT64, ['N', 1]]],
    outputs: [['decoder_out', FLOAT, ['N', 1]]],
    meta: { context_size: 1, vocab_size: V },
  })

  // --- joiner: logit = enc @ W + dec @ 0 + b ---
  const j = graphBuilder()
  const W = new Array(C * V).fill(0)
  keywordTokens.forEach((t, k) => { W[k * V + vocab.indexOf(t)] = 20 })
  W[K * V + SIL] = 20
  const b = new Array(V).fill(0)
  b[0] = 10 // blank wins when the encoder frame is all zero
  const fromEnc = j.node('MatMul', ['encoder_out', j.const(W, [C, V])])
  const fromDec = j.node('MatMul', ['decoder_out', j.const(new Array(V).fill(0), [1, V])])
  j.node('Add', [j.node('Add', [fromEnc, fromDec]), j.const(b, [V])], {}, 1, ['logit'])
  const joiner = j.model({
    name: 'tiny_kws_joiner',
    inputs: [['encoder_out', FLOAT, ['N', C]], ['decoder_out', FLOAT, ['N', 1]]],
    outputs: [['logit', FLOAT, ['N', V]]],
    meta: { joiner_dim: C },
  })

  const tokensTxt = vocab.map((t, i) => `${t} ${i}\n`).join('')
  const keywordsTxt = `${keywordTokens.join(' ')} @${keyword}\n`
  return { encoder, decoder, joiner, tokensTxt, keywordsTxt, vocab, keyword, keywordTokens }
}

export type TinyKws = Awaited<ReturnType<typeof makeTinyKws>>

/** Writes encoder.onnx, decoder.onnx, joiner.onnx, tokens.txt and keywords.txt into `dir`. */
export async function makeTinyKws(dir: string, opts: TinyKwsOptions = {}) {
  const m = buildTinyKws(opts)
  await mkdir(dir, { recursive: true })
  const p = (f: string) => path.join(dir, f)
  await Promise.all([
    writeFile(p('encoder.onnx'), m.encoder), writeFile(p('decoder.onnx'), m.decoder), writeFile(p('joiner.onnx'), m.joiner),
    writeFile(p('tokens.txt'), m.tokensTxt), writeFile(p('keywords.txt'), m.keywordsTxt),
  ])
  return {
    dir, encoder: p('encoder.onnx'), decoder: p('decoder.onnx'), joiner: p('joiner.onnx'),
    tokens: p('tokens.txt'), keywordsFile: p('keywords.txt'),
    keyword: m.keyword, keywordTokens: m.keywordTokens, vocabSize: m.vocab.length,
    bytes: m.encoder.length + m.decoder.length + m.joiner.length + Buffer.byteLength(m.tokensTxt) + Buffer.byteLength(m.keywordsTxt),
  }
}
