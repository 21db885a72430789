// rnnzoo.mjs: run rnnzoo ONNX bundles in a web page (or Node) with onnxruntime-web, with the
// pre- and post-processing that rnnzoo's Python runtime does, written once in JavaScript.
//
//   import * as ort from './ort/ort.wasm.min.mjs';
//   import { loadModel } from './rnnzoo.mjs';
//   const clf = await loadModel(ort, 'models/sentiment_bilstm.sst2/');
//   await clf.run('a gorgeous film');   // {label: 'positive', probs: {negative: ..., positive: ...}}
//
// Everything a model needs is read from its bundle: bundle.json (graphs, preprocessing, the
// "stream" description of the recurrent state) and the assets it names. The module does not
// import onnxruntime itself: pass the build you load (onnxruntime-web in a page, its Node build
// or onnxruntime-node under Node). Each task mirrors the Python runtime of rnnzoo/apps/<task>/
// inference.py; tests/test_web.py checks that the outputs agree.

// -- reading the bundle ----------------------------------------------------------------------

/** Files of a bundle fetched relative to `base` (a URL ending in '/'). */
export function fetchSource(base) {
  const url = (rel) => new URL(rel, new URL(base, globalThis.location?.href));
  const get = async (rel) => {
    const response = await fetch(url(rel));
    if (!response.ok) throw new Error(`${url(rel)}: HTTP ${response.status}`);
    return response;
  };
  return {
    json: async (rel) => (await get(rel)).json(),
    bytes: async (rel) => new Uint8Array(await (await get(rel)).arrayBuffer()),
  };
}

const hex = async (bytes) => Array.from(
  new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', bytes)),
  (b) => b.toString(16).padStart(2, '0')).join('');

/**
 * `source` whose every file is checked against the bundle's SHA256SUMS (bundle.json included),
 * as the Python runtime checks a bundle before opening it; `digest` (the sha256 of SHA256SUMS,
 * models.json's `digest`) pins the whole bundle. Hashing needs crypto.subtle, which a page has
 * in a secure context (https, localhost, 127.0.0.1); without it the files are read unchecked
 * unless `verify` is true or a `digest` is given.
 */
export async function verifiedSource(source, { digest = null, verify = null } = {}) {
  if (verify === false) return source;
  if (!globalThis.crypto?.subtle) {
    if (verify || digest) {
      throw new Error('checking the bundle needs crypto.subtle: serve the page over https or '
        + 'from localhost');
    }
    return source;
  }
  const listing = await source.bytes('SHA256SUMS');
  if (digest && (await hex(listing)) !== digest.replace(/^sha256[:=]/, '').toLowerCase()) {
    throw new Error(`the bundle's digest is ${await hex(listing)}, not the pinned ${digest}`);
  }
  const sums = new Map(new TextDecoder().decode(listing).split('\n').filter(Boolean)
    .map((line) => [line.slice(66), line.slice(0, 64)]));
  const bytes = async (rel) => {
    if (!sums.has(rel)) throw new Error(`${rel} is not listed in the bundle's SHA256SUMS`);
    const data = await source.bytes(rel);
    if ((await hex(data)) !== sums.get(rel)) {
      throw new Error(`${rel}: sha256 mismatch; the bundle is corrupt or was modified`);
    }
    return data;
  };
  return { bytes, json: async (rel) => JSON.parse(new TextDecoder().decode(await bytes(rel))) };
}

/**
 * Open the bundle at `base` with the class of its task, its files checked (verifiedSource:
 * `options.digest` pins it, `options.verify` false skips the check). `options.source`
 * replaces fetch ({json(rel), bytes(rel)}, e.g. reading files under Node);
 * `options.sessionOptions` go to every onnxruntime session.
 */
export async function loadModel(ort, base, options = {}) {
  const source = await verifiedSource(options.source ?? fetchSource(base), options);
  const manifest = await source.json('bundle.json');
  const Task = TASKS[manifest.task];
  if (!Task) {
    throw new Error(`${base}: task ${JSON.stringify(manifest.task)} has no web runtime `
      + `(supported: ${Object.keys(TASKS).join(', ')})`);
  }
  const model = new Task(ort, source, manifest, options);
  await model.open();
  return model;
}

class BundleModel {
  constructor(ort, files, manifest, options) {
    Object.assign(this, { ort, files, manifest, options, sessions: {} });
    this.task = manifest.task;
  }

  /** Every graph of the bundle; files that are neither graphs nor assets are their external
   * weights (e.g. shared_weights.bin, which two graphs share), fetched once. */
  async open() {
    const graphFiles = new Set(Object.values(this.manifest.graphs).map((g) => g.file));
    const external = Object.keys(this.manifest.files)
      .filter((f) => !graphFiles.has(f) && !f.startsWith('assets/'));
    const externalData = await Promise.all(
      external.map(async (path) => ({ path, data: await this.files.bytes(path) })));
    for (const [name, graph] of Object.entries(this.manifest.graphs)) {
      const bytes = await this.files.bytes(graph.file);
      this.sessions[name] = await this.ort.InferenceSession.create(bytes, {
        ...(this.options.sessionOptions ?? {}), ...(externalData.length ? { externalData } : {}),
      });
    }
    await this.init();
  }

  async asset(key) { return this.files.json(this.manifest.preprocessing[key]); }

  async runGraph(name, feeds) { return this.sessions[name].run(feeds); }

  int32(values, dims) { return new this.ort.Tensor('int32', Int32Array.from(values), dims); }
}

// -- text: Python's regular expressions, character for character ----------------------------

// Python's \w, \d and \s on str patterns are exactly these Unicode classes.
const W = '\\p{L}\\p{N}_';
const SPACE = '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029'
  + '\\u202f\\u205f\\u3000';
// rnnzoo.data.tokenizer._TOKEN_RE: words with inner apostrophes/hyphens, a leading clitic, a symbol.
const WORD_RE = `[${W}]+(?:['’-][${W}]+)*|['’][${W}]+|[^${W}${SPACE}]`;
// rnnzoo.apps.token_classification.data._TOKEN_RE: CoNLL-style tokens (U.S., 1,000.5, ...).
const CONLL_RE = `(?:[\\p{L}\\p{Nl}\\p{No}]\\.){2,}|\\p{Nd}+(?:[.,:/]\\p{Nd}+)*`
  + `|[${W}]+(?:['’-][${W}]+)*|[^${W}${SPACE}]`;

/** A Python str pattern as a JavaScript one: \w, \d and \s become the Unicode classes
 * Python means by them (inside a [...] class too). For patterns a bundle states. */
export function fromPythonRegex(pattern) {
  const classes = { w: W, d: '\\p{Nd}', s: SPACE };
  let out = '';
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\' && i + 1 < pattern.length) {
      const next = pattern[++i];
      if (next in classes) out += inClass ? classes[next] : `[${classes[next]}]`;
      else out += c + next;
    } else {
      if (c === '[') inClass = true;
      else if (c === ']') inClass = false;
      out += c;
    }
  }
  return out;
}

/** rnnzoo.data.tokenizer.WordTokenizer: NFC, optional lower case, split, ids (1: unknown).
 * `pattern`: the splitting regex a bundle states (Python syntax); default rnnzoo's own. */
