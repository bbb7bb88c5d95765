// A tiny random-weight llama GGUF (v3, F32, SentencePiece-style vocab with byte fallback),
// generated at test time (~133 KB, ~20 ms) so no model file is ever committed. Loadable by
// node-llama-cpp; its output is nonsense, so tests assert mechanics, not words.
import { writeFile } from 'node:fs/promises'

export interface TinyGgufOptions {
  nEmbd?: number
  nLayer?: number
  nHead?: number
  nHeadKv?: number
  nFf?: number
  ctx?: number
  seed?: number
  weightScale?: number
  /** e.g. a ChatML jinja string; null = none (node-llama-cpp falls back to a generic wrapper). */
  chatTemplate?: string | null
  /** Bias sampling toward normal text pieces (no byte/control tokens, EOS rare) so output is printable. */
  readable?: boolean
}

type Kv = [string, 'str', string] | [string, 'u32' | 'f32', number] | [string, 'bool', boolean] | [string, 'arr_str', string[]] | [string, 'arr_f32' | 'arr_i32', number[]]
type TensorSpec = [name: string, dims: number[], init?: 'ones']

/** Writes the model to `path`. */
export async function makeTinyGguf(path: string, seed = 1234, opts: TinyGgufOptions = {}): Promise<{ bytes: number; nVocab: number }> {
  const { buffer, nVocab } = buildTinyGguf({ ...opts, seed })
  await writeFile(path, buffer)
  return { bytes: buffer.length, nVocab }
}

