// The page: pick a model from models.json, run it with rnnzoo.mjs on onnxruntime-web, show the
// result (class bars, text streaming in, highlighted entities) and its JSON in #result.
// ?model=NAME&input=TEXT runs once on load (also &steps=, &temperature=, &seed= for a
// generator, &beam= for a translator, &threads= for onnxruntime's wasm threads); window.rnnzoo.run() is the same call
// for scripts.

import * as ort from './ort/ort.wasm.min.mjs';
import { loadModel } from './rnnzoo.mjs';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
ort.env.wasm.wasmPaths = new URL('./ort/', import.meta.url).href;
// Threads need cross-origin isolation (COOP/COEP headers from the server); one thread otherwise.
ort.env.wasm.numThreads = globalThis.crossOriginIsolated
  ? Number(params.get('threads') ?? Math.min(4, navigator.hardwareConcurrency || 1)) : 1;

const site = await (await fetch('models.json')).json();
const byName = new Map(site.models.map((m) => [m.name, m]));
const loaded = new Map();
const checked = Boolean(globalThis.crypto?.subtle);

/** The model `name`, loaded once (its graphs are compiled on first use). */
function load(name) {
  const info = byName.get(name);
  if (!info) throw new Error(`no model ${JSON.stringify(name)} on this site`);
  // Files checked against the bundle's sha256 and pinned to models.json's digest where the
  // browser can hash (a secure context: https, localhost); read unchecked elsewhere.
  const check = checked ? { digest: info.digest } : { verify: false };
  if (!loaded.has(name)) loaded.set(name, loadModel(ort, info.path, check));
  return loaded.get(name);
}

/** The options the page's controls give a task's run(). */
function controlOptions(task) {
  if (task === 'text-generation') {
    return { steps: Number($('steps').value), temperature: Number($('temperature').value),
      seed: Number($('seed').value) };
  }
  if (task === 'translation') return { beam: Number($('beam').value) || null };
  return {};
}

function el(tag, { dataset = {}, ...props } = {}, ...children) {
  const e = Object.assign(document.createElement(tag), props);
  Object.assign(e.dataset, dataset);
  e.append(...children);
  return e;
}

const show = {
  'text-classification'(result) {
    const rows = Object.entries(result.probs).map(([name, p]) => el('div', { className: 'bar' },
      el('span', { className: 'name' }, name),
      el('span', { className: 'track' }, el('span', { className: 'fill', style: `width: ${(100 * p).toFixed(1)}%` })),
      el('span', {}, p.toFixed(4))));
    $('view').replaceChildren(el('p', { id: 'label' }, result.label), ...rows);
  },
  'token-classification'(result, input) {
    const out = el('p', { id: 'tagged' });
    const chars = [...input];  // entity offsets count code points
    let at = 0;
    for (const e of result.entities) {
      out.append(chars.slice(at, e.start).join(''),
        el('mark', { className: `ent ${e.type}`, title: e.type, dataset: { type: e.type } }, e.text));
      at = e.end;
    }
    out.append(chars.slice(at).join(''));
    $('view').replaceChildren(out);
  },
  translation(result) {
    $('view').replaceChildren(el('p', { id: 'translation' }, result.translation));
  },
  forecasting(result) {  // the window the model read and its forecast, first target
    const past = result.history.map((r) => r[0]);
    const future = result.forecast.map((r) => r[0]);
    const all = [...past, ...future];
    const [lo, hi] = [Math.min(...all), Math.max(...all)];
    const [w, h, n] = [760, 240, all.length];
    const xy = (v, i) => `${(i * (w - 20)) / (n - 1) + 10},${h - 10 - ((v - lo) / (hi - lo || 1)) * (h - 20)}`;
    const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    svg.id = 'series';
    svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
    const line = (points, colour) => {
      const p = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
      p.setAttribute('points', points.join(' '));
      p.setAttribute('fill', 'none');
      p.setAttribute('stroke', colour);
      p.setAttribute('stroke-width', '2');
      svg.append(p);
    };
    line(past.map(xy), '#555');
    line([past.at(-1), ...future].map((v, i) => xy(v, i + past.length - 1)), '#d9480f');
    $('view').replaceChildren(el('p', {}, `${future.length} steps of ${result.targets[0]} `
      + `after ${past.length} given (orange)`), svg);
  },
  'text-generation'() {},  // drawn as it streams (run below)
};