export class WordTokenizer {
  constructor(json, pattern = null) {
    if (json.format !== 'rnnzoo.word_tokenizer.v1') throw new Error('not an rnnzoo tokenizer');
    this.lowercase = json.lowercase ?? true;
    this.vocab = json.vocab;
    this.index = new Map(json.vocab.map((w, i) => [w, i]));
    this.pattern = pattern === null ? WORD_RE : fromPythonRegex(pattern);
  }

  split(text) {
    text = text.normalize('NFC');
    if (this.lowercase) text = text.toLowerCase();
    return text.match(new RegExp(this.pattern, 'gu')) ?? [];
  }

  encode(text) { return this.split(text).map((w) => this.index.get(w) ?? 1); }
}

const argmax = (values, count = values.length) => {
  let best = 0;
  for (let i = 1; i < count; i++) if (values[i] > values[best]) best = i;
  return best;
};

// -- text classification (apps/text_classification/inference.py) ------------------------------

class TextClassifier extends BundleModel {
  async init() {
    this.labels = await this.asset('labels');
    this.tokenizer = new WordTokenizer(await this.asset('tokenizer'));
    this.maxLength = this.manifest.preprocessing.max_length ?? 100;
  }

  /** Token ids as predict() reads a text: the first max_length, an empty text one <unk>. */
  encode(text) {
    const ids = this.tokenizer.encode(text).slice(0, this.maxLength);
    return ids.length ? ids : [1];
  }

  /** {label, probs: {class: p}} for one text. */
  async run(text) {
    const ids = this.encode(text);
    const out = await this.runGraph('model', { tokens: this.int32(ids, [1, ids.length]) });
    const probs = Array.from(out.probs.data);
    return {
      label: this.labels[argmax(probs)],
      probs: Object.fromEntries(this.labels.map((name, i) => [name, probs[i]])),
    };
  }
}

// -- text generation (apps/text_generation/inference.py) ----------------------------------------

/** numpy.random.default_rng(seed): SeedSequence, PCG64 and Generator.gumbel, bit for bit, so
 * a seed samples the same text as the Python runtime. */
export class NumpyRandom {
  constructor(seed) {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new Error('seed: an integer >= 0');
    const M32 = 0xffffffffn;
    const mul = (a, b) => Number((BigInt(a) * BigInt(b)) & M32);
    let words = [];
    for (let s = BigInt(seed); words.length === 0 || s > 0n; s >>= 32n) words.push(Number(s & M32));
    // SeedSequence.mix_entropy then generate_state(4, uint64) (numpy/random/bit_generator.pyx).
    let hashConst = 0x43b0d7e5;
    const hashmix = (value) => {
      value = (value ^ hashConst) >>> 0;
      hashConst = mul(hashConst, 0x931e8875);
      value = mul(value, hashConst);
      return (value ^ (value >>> 16)) >>> 0;
    };
    const mix = (x, y) => {
      const r = Number((0xca01f9ddn * BigInt(x) - 0x4973f715n * BigInt(y)) & M32);
      return (r ^ (r >>> 16)) >>> 0;
    };
    const pool = [0, 1, 2, 3].map((i) => hashmix(i < words.length ? words[i] : 0));
    for (let src = 0; src < 4; src++) {
      for (let dst = 0; dst < 4; dst++) if (src !== dst) pool[dst] = mix(pool[dst], hashmix(pool[src]));
    }
    for (let src = 4; src < words.length; src++) {
      for (let dst = 0; dst < 4; dst++) pool[dst] = mix(pool[dst], hashmix(words[src]));
    }
    let stateConst = 0x8b51f9dd;
    const out32 = [];
    for (let i = 0; i < 8; i++) {
      let v = (pool[i % 4] ^ stateConst) >>> 0;
      stateConst = mul(stateConst, 0x58f38ded);
      v = mul(v, stateConst);
      out32.push((v ^ (v >>> 16)) >>> 0);
    }
    const u64 = [0, 2, 4, 6].map((i) => BigInt(out32[i]) | (BigInt(out32[i + 1]) << 32n));
    // PCG64 (XSL-RR 128/64), seeded as pcg_setseq_128_srandom_r.
    this.MASK = (1n << 128n) - 1n;
    this.MULT = (2549297995355413924n << 64n) + 4865540595714422341n;
    this.inc = ((((u64[2] << 64n) | u64[3]) << 1n) | 1n) & this.MASK;
    this.state = 0n;
    this.advance();
    this.state = (this.state + ((u64[0] << 64n) | u64[1])) & this.MASK;
    this.advance();
  }

  advance() { this.state = (this.state * this.MULT + this.inc) & this.MASK; }

  nextUint64() {
    this.advance();
    const hi = this.state >> 64n;
    const x = (hi ^ this.state) & 0xffffffffffffffffn;
    const rot = hi >> 58n;
    return ((x >> rot) | (x << ((64n - rot) & 63n))) & 0xffffffffffffffffn;
  }

  random() { return Number(this.nextUint64() >> 11n) / 9007199254740992; }

  /** One standard Gumbel draw, as numpy's random_gumbel. */
  gumbel() {
    for (;;) {
      const u = 1 - this.random();
      if (u < 1) return -Math.log(-Math.log(u));
    }
  }
}

/** numpy's pairwise sum of float64 values (np.add.reduce over a contiguous row). */
function numpySum(a, lo = 0, n = a.length) {
  if (n < 8) {
    let res = 0;
    for (let i = lo; i < lo + n; i++) res += a[i];
    return res;
  }
  if (n <= 128) {
    const r = a.slice(lo, lo + 8);
    let i = 8;
    for (; i < n - (n % 8); i += 8) for (let k = 0; k < 8; k++) r[k] += a[lo + i + k];
    let res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; i++) res += a[lo + i];
    return res;
  }
  let half = Math.floor(n / 2);
  half -= half % 8;
  return numpySum(a, lo, half) + numpySum(a, lo + half, n - half);
}

/** log_softmax(logits) at `index` only, in float64 as rnnzoo.engines.base._log_norm does. */
function logSoftmaxAt(logits, index) {
  let max = -Infinity;
  for (const v of logits) if (v > max) max = v;
  const lse = Math.log(numpySum(Array.from(logits, (v) => Math.exp(v - max))));
  return index.map((i) => (logits[i] - max) - lse);
}

/** Log-probabilities in float64 as rnnzoo.engines.base.log_softmax computes them. */
function logSoftmax(logits) {
  let max = -Infinity;
  for (const v of logits) if (v > max) max = v;
  const shifted = logits.map((v) => v - max);
  const lse = Math.log(numpySum(shifted.map(Math.exp)));
  return shifted.map((v) => v - lse);
}

class CharLanguageModel extends BundleModel {
  async init() {
    // What to carry and how to start: bundle.json's stream description of the two graphs.
    this.prime = this.manifest.stream.graphs.model;
    this.step = this.manifest.stream.graphs.decoder;
    const { symbols } = this.step;
    const json = await this.files.json(symbols.vocabulary);
    this.symbols = json[symbols.key];
    this.ptb = Boolean(json.ptb);
    this.unk = json.unk;
    this.index = new Map(this.symbols.map((c, i) => [c, i]));
  }

