// Run a built site's models under Node with the site's own ES module (rnnzoo.mjs) and
// onnxruntime-web's Node build (the same wasm kernels as the page): the Node half of the parity
// test (tests/test_web.py) and of benchmarks/bench_web.py.
//
//   npm ci
//   echo '[{"model": "sentiment_bilstm.sst2", "input": "a gorgeous film"}]' | node run.mjs SITE
//
// Prints one JSON object per case, in order: {"model", "input", "result", "ms"} (ms: the
// call's wall time; a music result also has midi_base64, written with @tonejs/midi as the page
// does), or {"model", "input", "error"}. Each bundle is checked against its
// SHA256SUMS and pinned to the digest the site's models.json records.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as ort from 'onnxruntime-web';
import tonejs from '@tonejs/midi';

const site = process.argv[2];
if (!site) {
  process.stderr.write('usage: node run.mjs SITE_DIR < cases.json\n');
  process.exit(2);
}
ort.env.wasm.numThreads = 1;
const { loadModel, midiFile } = await import(pathToFileURL(path.resolve(site, 'rnnzoo.mjs')).href);

function fileSource(dir) {
  const read = (rel) => readFileSync(path.join(dir, rel));
  return {
    json: async (rel) => JSON.parse(read(rel).toString('utf8')),
    bytes: async (rel) => new Uint8Array(read(rel)),
  };
}

const cases = JSON.parse(readFileSync(0, 'utf8'));
const digests = new Map(JSON.parse(readFileSync(path.join(site, 'models.json'), 'utf8')).models
  .map((m) => [m.name, m.digest]));
const models = new Map();
for (const { model, input, options = {} } of cases) {
  try {
    if (!models.has(model)) {
      const dir = path.join(site, 'models', model);
      models.set(model, await loadModel(ort, dir, { source: fileSource(dir),
        digest: digests.get(model) }));  // every file checked, the bundle pinned
    }
    const start = performance.now();
    const result = await models.get(model).run(input, options);
    const ms = performance.now() - start;
    if (models.get(model).task === 'music-generation') {
      result.midi_base64 = Buffer.from(midiFile(tonejs.Midi, result)).toString('base64');
    }
    process.stdout.write(`${JSON.stringify({ model, input, result, ms })}\n`);
  } catch (error) {
    process.stdout.write(`${JSON.stringify({ model, input, error: String(error?.message ?? error) })}\n`);
  }
}
