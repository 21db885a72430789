// The page: pick a model from models.json, run it with rnnzoo.mjs on onnxruntime-web, show the
// result (class bars, text streaming in, highlighted entities, a plot, a piano roll to play and
// download as MIDI, a transcript growing as a WAV file is read) and its JSON in #result.
// ?model=NAME&input=TEXT runs once on load (a recogniser's input: the URL of a WAV file; also
// &steps=, &temperature=, &seed= for a generator, &beam= for a translator, &threads= for
// onnxruntime's wasm threads); window.rnnzoo.run() is the same call for scripts.

import * as ort from './ort/ort.wasm.min.mjs';
import { loadModel, midiFile, noteSegments } from './rnnzoo.mjs';

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
  if (task === 'text-generation' || task === 'music-generation') {
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
  'speech-recognition'(result) {
    $('transcript').textContent = result.text;
    $('view').append(el('p', {}, `${result.seconds.toFixed(2)} s of audio, ${result.frames} `
      + `feature frames${result.text ? '' : ': nothing recognised'}`));
  },
  'music-generation'(result, input, name) {  // a piano roll, Play (WebAudio), MIDI download
    const notes = noteSegments(result.pitches);
    const all = notes.map((n) => n[2]);
    const [lo, hi] = [Math.min(...all, 60) - 2, Math.max(...all, 72) + 2];
    const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    svg.id = 'roll';
    svg.setAttribute('viewBox', `0 0 ${result.pitches.length} ${hi - lo}`);
    svg.setAttribute('preserveAspectRatio', 'none');
    for (const [start, end, pitch] of notes) {
      const r = document.createElementNS('http://www.w3.org/2000/svg', 'rect');
      Object.entries({ x: start, y: hi - pitch - 1, width: end - start, height: 1 })
        .forEach(([k, v]) => r.setAttribute(k, v));
      svg.append(r);
    }
    const play = el('button', { id: 'play', type: 'button' }, 'Play');
    play.addEventListener('click', () => {
      const ctx = new AudioContext();
      const seconds = schedule(ctx, result);
      play.textContent = `Playing (${seconds.toFixed(1)} s)`;
      setTimeout(() => { play.textContent = 'Play'; ctx.close(); }, seconds * 1000);
    });
    const download = el('a', { id: 'midi', download: `${name}.mid`, textContent: 'Download MIDI' });
    midiClass().then((Midi) => {
      download.href = URL.createObjectURL(new Blob([midiFile(Midi, result)], { type: 'audio/midi' }));
    });
    $('view').replaceChildren(el('p', {}, `${result.pitches.length} steps, ${notes.length} notes `
      + `(${result.steps_per_quarter} per quarter note, ${QPM} a minute) `, play, ' ', download), svg);
  },
};

const QPM = 100;  // rnnzoo's DEFAULT_QPM

/** @tonejs/midi's Midi class: lib/Midi.js (its browser build) loaded on first use. */
async function midiClass() {
  if (!globalThis.Midi) await import('./lib/Midi.js');
  return globalThis.Midi;
}

/**
 * Schedule a piece on a WebAudio context (live or offline) as rnnzoo's synthesize() renders it:
 * each held note a tone of four harmonics (amplitude 1/k) that decays as exp(-1.2 t), with a
 * 10 ms attack and an 80 ms release. Returns the length in seconds.
 */
function schedule(ctx, { pitches, steps_per_quarter: spq }) {
  const step = 60 / QPM / spq;
  const wave = ctx.createPeriodicWave(new Float32Array(5), Float32Array.of(0, 1, 1 / 2, 1 / 3, 1 / 4));
  const out = ctx.createGain();
  out.gain.value = 0.8 / Math.max(1, ...pitches.map((f) => f.length));  // the wave peaks at 1
  out.connect(ctx.destination);
  const t0 = ctx.currentTime + 0.05;
  for (const [start, end, pitch] of noteSegments(pitches)) {
    const [on, held] = [t0 + start * step, (end - start) * step];
    const osc = ctx.createOscillator();
    osc.setPeriodicWave(wave);
    osc.frequency.value = 440 * 2 ** ((pitch - 69) / 12);
    const env = ctx.createGain();
    env.gain.setValueAtTime(0, on);
    env.gain.linearRampToValueAtTime(1, on + 0.01);
    env.gain.exponentialRampToValueAtTime(Math.exp(-1.2 * held), on + held);
    env.gain.linearRampToValueAtTime(0, on + held + 0.08);
    osc.connect(env).connect(out);
    osc.start(on);
    osc.stop(on + held + 0.1);
  }
  return pitches.length * step + 0.3;
}

/** {seconds, peak, rms} of a piece rendered offline (what Play sounds like; for tests). */
async function render(result, sampleRate = 22050) {
  const seconds = result.pitches.length * (60 / QPM / result.steps_per_quarter) + 0.4;
  const ctx = new OfflineAudioContext(1, Math.ceil(seconds * sampleRate), sampleRate);
  schedule(ctx, result);
  const data = (await ctx.startRendering()).getChannelData(0);
  let [peak, sum] = [0, 0];
  for (const v of data) { peak = Math.max(peak, Math.abs(v)); sum += v * v; }
  return { seconds: data.length / sampleRate, peak, rms: Math.sqrt(sum / data.length) };
}