  zeros() {
    return Object.fromEntries(this.prime.state.map(({ input, dtype, shape }) => {
      const dims = shape.map((d) => (d === 'batch' ? 1 : d));
      return [input, new this.ort.Tensor(dtype, new Float32Array(dims.reduce((a, b) => a * b, 1)),
        dims)];
    }));
  }

  /** The prompt's ids; a character outside the vocabulary is an error, as in Python. */
  encode(prompt) {
    const text = this.ptb ? prompt.replaceAll(' ', '_') : prompt;
    return [...text].map((c) => {
      const id = this.index.get(c);
      if (id === undefined || c === this.unk) {
        throw new Error(`prompt: character ${JSON.stringify(c)} is not in this model's `
          + `vocabulary of ${this.symbols.length - 1} characters`);
      }
      return id;
    });
  }

  /**
   * The characters continuing `prompt`, one at a time (an async iterator): the start symbol
   * and the prompt through the `model` graph, then one `decoder` step per character, the state
   * fed back as bundle.json's "stream" says. temperature 0: greedy; else softmax(logits / T)
   * sampled with numpy's generator for `seed` (the Python runtime's text for the same seed).
   */
  async* generate(prompt = '', { steps = 200, temperature = 0, seed = null } = {}) {
    if (!Number.isInteger(steps) || steps < 1) throw new Error('steps: an integer >= 1');
    if (!(temperature >= 0)) throw new Error('temperature: a number >= 0');
    const ids = [this.prime.start.feed, ...this.encode(prompt)];
    const count = this.step.symbols.count;
    let out = await this.runGraph('model', {
      ...this.zeros(), [this.prime.symbols.input]: this.int32(ids, [1, ids.length]),
    });
    const take = (o, desc) => Object.fromEntries(desc.state.map((s) => [s.input, o[s.output]]));
    let state = take(out, this.prime);
    const width = out[this.prime.symbols.output].dims.at(-1);
    let logits = out[this.prime.symbols.output].data.subarray((ids.length - 1) * width);
    const rng = temperature > 0
      ? new NumpyRandom(seed ?? Math.floor(Math.random() * 2 ** 32)) : null;
    for (let t = 0; t < steps; t++) {
      let chosen;
      if (rng === null) {
        chosen = argmax(logits, count);
      } else {  // Gumbel-max over all outputs, those past `count` at -inf (_categorical)
        const masked = Array.from(logits, (v, i) => (i < count ? v : -Infinity));
        const scores = logSoftmax(masked).map((v) => v / temperature + rng.gumbel());
        chosen = argmax(scores);
      }
      const c = this.symbols[chosen];
      yield this.ptb ? c.replaceAll('_', ' ') : c;
      if (t + 1 < steps) {
        out = await this.runGraph('decoder', {
          ...state, [this.step.symbols.input]: this.int32([chosen], [1]),
        });
        state = take(out, this.step);
        logits = out[this.step.symbols.output].data;
      }
    }
  }

  /** {text}: generate() joined; `onText` sees each character as it comes. */
  async run(prompt, options = {}) {
    let text = '';
    for await (const piece of this.generate(prompt, options)) {
      text += piece;
      options.onText?.(piece, text);
    }
    return { text };
  }
}

// -- translation (apps/translation/inference.py, greedy and beam search) ----------------------------------------

const SPACE_RUN = new RegExp(`[${SPACE}]+`, 'u');
const EDGE_SPACE = new RegExp(`^[${SPACE}]+|[${SPACE}]+$`, 'gu');
const PUNCT_RE = new RegExp(`[${SPACE}]*([?.!,¿¡;:"])[${SPACE}]*`, 'gu');

/** rnnzoo.data.parallel.normalize: NFC, strip, lower case, spaces around punctuation, one
 * space between words. */
export function normalizeText(text, lowercase = true) {
  text = text.normalize('NFC').replace(EDGE_SPACE, '');
  if (lowercase) text = text.toLowerCase();
  text = text.replace(PUNCT_RE, ' $1 ');
  return text.split(SPACE_RUN).filter(Boolean).join(' ');
}

/** rnnzoo.data.parallel.detokenize: "where is it ?" -> "where is it?". */
export function detokenize(text) {
  return text.replace(/\s+([?.!,;:])/gu, '$1').replace(/([¿¡])\s+/gu, '$1')
    .replace(new RegExp(`\\s+(['’][a-z]+)(?![${W}])`, 'gu'), '$1')
    .replace(EDGE_SPACE, '');
}

class Translator extends BundleModel {
  async init() {
    this.step = this.manifest.stream.graphs.decoder;  // start, end, symbols, source, source_mask
    const { source, symbols } = this.step;
    this.lowercase = this.manifest.preprocessing.lowercase ?? true;
    // The source side as bundle.json's stream.source states it (NFC, lower case, the regex).
    this.sourceWords = new WordTokenizer(await this.files.json(source.vocabulary),
      source.tokens ?? null);
    this.targetWords = (await this.files.json(symbols.vocabulary))[symbols.key];
    this.never = new Set(symbols.never ?? []);
  }

  /** Source ids as translate() reads a text: normalised, tokenised, the first max_tokens. */
  encode(text) {
    const { source } = this.step;
    const ids = this.sourceWords.encode(normalizeText(text, this.lowercase));
    return (ids.length ? ids : [source.unknown_id]).slice(0, source.max_tokens);
  }

  /** The words of the chosen ids before the end id or padding (<s> and </s> skipped). */
  text(ids) {
    const { end, symbols, start } = this.step;
    const words = [];
    for (const id of ids) {
      if (id === end.id || id === symbols.pad_id) break;
      if (id !== start.feed) words.push(this.targetWords[id]);
    }
    return detokenize(words.join(' '));
  }

  /** The encoder run once on `ids`: the decoder's first state and the inputs fed unchanged at
   * every step (the encoder's outputs, the source mask), as bundle.json's "stream" says. */
  async encodeSource(ids) {
    const { source, source_mask: mask } = this.step;
    const enc = await this.runGraph(source.graph, { [source.input]: this.int32(ids, [1, ids.length]) });
    const state = Object.fromEntries(this.step.state.map((s) => [s.input, enc[s.initial.output]]));
    const fixed = Object.fromEntries(this.step.inputs.filter((i) => i.from)
      .map((i) => [i.name, enc[i.from.output]]));
    if (mask) {
      fixed[mask.input] = new this.ort.Tensor('float32',
        Float32Array.from(ids, (id) => (id !== mask.pad_id ? 1 : 0)), [1, ids.length]);
    }
    return { state, fixed };
  }

  /** One decoder call: the logits (ids in 'never' or past 'count' at -1e9, as translate()
   * masks them) and the next state. */
  async decode(tokens, state, fixed) {
    const { symbols } = this.step;
    const out = await this.runGraph('decoder', {
      ...state, ...fixed, [symbols.input]: this.int32(tokens, [tokens.length]),
    });
    const logits = out[symbols.output].data;
    const width = logits.length / tokens.length;
    for (let b = 0; b < tokens.length; b++) {
      for (let i = symbols.count; i < width; i++) logits[b * width + i] = -1e9;
      for (const i of this.never) logits[b * width + i] = -1e9;
    }
    return { logits, width, state: Object.fromEntries(this.step.state.map((s) => [s.input, out[s.output]])) };
  }