/** Run `name` on `input` and show it; resolves to the result written into #result. */
async function run(name, input, options = {}) {
  const info = byName.get(name);
  if (!info) throw new Error(`no model ${JSON.stringify(name)} on this site`);
  if ($('model').value !== name) select(name, false);
  document.body.dataset.state = 'running';
  $('error').hidden = true;
  $('result').textContent = '';
  const t0 = performance.now();
  try {
    const model = await load(name);
    const t1 = performance.now();
    let result;
    if (info.task === 'text-generation') {
      const text = el('span', { id: 'generated' });
      $('view').replaceChildren(el('div', { id: 'stream-text' },
        el('span', { className: 'prompt' }, input), text));
      let first = null;
      let painted = performance.now();
      let generated = '';
      for await (const piece of model.generate(input, options)) {
        first ??= performance.now() - t1;
        generated += piece;
        text.append(piece);
        if (performance.now() - painted > 30) {  // let the page draw the text so far
          await new Promise((resolve) => { setTimeout(resolve, 0); });
          painted = performance.now();
        }
      }
      result = { text: generated };
      $('status').textContent = `${generated.length} characters in ${(performance.now() - t1).toFixed(0)} ms `
        + `(first after ${first?.toFixed(0)} ms)`;
    } else {
      result = await model.run(input, options);
      show[info.task](result, input);
      $('status').textContent = `ran in ${(performance.now() - t1).toFixed(1)} ms`
        + (t1 - t0 > 5 ? ` (model loaded in ${(t1 - t0).toFixed(0)} ms)` : '');
    }
    $('result').textContent = JSON.stringify(result, null, 1);
    document.body.dataset.state = 'done';
    return result;
  } catch (error) {
    $('error').textContent = String(error?.message ?? error);
    $('error').hidden = false;
    document.body.dataset.state = 'error';
    throw error;
  }
}

function select(name, example = true) {
  const info = byName.get(name);
  $('model').value = name;
  $('description').textContent = `${info.task}, ${info.precision}: ${info.description}`;
  if (example) $('input').value = info.example;
  $('input-label').textContent = { 'text-generation': 'Prompt',
    forecasting: 'Window (numbers, or JSON rows [time][columns])' }[info.task] ?? 'Text';
  $('generation').hidden = info.task !== 'text-generation';
  $('decoding').hidden = info.task !== 'translation';
}

for (const m of site.models) $('model').append(el('option', { value: m.name }, m.name));
$('about').textContent = `onnxruntime-web ${site.onnxruntime_web}, ${ort.env.wasm.numThreads} `
  + `thread(s); model files ${checked ? 'checked against their sha256' : 'not checked (this '
  + 'page is not in a secure context: serve it over https or from localhost)'}.`;
$('model').addEventListener('change', () => select($('model').value));
$('run').addEventListener('click', () => {
  const name = $('model').value;
  run(name, $('input').value, controlOptions(byName.get(name).task)).catch(() => {});
});
window.rnnzoo = { run, load, site, ort };

const wanted = params.get('model');
if (wanted !== null && byName.has(wanted)) {
  select(wanted);
  if (params.has('input')) $('input').value = params.get('input');
  for (const key of ['steps', 'temperature', 'seed', 'beam']) {
    if (params.has(key)) $(key).value = params.get(key);
  }
  if (!params.has('temperature')) $('temperature').value = '0';  // a link is reproducible: greedy
  $('run').disabled = false;
  $('status').textContent = 'Running…';
  $('run').click();
} else {
  if (site.models.length) select(site.models[0].name);
  $('run').disabled = false;
  $('status').textContent = 'Ready.';
  document.body.dataset.state = 'ready';
  if (wanted !== null) {
    $('error').textContent = `no model ${JSON.stringify(wanted)} on this site (it has: `
      + `${site.models.map((m) => m.name).join(', ')})`;
    $('error').hidden = false;
    document.body.dataset.state = 'error';
  }
}
