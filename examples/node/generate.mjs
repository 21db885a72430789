// Greedy text generation from an rnnzoo char-LM ONNX bundle with onnxruntime-node, carrying the
// recurrent state as bundle.json's "stream" object describes it (no Python, no rnnzoo).
//
//   npm install
//   node generate.mjs --prompt "ROMEO:" --steps 50 [--bundle DIR] [--digest SHA256]
//
// Prints the generated continuation (without the prompt) on stdout, the bundle digest on stderr.
// The files are checked against SHA256SUMS first; --digest pins the whole bundle.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';

const here = path.dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    bundle: {
      type: 'string',
      default: path.join(here, '../../presets/text_generation/rnnzoo_presets_text_generation',
        'charlm_lstm.shakespeare/onnx/fp32'),
    },
    prompt: { type: 'string', default: 'ROMEO:' },
    steps: { type: 'string', default: '50' },
    digest: { type: 'string' },
  },
});

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

// 1. Integrity: every file against SHA256SUMS (bundle.json included); the digest names the bundle.
function verify(dir, pinned) {
  const listing = readFileSync(path.join(dir, 'SHA256SUMS'));
  for (const line of listing.toString('utf8').split('\n').filter(Boolean)) {
    const [hash, file] = [line.slice(0, 64), line.slice(66)];
    if (sha256(readFileSync(path.join(dir, file))) !== hash) {
      throw new Error(`${file}: sha256 mismatch; the bundle is corrupt or was modified`);
    }
  }
  const digest = sha256(listing);
  if (pinned && pinned.replace(/^sha256[:=]/, '').toLowerCase() !== digest) {
    throw new Error(`bundle digest ${digest} is not the pinned ${pinned}`);
  }
  return digest;
}

async function main() {
  const digest = verify(args.bundle, args.digest);
  const manifest = JSON.parse(readFileSync(path.join(args.bundle, 'bundle.json'), 'utf8'));

  // 2. What to carry: the one-step graph's state inputs and how to start.
  if (!manifest.stream?.graphs?.decoder?.symbols) {
    throw new Error('bundle.json has no "stream" description of a char-LM decoder; re-export '
      + 'the bundle (or run: python -m rnnzoo.export.migrate DIR)');
  }
  const step = manifest.stream.graphs.decoder;
  const { symbols, start } = step;
  const vocabulary = JSON.parse(
    readFileSync(path.join(args.bundle, symbols.vocabulary), 'utf8'))[symbols.key];
  const session = await ort.InferenceSession.create(
    path.join(args.bundle, manifest.graphs.decoder.file));

  const ARRAYS = { float32: Float32Array, int32: Int32Array };
  function zeros({ dtype, shape }) {
    const dims = shape.map((d) => (d === 'batch' ? 1 : d));
    return new ort.Tensor(dtype, new ARRAYS[dtype](dims.reduce((a, b) => a * b, 1)), dims);
  }
  let state = Object.fromEntries(step.state.map((s) => [s.input, zeros(s)]));  // initial: zeros

  // One step: a symbol id in, the logits of the next symbol out, the new state fed back next time.
  async function feed(id) {
    const out = await session.run({
      ...state, [symbols.input]: new ort.Tensor('int32', Int32Array.of(id), [1]),
    });
    state = Object.fromEntries(step.state.map((s) => [s.input, out[s.output]]));
    return out[symbols.output].data;
  }

  // Only the first `count` logits are characters: argmax (or a softmax) over those.
  function argmax(logits) {
    let best = 0;
    for (let i = 1; i < symbols.count; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }

  const ids = [...args.prompt].map((c) => {
    const id = vocabulary.indexOf(c);
    if (id <= 0) throw new Error(`prompt character ${JSON.stringify(c)} is not in the vocabulary`);
    return id;
  });
  let logits;
  for (const id of [start.feed, ...ids]) logits = await feed(id);  // the start symbol, then the prompt
  let text = '';
  for (let i = 0; i < Number(args.steps); i++) {
    const id = argmax(logits);
    text += vocabulary[id];
    logits = await feed(id);
  }
  process.stdout.write(text);
  process.stderr.write(`\nbundle digest sha256=${digest}\n`);
}

main().catch((error) => {
  process.stderr.write(`error: ${error.message}\n`);
  process.exit(1);
});