  /** {translation}: greedy (one decoder step per token; `onText` sees the translation so far
   * after each) or, with `beam` k, beam search as translate(text, beam=k) runs it. */
  async run(text, { onText, beam = null } = {}) {
    const ids = this.encode(text);
    const { state, fixed } = await this.encodeSource(ids);
    if (beam !== null && beam !== undefined && beam !== '' && Number(beam) !== 0) {
      const translation = this.text(await this.beamSearch(Number(beam), state, fixed));
      onText?.(translation);
      return { translation };
    }
    const { start, end } = this.step;
    const chosen = [];
    let current = state;
    let token = start.feed;
    for (let t = 0; t < end.max_steps; t++) {
      const out = await this.decode([token], current, fixed);
      current = out.state;
      token = argmax(out.logits);
      if (token === end.id) break;
      chosen.push(token);
      onText?.(this.text(chosen));
    }
    return { translation: this.text(chosen) };
  }

  /**
   * rnnzoo.engines.beam.BeamSampler(width) on one sentence (length penalty 1, early stop,
   * one hypothesis returned): the `width` beams step together as one batch; each step scores
   * every beam's 2 * width likeliest tokens by summed float64 log-probability, ranks them
   * (ties: the lower beam, then the lower token), an end token in the top `width` finishes a
   * hypothesis (score log_prob / length), the best `width` others are the next beams, whose
   * state rows follow them. Stops once `width` hypotheses finished, or after max_steps (the
   * live beams then count too). Returns the best hypothesis' ids.
   */
  async beamSearch(width, state, fixed) {
    const { start, end, symbols } = this.step;
    const limit = Math.min(symbols.count, 64);  // rnnzoo.limits' max_beam_width
    if (!Number.isInteger(width) || width < 1 || width > limit) {
      throw new Error(`beam: expected an integer in [1, ${limit}], got ${width}`);
    }
    const tile = (t) => {
      const data = new t.data.constructor(t.data.length * width);
      for (let b = 0; b < width; b++) data.set(t.data, b * t.data.length);
      return new this.ort.Tensor(t.type, data, [width, ...t.dims.slice(1)]);
    };
    const tiledFixed = Object.fromEntries(Object.entries(fixed).map(([k, t]) => [k, tile(t)]));
    let current = Object.fromEntries(Object.entries(state).map(([k, t]) => [k, tile(t)]));
    let tokens = new Array(width).fill(start.feed);
    let scores = Array.from({ length: width }, (_, b) => (b === 0 ? 0 : -Infinity));
    const finished = [];  // {score, prefixStep, slot}, best first, at most `width`
    const tokHist = [];
    const parHist = [];
    let steps = 0;
    let done = false;
    for (let t = 0; t < end.max_steps && !done; t++) {
      const out = await this.decode(tokens, current, tiledFixed);
      steps += 1;
      const vocab = out.width;
      const k = Math.min(2 * width, vocab);
      const cands = [];
      for (let b = 0; b < width; b++) {
        const row = out.logits.subarray(b * vocab, (b + 1) * vocab);
        const top = [];  // the k largest logits of the row, best first (ties: lower id)
        for (let i = 0; i < vocab; i++) {
          if (top.length === k && row[i] <= row[top[k - 1]]) continue;
          let j = Math.min(top.length, k - 1);
          while (j > 0 && row[top[j - 1]] < row[i]) j -= 1;
          top.splice(j, 0, i);
          if (top.length > k) top.pop();
        }
        const logProbs = logSoftmaxAt(row, top);
        top.forEach((id, j) => cands.push({ score: scores[b] + logProbs[j], flat: b * vocab + id }));
      }
      cands.sort((a, c) => (c.score - a.score) || (a.flat - c.flat) || 0);
      const best = cands.slice(0, 2 * width);
      for (const c of best.slice(0, width)) {  // finished: end tokens among the top `width`
        if (c.flat % vocab === end.id && Number.isFinite(c.score)) {
          finished.push({ score: c.score / (t + 1), prefixStep: t - 1, slot: Math.floor(c.flat / vocab) });
          finished.sort((a, c2) => c2.score - a.score);  // stable: ties keep their order
          finished.length = Math.min(finished.length, width);
        }
      }
      const live = [...best.filter((c) => c.flat % vocab !== end.id),
        ...best.filter((c) => c.flat % vocab === end.id)].slice(0, width);
      scores = live.map((c) => (c.flat % vocab === end.id ? -Infinity : c.score));
      const src = live.map((c) => Math.floor(c.flat / vocab));
      tokens = live.map((c) => c.flat % vocab);
      tokHist.push(tokens);
      parHist.push(src);
      current = Object.fromEntries(Object.entries(out.state).map(([key, s]) => {
        const n = s.data.length / width;
        const data = new s.data.constructor(s.data.length);
        src.forEach((from, b) => data.set(s.data.subarray(from * n, (from + 1) * n), b * n));
        return [key, new this.ort.Tensor(s.type, data, s.dims)];
      }));
      done = !Number.isFinite(Math.max(...scores)) || finished.length >= width;
    }
    const pool = [...finished];
    if (!done) {  // max_steps ran out: the live beams are hypotheses too
      scores.forEach((s, slot) => {
        if (Number.isFinite(s)) pool.push({ score: s / steps, prefixStep: steps - 1, slot });
      });
    }
    pool.sort((a, c) => c.score - a.score);
    if (!pool.length) return [];
    const ids = [];
    let { slot } = pool[0];
    for (let s = pool[0].prefixStep; s >= 0; s--) {
      ids.push(tokHist[s][slot]);
      slot = parHist[s][slot];
    }
    return ids.reverse();  // the end token (if any) is not part of the text
  }
}

// -- forecasting (apps/forecasting/inference.py) -------------------------------------------------

class Forecaster extends BundleModel {
  async init() {
    const pre = await this.asset('preprocessor');  // columns, targets, lookback, horizon, mean, std
    Object.assign(this, { columns: pre.columns, targets: pre.targets, lookback: pre.lookback,
      horizon: pre.horizon, mean: pre.mean, std: pre.std });
    this.targetIndex = pre.targets.map((t) => pre.columns.indexOf(t));
  }

  /** Rows [time][columns] from a window given as numbers (one column), rows, or their JSON or
   * comma/space-separated text. */
  rows(window) {
    if (typeof window === 'string') {
      const text = window.trim();
      window = text.startsWith('[') ? JSON.parse(text) : text.split(/[\s,;]+/).map(Number);
    }
    const rows = window.map((r) => (Array.isArray(r) ? r.map(Number) : [Number(r)]));
    const bad = rows.findIndex((r) => r.length !== this.columns.length || !r.every(Number.isFinite));
    if (bad >= 0) {
      throw new Error(`window: row ${bad} is not ${this.columns.length} finite number(s) `
        + `(columns ${this.columns.join(', ')})`);
    }
    if (rows.length < this.lookback) {
      throw new Error(`window: ${rows.length} time steps, but this model looks back `
        + `${this.lookback}; pass at least ${this.lookback} rows`);
    }
    return rows;
  }