/** A piece's MIDI file, base64 (what the Download link holds). */
async function midiBase64(result) {
  const bytes = midiFile(await midiClass(), result);
  return btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(''));
}

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
      if (info.task === 'speech-recognition') {  // the transcript grows as the audio is read
        const shown = el('p', { id: 'transcript' });
        $('view').replaceChildren(shown);
        let painted = performance.now();
        options = { ...options,
          onText: async (text) => {  // let the page draw the transcript so far, every 30 ms
            shown.textContent = text;
            if (performance.now() - painted > 30) {
              await new Promise((resolve) => { setTimeout(resolve, 0); });
              painted = performance.now();
            }
          } };
      }
      result = await model.run(input, options);
      show[info.task](result, input, name);
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
    forecasting: 'Window (numbers, or JSON rows [time][columns])',
    'music-generation': 'Primer (MIDI pitches per step, JSON; empty: none)' }[info.task] ?? 'Text';
  const music = info.task === 'music-generation';
  const speech = info.task === 'speech-recognition';
  $('speech').hidden = !speech;
  if (example && speech) $('audio').value = '';
  $('input').hidden = speech;
  $('input-label').hidden = speech;
  $('generation').hidden = info.task !== 'text-generation' && !music;
  $('steps-label').firstChild.textContent = music ? 'Steps ' : 'Characters ';
  if (example && $('generation').hidden === false) {
    [$('steps').value, $('temperature').value] = music ? ['32', '1'] : ['200', '0.8'];
  }
  $('decoding').hidden = info.task !== 'translation';
}

for (const m of site.models) $('model').append(el('option', { value: m.name }, m.name));
$('about').textContent = `onnxruntime-web ${site.onnxruntime_web}, ${ort.env.wasm.numThreads} `
  + `thread(s); model files ${checked ? 'checked against their sha256' : 'not checked (this '
  + 'page is not in a secure context: serve it over https or from localhost)'}.`;
$('model').addEventListener('change', () => select($('model').value));
$('run').addEventListener('click', async () => {
  const name = $('model').value;
  const { task } = byName.get(name);
  let input = $('input').value;
  if (task === 'speech-recognition') {  // the chosen WAV file, or a link's &input=URL of one
    const file = $('audio').files[0];
    const fetched = !file && input && await fetch(new URL(input, location.href));
    input = file ? await file.arrayBuffer() : fetched?.ok && await fetched.arrayBuffer();
    if (!input) {
      $('error').textContent = fetched ? `${fetched.url}: HTTP ${fetched.status}` : 'choose a WAV file first';
      $('error').hidden = false;
      document.body.dataset.state = 'error';
      return;
    }
  }
  run(name, input, controlOptions(task)).catch(() => {});
});
/** Record from the microphone until the button is clicked again, then transcribe what was
 * heard ({samples, sample_rate}: resampled to the model's rate as a WAV file is). */
let recording = null;
$('record').addEventListener('click', async () => {
  if (recording) {
    const { stream, ctx, chunks } = recording;
    recording = null;
    stream.getTracks().forEach((t) => t.stop());
    await ctx.close();
    $('record').textContent = 'Record';
    const samples = new Float32Array(chunks.reduce((n, c) => n + c.length, 0));
    chunks.reduce((at, c) => { samples.set(c, at); return at + c.length; }, 0);
    window.rnnzoo.recorded = { samples, sample_rate: ctx.sampleRate };
    run($('model').value, window.rnnzoo.recorded).catch(() => {});
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const ctx = new AudioContext();
    const tap = ctx.createScriptProcessor(4096, 1, 1);
    recording = { stream, ctx, chunks: [] };
    const { chunks } = recording;
    tap.onaudioprocess = (e) => chunks.push(Float32Array.from(e.inputBuffer.getChannelData(0)));
    ctx.createMediaStreamSource(stream).connect(tap).connect(ctx.destination);
    $('record').textContent = 'Stop and transcribe';
  } catch (error) {
    $('error').textContent = `the microphone: ${error?.message ?? error}`;
    $('error').hidden = false;
  }
});
window.rnnzoo = { run, load, site, ort, render, midiBase64 };

const wanted = params.get('model');
if (wanted !== null && byName.has(wanted)) {
  select(wanted);
  if (params.has('input')) $('input').value = params.get('input');
  for (const key of ['steps', 'temperature', 'seed', 'beam']) {
    if (params.has(key)) $(key).value = params.get(key);
  }
  // A link is reproducible: a char LM greedy unless it gives a temperature (music: seed 0).
  if (!params.has('temperature') && byName.get(wanted).task === 'text-generation') {
    $('temperature').value = '0';
  }
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