/** The model as bytes; dims are in GGUF/ggml order (ne[0] innermost). */
export function buildTinyGguf({
  nEmbd = 32, nLayer = 1, nHead = 2, nHeadKv = 2, nFf = 64, ctx = 512, seed = 1234, weightScale = 0.2,
  chatTemplate = null,
  readable = true,
}: TinyGgufOptions = {}): { buffer: Buffer; nVocab: number; tensors: Array<[string, number[]]> } {
  // ---------- tokenizer (SentencePiece-style, byte fallback) ----------
  const tokens = ['<unk>', '<s>', '</s>'];
  const types = [2, 3, 3]; // 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
  const scores = [0, 0, 0];
  for (let b = 0; b < 256; b++) { tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`); types.push(6); scores.push(0); }
  const pieces = ['\u2581', ...'abcdefghijklmnopqrstuvwxyz'.split(''), ...'abcdefghijklmnopqrstuvwxyz'.split('').map((c) => '\u2581' + c),
    '\u2581the', '\u2581on', '\u2581turn', '\u2581light', '\u2581kitchen', '\u2581time', '\u2581what', '\u2581is', '\u2581it', '.', ',', '?', '!'];
  pieces.forEach((p, i) => { tokens.push(p); types.push(1); scores.push(-(i + 1) + (p.length > 2 ? 50 : 0)); });
  const nVocab = tokens.length; // 3 + 256 + 66 = 325

  const headDim = nEmbd / nHead;
  const kv: Kv[] = [
    ['general.architecture', 'str', 'llama'],
    ['general.name', 'str', 'tiny-random-llama'],
    ['general.alignment', 'u32', 32],
    ['general.file_type', 'u32', 0], // ALL_F32
    ['llama.context_length', 'u32', ctx],
    ['llama.embedding_length', 'u32', nEmbd],
    ['llama.block_count', 'u32', nLayer],
    ['llama.feed_forward_length', 'u32', nFf],
    ['llama.attention.head_count', 'u32', nHead],
    ['llama.attention.head_count_kv', 'u32', nHeadKv],
    ['llama.rope.dimension_count', 'u32', headDim],
    ['llama.rope.freq_base', 'f32', 10000],
    ['llama.attention.layer_norm_rms_epsilon', 'f32', 1e-5],
    ['llama.vocab_size', 'u32', nVocab],
    ['tokenizer.ggml.model', 'str', 'llama'],
    ['tokenizer.ggml.tokens', 'arr_str', tokens],
    ['tokenizer.ggml.scores', 'arr_f32', scores],
    ['tokenizer.ggml.token_type', 'arr_i32', types],
    ['tokenizer.ggml.bos_token_id', 'u32', 1],
    ['tokenizer.ggml.eos_token_id', 'u32', 2],
    ['tokenizer.ggml.unknown_token_id', 'u32', 0],
    ['tokenizer.ggml.padding_token_id', 'u32', 0],
    ['tokenizer.ggml.add_bos_token', 'bool', true],
    ['tokenizer.ggml.add_eos_token', 'bool', false],
  ];
  if (chatTemplate) kv.push(['tokenizer.chat_template', 'str', chatTemplate]);

  // ---------- tensors: dims are GGUF/ggml order (ne[0] = row length / innermost) ----------
  const kvDim = headDim * nHeadKv;
  const tensors: TensorSpec[] = [['token_embd.weight', [nEmbd, nVocab]]];
  for (let l = 0; l < nLayer; l++) {
    tensors.push(
      [`blk.${l}.attn_norm.weight`, [nEmbd], 'ones'],
      [`blk.${l}.attn_q.weight`, [nEmbd, nEmbd]],
      [`blk.${l}.attn_k.weight`, [nEmbd, kvDim]],
      [`blk.${l}.attn_v.weight`, [nEmbd, kvDim]],
      [`blk.${l}.attn_output.weight`, [nEmbd, nEmbd]],
      [`blk.${l}.ffn_norm.weight`, [nEmbd], 'ones'],
      [`blk.${l}.ffn_gate.weight`, [nEmbd, nFf]],
      [`blk.${l}.ffn_up.weight`, [nEmbd, nFf]],
      [`blk.${l}.ffn_down.weight`, [nFf, nEmbd]],
    );
  }
  tensors.push(['output_norm.weight', [nEmbd], 'ones'], ['output.weight', [nEmbd, nVocab]]);

  // ---------- serialize ----------
  const ALIGN = 32;
  const chunks: Buffer[] = [];
  const enc = new TextEncoder();
  const u32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); chunks.push(b); };
  const i32 = (v: number) => { const b = Buffer.alloc(4); b.writeInt32LE(v); chunks.push(b); };
  const u64 = (v: number) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); chunks.push(b); };
  const f32 = (v: number) => { const b = Buffer.alloc(4); b.writeFloatLE(v); chunks.push(b); };
  const str = (s: string) => { const b = enc.encode(s); u64(b.length); chunks.push(Buffer.from(b)); };
  const T = { u32: 4, i32: 5, f32: 6, bool: 7, str: 8, arr: 9 };

  chunks.push(Buffer.from('GGUF', 'ascii'));
  u32(3); // version
  u64(tensors.length);
  u64(kv.length);
  for (const [key, type, val] of kv) {
    str(key);
    switch (type) {
      case 'u32': u32(T.u32); u32(val as number); break;
      case 'f32': u32(T.f32); f32(val as number); break;
      case 'bool': u32(T.bool); chunks.push(Buffer.from([val ? 1 : 0])); break;
      case 'str': u32(T.str); str(val as string); break;
      case 'arr_str': { const a = val as string[]; u32(T.arr); u32(T.str); u64(a.length); a.forEach((x) => str(x)); break; }
      case 'arr_f32': { const a = val as number[]; u32(T.arr); u32(T.f32); u64(a.length); a.forEach((x) => f32(x)); break; }
      case 'arr_i32': { const a = val as number[]; u32(T.arr); u32(T.i32); u64(a.length); a.forEach((x) => i32(x)); break; }
      default: throw new Error(String(type));
    }
  }
  let offset = 0;
  const datas: Buffer[] = [];
  // deterministic PRNG (mulberry32)
  let s = seed >>> 0;
  const rnd = () => { s = (s + 0x6d2b79f5) >>> 0; let t = s; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
  for (const [name, dims, init] of tensors) {
    const n = dims.reduce((a, b) => a * b, 1);
    const arr = new Float32Array(n);
    if (init === 'ones') arr.fill(1); else for (let i = 0; i < n; i++) arr[i] = (rnd() * 2 - 1) * weightScale;
    if (readable) {
      // Residual dim 0 is a constant "bias" channel: embeddings put 4.0 there and no layer writes to it,
      // so after RMSNorm h[0] > 0 and output.weight[tok][0] acts as a per-token logit bias.
      if (name === 'token_embd.weight') for (let t = 0; t < nVocab; t++) arr[t * nEmbd] = 4;
      if (name.endsWith('attn_output.weight')) arr.fill(0, 0, nEmbd);   // row 0 = output dim 0
      if (name.endsWith('ffn_down.weight')) arr.fill(0, 0, nFf);
      if (name === 'output.weight') for (let t = 0; t < nVocab; t++) arr[t * nEmbd] = types[t] === 1 ? 3 : (t === 2 ? 0.5 : -5);
    }
    str(name);
    u32(dims.length);
    dims.forEach((d) => u64(d));
    u32(0); // GGML_TYPE_F32
    u64(offset);
    datas.push(Buffer.from(arr.buffer));
    offset += arr.byteLength;
    offset = Math.ceil(offset / ALIGN) * ALIGN;
  }
  let header = Buffer.concat(chunks);
  const pad = (buf: Buffer) => Buffer.concat([buf, Buffer.alloc((ALIGN - (buf.length % ALIGN)) % ALIGN)]);
  header = pad(header);
  const body = datas.map(pad);
  return { buffer: Buffer.concat([header, ...body]), nVocab, tensors: tensors.map(([n, d]): [string, number[]] => [n, d]) };
}