  /** {forecast: [horizon][targets] in the data's units, targets, history: the target columns
   * of the rows the model read}: z-scored with the training mean and std (float64, then
   * float32), unscaled after. */
  async run(window) {
    const rows = this.rows(window).slice(-this.lookback);
    const c = this.columns.length;
    const x = new Float32Array(this.lookback * c);
    rows.forEach((r, t) => r.forEach((v, j) => { x[t * c + j] = (v - this.mean[j]) / this.std[j]; }));
    const out = await this.runGraph('model', {
      window: new this.ort.Tensor('float32', x, [1, this.lookback, c]),
    });
    const y = out.forecast.data;
    const d = this.targets.length;
    const forecast = Array.from({ length: this.horizon }, (_, h) => this.targetIndex.map(
      (j, k) => y[h * d + k] * this.std[j] + this.mean[j]));
    return { forecast, targets: this.targets,
      history: rows.map((r) => this.targetIndex.map((j) => r[j])) };
  }
}

// -- token classification (apps/token_classification/inference.py) -----------------------------

/** Python's str offsets count code points; JavaScript's count UTF-16 units. */
function codePointOffsets(text) {
  const at = new Array(text.length + 1);
  let n = 0;
  for (let i = 0; i < text.length; n++) {
    at[i] = n;
    const step = text.codePointAt(i) > 0xffff ? 2 : 1;
    if (step === 2) at[i + 1] = n;
    i += step;
  }
  at[text.length] = n;
  return at;
}

/** Chunks of a tag sequence, read as conlleval does (rnnzoo.data.conll.spans). */
export function spans(tags) {
  const out = [];
  let start = -1;
  let label = '';
  let prev = 'O';
  tags.forEach((tag, i) => {
    const [prefix, type] = tag === 'O' ? ['O', ''] : [tag.slice(0, 1), tag.slice(2)];
    const begins = prefix === 'B' || prefix === 'S' || ((prefix === 'I' || prefix === 'E')
      && (start < 0 || type !== label || prev === 'E' || prev === 'S'));
    if (start >= 0 && (prefix === 'O' || begins)) { out.push([start, i, label]); start = -1; }
    if (prefix !== 'O' && begins) { start = i; label = type; }
    if (start >= 0 && (prefix === 'E' || prefix === 'S')) { out.push([start, i + 1, label]); start = -1; }
    prev = prefix;
  });
  if (start >= 0) out.push([start, tags.length, label]);
  return out;
}

/** The best tag path of a linear-chain CRF, in float32 as the numpy decoder (ties: first). */
export function viterbi(emissions, length, tags, transitions, start, end) {
  const f = Math.fround;
  const row = (t) => emissions.subarray(t * tags, (t + 1) * tags);
  let delta = Array.from(row(0), (e, k) => f(start[k] + e));
  const backs = [];
  for (let t = 1; t < length; t++) {
    const back = new Array(tags);
    const next = new Array(tags);
    const e = row(t);
    for (let j = 0; j < tags; j++) {
      let best = 0;
      let score = f(delta[0] + transitions[0][j]);
      for (let i = 1; i < tags; i++) {
        const s = f(delta[i] + transitions[i][j]);
        if (s > score) { score = s; best = i; }
      }
      back[j] = best;
      next[j] = f(score + e[j]);
    }
    backs.push(back);
    delta = next;
  }
  let best = argmax(delta.map((d, k) => f(d + end[k])));
  const path = [best];
  for (let t = backs.length - 1; t >= 0; t--) { best = backs[t][best]; path.push(best); }
  return path.reverse();
}

class Tagger extends BundleModel {
  async init() {
    const prep = this.manifest.preprocessing;
    const tags = await this.asset('tags');
    this.tagNames = tags.tags;
    this.scheme = tags.scheme;
    this.words = new WordTokenizer(await this.asset('tokenizer'));
    this.chars = new WordTokenizer(await this.asset('chars'));
    this.maxWordChars = prep.max_word_chars;
    this.lowercase = prep.lowercase ?? true;
    this.normalizeDigits = prep.normalize_digits ?? true;
    const f32 = (v) => v.map(Math.fround);
    this.crf = prep.crf ? { transitions: prep.crf.transitions.map(f32), start: f32(prep.crf.start),
      end: f32(prep.crf.end) } : null;
  }

  /** (token, start, end) in UTF-16 units, split as CoNLL text is. */
  tokenize(text) {
    return [...text.matchAll(new RegExp(CONLL_RE, 'gu'))]
      .map((m) => [m[0], m.index, m.index + m[0].length]);
  }

  wordId(word) {
    if (this.lowercase) word = word.toLowerCase();
    if (this.normalizeDigits) word = word.replace(/\p{Nd}/gu, '0');
    return this.words.index.get(word) ?? 1;
  }

  /** {tokens, tags, entities: [{text, type, token_start, token_end, start, end}]}; offsets
   * count code points, as Python's do. */
  async run(text) {
    const tokens = this.tokenize(text);
    if (!tokens.length) return { tokens: [], tags: [], entities: [] };
    const words = tokens.map(([w]) => [...w]);
    const n = words.length;
    const width = Math.max(1, Math.min(this.maxWordChars, Math.max(...words.map((w) => w.length))));
    const chars = new Int32Array(n * width);
    words.forEach((w, j) => w.slice(0, width).forEach((c, k) => {
      chars[j * width + k] = this.chars.index.get(c) ?? 1;
    }));
    const out = await this.runGraph('model', {
      words: this.int32(tokens.map(([w]) => this.wordId(w)), [1, n]),
      chars: new this.ort.Tensor('int32', chars, [1, n, width]),
    });
    const emissions = out.emissions.data;
    const k = this.tagNames.length;
    const path = this.crf
      ? viterbi(emissions, n, k, this.crf.transitions, this.crf.start, this.crf.end)
      : Array.from({ length: n }, (_, t) => argmax(emissions.subarray(t * k, (t + 1) * k)));
    const tags = path.map((i) => this.tagNames[i]);
    const at = codePointOffsets(text);
    const entities = this.scheme === null ? [] : spans(tags).map(([s, e, type]) => ({
      text: text.slice(tokens[s][1], tokens[e - 1][2]), type, token_start: s, token_end: e,
      start: at[tokens[s][1]], end: at[tokens[e - 1][2]],
    }));
    return { tokens: tokens.map(([w]) => w), tags, entities };
  }
}

// -- music generation (apps/music_generation/inference.py, nade.py) --------------------------------

const sigmoid = (z) => 0.5 * (1 + Math.tanh(0.5 * z));  // as rnnzoo's _sigmoid

/** nade.choose_keys for one key: on when u < sigmoid(z / T) (T = 0: z > 0); top_p < 1: a key
 * whose likelier outcome has at least that probability takes it. */
function chooseKey(z, u, temperature, topP) {
  if (temperature === 0) return z > 0;
  const p = sigmoid(z / temperature);
  if (topP < 1 && Math.max(p, 1 - p) >= topP) return z > 0;
  return u < p;
}

/** (start step, end step, MIDI pitch) of every note, sorted: consecutive frames holding a key
 * are one held note (rnnzoo's note_segments). */
export function noteSegments(pitches) {
  const segments = [];
  const open = new Map();  // pitch -> start step
  pitches.forEach((frame, t) => {
    const now = new Set(frame);
    for (const [pitch, start] of open) {
      if (!now.has(pitch)) { segments.push([start, t, pitch]); open.delete(pitch); }
    }
    for (const pitch of frame) if (!open.has(pitch)) open.set(pitch, t);
  });
  for (const [pitch, start] of open) segments.push([start, pitches.length, pitch]);
  return segments.sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
}

/**
 * A generated piece as a Standard MIDI File (Uint8Array), written with @tonejs/midi (pass its
 * `Midi` class): one track, 480 ticks per quarter, `qpm` quarters a minute, a frame lasting
 * 1/steps_per_quarter of a quarter, velocity 90, program 0, as rnnzoo's write_midi writes it.
 */
export function midiFile(Midi, { pitches, steps_per_quarter: spq = 1, qpm = 100 }) {
  const midi = new Midi();
  midi.header.setTempo(qpm);
  const track = midi.addTrack();
  track.name = 'rnnzoo';
  const ticks = midi.header.ppq / spq;
  for (const [start, end, pitch] of noteSegments(pitches)) {
    track.addNote({ midi: pitch, ticks: start * ticks, durationTicks: (end - start) * ticks,
      velocity: 90 / 127 });
  }
  return midi.toArray();
}

class MusicGenerator extends BundleModel {
  async init() {
    this.step = this.manifest.stream.graphs.decoder;
    const { keys } = this.step;
    this.keys = keys.count;
    this.lowest = keys.lowest_pitch;
    this.stepsPerQuarter = this.manifest.preprocessing.steps_per_quarter ?? 1;
    if (keys.activation === 'nade') {  // W, V [88, H] once, from the bundle's nade graph
      const out = await this.runGraph('nade', {
        keys: this.int32(Array.from({ length: this.keys }, (_, k) => k), [this.keys]) });
      this.nade = { W: Float64Array.from(out.W.data), V: Float64Array.from(out.V.data),
        hidden: out.W.dims[1] };
    } else if (keys.activation !== 'sigmoid') {
      throw new Error(`music: key activation ${JSON.stringify(keys.activation)} is not supported`);
    }
  }

  /** A primer as Python's pitches_to_roll reads it: pitch lists (or their JSON), MIDI
   * pitches lowest_pitch.. lowest_pitch + 87; '' or [] for none. */
  primer(input) {
    if (typeof input === 'string') input = input.trim() ? JSON.parse(input) : [];
    if (!Array.isArray(input)) throw new Error('primer: expected a list of time steps (lists of MIDI pitches)');
    const high = this.lowest + this.keys - 1;
    return input.map((frame, t) => {
      if (!Array.isArray(frame)) throw new Error(`primer, step ${t}: expected a list of MIDI pitches`);
      return frame.map((p) => {
        if (!Number.isInteger(p) || p < this.lowest || p > high) {
          throw new Error(`primer, step ${t}: note ${JSON.stringify(p)} is not a MIDI pitch `
            + `in the piano range ${this.lowest}-${high}`);
        }
        return p;
      });
    });
  }

  /** One decoder step on a frame of pitches: the logits and the next state. */
  async decode(pitches, state) {
    const frame = new Int32Array(this.keys);
    for (const p of pitches) frame[p - this.lowest] = 1;
    const out = await this.runGraph('decoder', { ...state,
      [this.step.keys.input]: new this.ort.Tensor('int32', frame, [1, this.keys]) });
    return { logits: out[this.step.keys.output].data,
      state: Object.fromEntries(this.step.state.map((s) => [s.input, out[s.output]])) };
  }

  /** The next frame's pitches from the decoder's logits and 88 uniforms: independent keys, or
   * (NADE) key by key, lowest first, each key's logit given the keys chosen below it. */
  choose(logits, u, temperature, topP) {
    const on = [];
    if (!this.nade) {
      for (let k = 0; k < this.keys; k++) {
        if (chooseKey(logits[k], u[k], temperature, topP)) on.push(this.lowest + k);
      }
      return on;
    }
    const { W, V, hidden } = this.nade;
    const a = Float64Array.from(logits.subarray(this.keys, this.keys + hidden));  // b_h
    let h = a.map(sigmoid);
    for (let k = 0; k < this.keys; k++) {
      let dot = 0;  // z = b_v[k] + V[k] . h
      for (let j = 0; j < hidden; j++) dot += V[k * hidden + j] * h[j];
      if (chooseKey(logits[k] + dot, u[k], temperature, topP)) {
        on.push(this.lowest + k);
        for (let j = 0; j < hidden; j++) a[j] += W[k * hidden + j];
        h = a.map(sigmoid);
      }
    }
    return on;
  }

  /**
   * The frames after `primer` (pitch lists), one at a time (an async iterator of pitch lists):
   * the all-zero start frame and the primer through the decoder, then `steps` frames each
   * fed back; 88 uniforms per frame from numpy's generator for `seed`, so a seed gives the
   * Python runtime's frames. temperature 0: the keys with probability > 0.5.
   */
  async* generate(primer = [], { steps = 64, temperature = 1, seed = null, top_p: topP = null } = {}) {
    if (!Number.isInteger(steps) || steps < 1) throw new Error('steps: an integer >= 1');
    if (!(temperature >= 0) || !Number.isFinite(temperature)) throw new Error('temperature: a number >= 0');
    if (topP !== null && !(topP > 0 && topP <= 1)) throw new Error('top_p: a number in (0, 1]');
    let state = Object.fromEntries(this.step.state.map(({ input, dtype, shape }) => {
      const dims = shape.map((d) => (d === 'batch' ? 1 : d));
      return [input, new this.ort.Tensor(dtype, new Float32Array(dims[1]), dims)];
    }));
    let out;
    for (const frame of [[], ...this.primer(primer)]) {
      out = await this.decode(frame, state);
      state = out.state;
    }
    const rng = new NumpyRandom(seed ?? Math.floor(Math.random() * 2 ** 32));
    for (let t = 0; t < steps; t++) {
      const u = Array.from({ length: this.keys }, () => rng.random());
      const frame = this.choose(out.logits, u, temperature, topP ?? 1);
      yield frame;
      if (t + 1 < steps) out = await this.decode(frame, out.state);
    }
  }

  /** {pitches: [per frame, the MIDI pitches held], steps_per_quarter}, as rnnzoo serve
   * answers; `onFrame` sees each frame as it is sampled. midiFile() writes it as MIDI. */
  async run(primer = '', options = {}) {
    const pitches = [];
    for await (const frame of this.generate(primer, options)) {
      pitches.push(frame);
      options.onFrame?.(frame, pitches);
    }
    return { pitches, steps_per_quarter: this.stepsPerQuarter };
  }
}

// -- speech recognition (apps/speech_recognition/data.py, inference.py; engines/ctc.py) ---------

/** A WAV file's samples as float32 mono in [-1, 1] and its rate, as rnnzoo's read_wav reads
 * it (scipy's reader, then to_float_audio): 8-bit unsigned, 16/24/32-bit PCM or 32/64-bit
 * float, any channel count (averaged). */
export function readWav(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tag = (at) => String.fromCharCode(...bytes.subarray(at, at + 4));
  const hint = 'convert it, e.g. ffmpeg -i INPUT -ac 1 -ar 8000 -c:a pcm_s16le OUTPUT.wav';
  if (bytes.length < 12 || tag(0) !== 'RIFF' || tag(8) !== 'WAVE') {
    throw new Error(`not a WAV file (no RIFF/WAVE header); ${hint}`);
  }
  let fmt = null;
  for (let at = 12, size = 0; at + 8 <= bytes.length; at += 8 + size + (size % 2)) {
    size = view.getUint32(at + 4, true);
    if (tag(at) === 'fmt ') {
      let format = view.getUint16(at + 8, true);
      if (format === 0xfffe) format = view.getUint16(at + 32, true);  // WAVE_FORMAT_EXTENSIBLE
      fmt = { format, channels: view.getUint16(at + 10, true), rate: view.getUint32(at + 12, true),
        bits: view.getUint16(at + 22, true) };
    } else if (tag(at) === 'data' && fmt) {
      const { format, channels, bits } = fmt;
      const width = bits / 8;
      const n = Math.floor(Math.min(size, bytes.length - at - 8) / (width * channels));
      const read = {
        '1/8': (o) => (view.getUint8(o) - 128) / 128,
        '1/16': (o) => view.getInt16(o, true) / 32768,
        '1/24': (o) => Math.fround(((view.getInt8(o + 2) << 16) | view.getUint16(o, true)) / 2 ** 23),
        '1/32': (o) => Math.fround(view.getInt32(o, true) / 2 ** 31),
        '3/32': (o) => view.getFloat32(o, true),
        '3/64': (o) => Math.fround(view.getFloat64(o, true)),
      }[`${format}/${bits}`];
      if (!read) throw new Error(`unsupported WAV sample format ${format}, ${bits} bits; ${hint}`);
      if (!n) throw new Error('the audio is empty (0 samples)');
      const samples = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        let sum = 0;
        for (let c = 0; c < channels; c++) sum = Math.fround(sum + read(at + 8 + (i * channels + c) * width));
        samples[i] = sum / channels;
        if (!Number.isFinite(samples[i])) throw new Error(`sample ${i} is not a finite number`);
      }
      return { samples, rate: fmt.rate };
    }
  }
  throw new Error(`a WAV file without ${fmt ? 'a data' : 'an fmt'} chunk; ${hint}`);
}

const bessel0 = (x) => {  // the modified Bessel function I0, by its power series
  let [sum, term] = [1, 1];
  for (let k = 1; term > 1e-17 * sum; k++) { term *= (x / (2 * k)) ** 2; sum += term; }
  return sum;
};
const sinc = (x) => (x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x));

/** scipy.signal.resample_poly(x, up, down) (its Kaiser(5) low-pass, zero padding) for a
 * float32 signal, as rnnzoo's resample calls it: x at rate down * r is returned at up * r. */
export function resamplePoly(x, up, down) {
  const gcd = (a, b) => (b ? gcd(b, a % b) : a);
  const g = gcd(up, down);
  [up, down] = [up / g, down / g];
  if (up === 1 && down === 1) return Float32Array.from(x);
  const nOut = Math.ceil((x.length * up) / down);
  const maxRate = Math.max(up, down);
  const half = 10 * maxRate;
  const taps = 2 * half + 1;
  let h = Array.from({ length: taps }, (_, i) => {  // firwin(taps, 1 / maxRate, ('kaiser', 5))
    const m = i - half;
    const r = 2 * i / (taps - 1) - 1;
    return (sinc(m / maxRate) / maxRate) * (bessel0(5 * Math.sqrt(1 - r * r)) / bessel0(5));
  });
  const total = h.reduce((a, b) => a + b, 0);
  h = h.map((v) => Math.fround(Math.fround(v / total) * up));  // float32, as x
  const prePad = down - (half % down);
  const preRemove = Math.floor((half + prePad) / down);
  const y = new Float32Array(nOut);
  for (let i = 0; i < nOut; i++) {  // output i is the filtered, upsampled signal at k
    const k = (preRemove + i) * down - prePad;
    let acc = 0;
    for (let j = ((k % up) + up) % up; j < taps && j <= k; j += up) {
      const n = (k - j) / up;
      if (n < x.length) acc += h[j] * x[n];
    }
    y[i] = acc;
  }
  return y;
}

const linspace = (a, b, n) => Array.from({ length: n }, (_, i) => (i === n - 1 ? b : a + ((b - a) / (n - 1)) * i));
const hzToMel = (f) => (f >= 1000 ? 15 + Math.log(Math.max(f, 1e-10) / 1000) / (Math.log(6.4) / 27) : f / (200 / 3));
const melToHz = (m) => (m >= 15 ? 1000 * Math.exp((Math.log(6.4) / 27) * (m - 15)) : m * (200 / 3));

/** rnnzoo's mel_filterbank: [n_mels][1 + n_fft / 2] Slaney triangles of equal area. */
export function melFilterbank(rate, nFft, nMels, fmin, fmax) {
  const freqs = linspace(0, rate / 2, 1 + nFft / 2);
  const edges = linspace(hzToMel(fmin), hzToMel(fmax), nMels + 2).map(melToHz);
  return Array.from({ length: nMels }, (_, m) => {
    const [lo, mid, hi] = [edges[m], edges[m + 1], edges[m + 2]];
    return freqs.map((f) => Math.max(0, Math.min((f - lo) / (mid - lo), (hi - f) / (hi - mid)))
      * (2 / (hi - lo)));
  });
}

/** An in-place complex FFT of length n (a power of two, as rnnzoo's n_fft is). */
function radix2(n) {
  if (n & (n - 1)) throw new Error(`n_fft ${n} is not a power of two`);
  const cos = Array.from({ length: n / 2 }, (_, i) => Math.cos((2 * Math.PI * i) / n));
  const sin = Array.from({ length: n / 2 }, (_, i) => Math.sin((2 * Math.PI * i) / n));
  return (re, im) => {
    for (let i = 1, j = 0; i < n; i++) {  // bit-reversed order
      let bit = n >> 1;
      for (; j & bit; bit >>= 1) j ^= bit;
      j ^= bit;
      if (i < j) {
        let v = re[i]; re[i] = re[j]; re[j] = v;
        v = im[i]; im[i] = im[j]; im[j] = v;
      }
    }
    for (let size = 2; size <= n; size *= 2) {
      const step = n / size;
      for (let start = 0; start < n; start += size) {
        for (let k = 0, a = start, b = start + size / 2; k < size / 2; k++, a++, b++) {
          const tr = re[b] * cos[k * step] + im[b] * sin[k * step];
          const ti = im[b] * cos[k * step] - re[b] * sin[k * step];
          re[b] = re[a] - tr;
          im[b] = im[a] - ti;
          re[a] += tr;
          im[a] += ti;
        }
      }
    }
  };
}

/**
 * Log-mel frames [frames][n_mels] (float32) as rnnzoo's log_mel computes them: a periodic Hann
 * window of win_length, |rfft(n_fft)|^2, the mel filters, log(x + 1e-6). Causal framing:
 * floor(n / hop) frames, frame t the window ending at sample (t + 1) * hop (zeros before the
 * start); centred framing: 1 + floor(n / hop) frames centred every hop, zero padded.
 */
export function logMel(audio, p, filters = melFilterbank(p.sample_rate, p.n_fft, p.n_mels, p.fmin, p.fmax)) {
  const { n_fft: nFft, win_length: win, hop_length: hop } = p;
  const hann = Array.from({ length: win }, (_, i) => 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / win));
  const lpad = p.causal ? 0 : Math.floor((nFft - win) / 2);  // the window's place in n_fft
  const count = p.causal ? Math.floor(audio.length / hop) : 1 + Math.floor(audio.length / hop);
  const first = (t) => (p.causal ? (t + 1) * hop - win : t * hop - nFft / 2 + lpad);
  const fft = radix2(nFft);
  const [re, im] = [new Float64Array(nFft), new Float64Array(nFft)];
  const power = new Float64Array(1 + nFft / 2);
  return Array.from({ length: count }, (_, t) => {
    const at = first(t);
    re.fill(0);
    im.fill(0);
    for (let i = 0; i < win; i++) {  // the window at offset lpad of n_fft, zeros around it
      const j = at + i;
      re[lpad + i] = (j >= 0 && j < audio.length ? audio[j] : 0) * hann[i];
    }
    fft(re, im);
    for (let k = 0; k < power.length; k++) power[k] = re[k] * re[k] + im[k] * im[k];
    return Float32Array.from(filters, (w) => {
      let sum = 0;
      for (let k = 0; k < power.length; k++) sum += power[k] * w[k];
      return Math.log(sum + 1e-6);
    });
  });
}

/** CTC best path over [frames][1 + K] log-probabilities from the label before them (`last`):
 * the labels they add and the last frame's label (rnnzoo's ctc_greedy_continue). */
function ctcGreedy(logProbs, frames, classes, last = 0, blank = 0) {
  const labels = [];
  for (let t = 0; t < frames; t++) {
    const best = argmax(logProbs.subarray(t * classes, (t + 1) * classes));
    if (best !== blank && best !== last) labels.push(best);
    last = best;
  }
  return { labels, last };
}

class SpeechRecognizer extends BundleModel {
  async init() {
    const asset = await this.asset('speech');  // alphabet, features (params), mean, std
    Object.assign(this, { alphabet: asset.alphabet, params: asset.features, mean: asset.mean,
      std: asset.std });
    this.filters = melFilterbank(this.params.sample_rate, this.params.n_fft, this.params.n_mels,
      this.params.fmin, this.params.fmax);
    this.stride = this.manifest.preprocessing.frame_stride ?? 1;
    this.streaming = this.manifest.stream?.graphs?.stream ?? null;
  }

  /** Mono float32 samples at the model's rate from a WAV file (bytes, or base64 as rnnzoo
   * serve takes it) or {samples, sample_rate}; other rates resampled as Python does. */
  audio(input) {
    let samples;
    let rate;
    if (typeof input === 'string') {  // base64 (or a data: URL)
      const text = atob(input.replace(/^data:[^,]*,/, ''));
      input = new Uint8Array(text.length);
      for (let i = 0; i < text.length; i++) input[i] = text.charCodeAt(i);
    }
    if (input instanceof ArrayBuffer) input = new Uint8Array(input);
    if (input instanceof Uint8Array) ({ samples, rate } = readWav(input));
    else ({ samples, sample_rate: rate = this.params.sample_rate } = input);
    samples = Float32Array.from(samples);
    if (samples.length / rate > 600) {
      throw new Error(`${(samples.length / rate).toFixed(1)} seconds of audio, more than `
        + "rnnzoo's max_audio_seconds (600)");
    }
    return rate === this.params.sample_rate ? samples
      : resamplePoly(samples, this.params.sample_rate, rate);
  }

  /** Normalised log-mel frames [frames][n_mels] (float32), the model's input. */
  features(audio) {
    const f = Math.fround;
    return logMel(audio, this.params, this.filters)
      .map((row) => row.map((v, m) => f(f(v - this.mean[m]) / this.std[m])));
  }

  /**
   * {text, seconds, frames (, features)}: the best-path transcript of a WAV file. A streaming
   * model runs its `stream` graph on `chunk` feature frames at a time (a multiple of the frame
   * stride; its state carried as bundle.json's "stream" says), `onText` seeing the transcript
   * grow (awaited: a page can paint); a bidirectional one runs `model` once on the whole
   * utterance.
   */
  async run(input, { onText, chunk = 10, features: withFeatures = false } = {}) {
    const audio = this.audio(input);
    const feats = this.features(audio);
    const n = this.params.n_mels;
    const tensor = (rows) => new this.ort.Tensor('float32', Float32Array.from(rows.flatMap((r) => [...r])), [1, rows.length, n]);
    const classes = this.alphabet.length + 1;
    let labels = [];
    if (!feats.length) {  // shorter than one hop: nothing to read
    } else if (this.streaming) {
      const desc = this.streaming;
      let state = Object.fromEntries(desc.state.map(({ input: name, shape }) => {
        const dims = shape.map((d) => (d === 'batch' ? 1 : d));
        return [name, new this.ort.Tensor('float32', new Float32Array(dims.reduce((a, b) => a * b)), dims)];
      }));
      const step = Math.max(this.stride, chunk - (chunk % this.stride));
      let last = 0;
      for (let at = 0; at < feats.length; at += step) {
        const out = await this.runGraph('stream', { ...state, [desc.features.input]: tensor(feats.slice(at, at + step)) });
        state = Object.fromEntries(desc.state.map((s) => [s.input, out[s.output]]));
        const lp = out[desc.decode.output];
        const got = ctcGreedy(lp.data, lp.dims[1], classes, last);
        labels.push(...got.labels);
        last = got.last;
        await onText?.(labels.map((k) => this.alphabet[k - 1]).join(''));  // may yield
      }
    } else {
      const out = await this.runGraph('model', { features: tensor(feats),
        mask: new this.ort.Tensor('float32', new Float32Array(feats.length).fill(1), [1, feats.length]) });
      labels = ctcGreedy(out.log_probs.data, Math.ceil(feats.length / this.stride), classes).labels;
    }
    const result = { text: labels.map((k) => this.alphabet[k - 1]).join(''),
      seconds: audio.length / this.params.sample_rate, frames: feats.length };
    if (withFeatures) result.features = feats.map((r) => Array.from(r));
    return result;
  }
}

export const TASKS = {
  'text-classification': TextClassifier,
  'text-generation': CharLanguageModel,
  'token-classification': Tagger,
  translation: Translator,
  forecasting: Forecaster,
  'music-generation': MusicGenerator,
  'speech-recognition': SpeechRecognizer,
};
