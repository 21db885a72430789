"""The model card of a preset, rendered from its metadata (and, given the preset's directory, the
sizes on disk and the ONNX bundles' manifests): what ``save_preset`` writes as ``README.md`` and
``rnnzoo card PRESET`` prints. TF-free.

Sections: the summary table, intended use (the application's ``INTENDED_USE``), data and
licence, metrics (the headline first, ``rnnzoo.apps.headline``) with the command that
re-measures them, limitations (the application's ``LIMITATIONS``, the preset's trade-offs),
notes, the bundles' inputs, outputs and state, sizes, training (the full command, wall time),
usage and integrity (with each bundle's digest, the value a user pins).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from rnnzoo.errors import ConfigError
from rnnzoo.presets.metadata import CHECKSUMS_FILE, README_FILE, WEIGHTS_FILE

_BUNDLE_MANIFEST = "bundle.json"
_PRECISIONS = ("fp32", "int8")


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def _num(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.4g}"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def _fence(text: str, lang: str = "") -> list[str]:
    return [f"```{lang}", text, "```"]


#: One command-line call per task type for the card's "Usage" (the verb and a typical input).
_CLI_BY_TASK = {
    "text-classification": 'rnnzoo predict {name} "a quietly moving film"',
    "token-classification": 'rnnzoo tag {name} "John Smith lives in New York ."',
    "translation": 'rnnzoo translate {name} "¿Dónde está la estación?"',
    "image-captioning": "rnnzoo caption {name} photo.jpg",
    "speech-recognition": "rnnzoo transcribe {name} recording.wav",
    "forecasting": "rnnzoo forecast {name} --data series.csv",
    "music-generation": "rnnzoo generate {name} --out piece.mid",
    "text-generation": 'rnnzoo generate {name} --prompt "ROMEO:" --steps 200',
    "long-dependency": "rnnzoo solve {name} --count 5",
    "handwriting-recognition": "rnnzoo recognize {name} line.inkml",
    "recommendation": "rnnzoo recommend {name} --history 2858,1196,260",
    "action-recognition": "rnnzoo classify {name} a01_s02_e01_skeleton3D.txt",
    "video-prediction": "rnnzoo predict-frames {name} --input frames.npy --out strip.png",
}


def _application(task: str) -> ModuleType | None:
    """The application's CLI adapter (intended use, limitations, headline), or None for a task
    type this rnnzoo does not know (the card still renders what the metadata says)."""
    from rnnzoo.apps import app_cli

    try:
        return app_cli(task)
    except ConfigError:
        return None


def _source(meta: Mapping[str, Any]) -> str:
    """How a user names this preset: the source of its re-measure command (the folder a
    fine-tuned preset was written to, the name of an installed one), so Usage runs as printed."""
    try:
        args = shlex.split(meta["metrics_command"])
    except ValueError:
        return meta["name"]
    if args[:2] != ["rnnzoo", "evaluate"] or len(args) < 3 or {"--run", "--weights"} & set(args):
        return meta["name"]  # measured from a run directory: the preset goes by its name
    return args[2]


def render_model_card(meta: Mapping[str, Any], directory: Path | None = None) -> str:
    """The model card of a preset: everything in its metadata, readable, with how to load it.

    ``directory`` (the preset, or the one being written) adds the sizes on disk and the inputs,
    outputs and state read from its ONNX bundles' manifests."""
    app = _application(meta["task"])
    lines = [f"# {meta['name']}", "", meta["description"].strip(), ""]
    rows = [
        ("entry", f"`{meta['entry']}` (family `{meta['family']}`, task `{meta['task']}`)"),
        ("parameters", f"{meta['num_params']:,}"),
    ]
    if directory is not None:
        weights = (directory / WEIGHTS_FILE).stat().st_size
        rows.append(("size on disk", f"{_size(weights)} weights ({meta['storage']}), "
                                     f"{_size(_total_bytes(directory))} with config, assets, "
                                     "bundles and metadata"))
    else:
        rows.append(("storage", meta["storage"]))
    rows += [
        ("dataset", f"{meta['dataset']} (split: {meta['split']})"),
        ("saved", meta["date"]),
        ("versions", ", ".join(f"{k} {v}" for k, v in meta["versions"].items())),
    ]
    lines += ["| | |", "|---|---|", *(f"| {k} | {_cell(v)} |" for k, v in rows), ""]
    lines += _intended_use(meta, app)
    lines += ["## Data and licence", "",
              f"- Data: {meta['dataset']}; the metrics below are measured on its "
              f"**{meta['split']}** split.",
              f"- Data licence: {meta['data_license']}", ""]
    lines += _metrics(meta)
    lines += _limitations(meta, app)
    if meta.get("notes"):
        lines += ["## Notes", "", meta["notes"].strip(), ""]
    lines += _onnx_card(meta, directory)
    lines += _sizes(meta, directory)
    lines += ["## Training", "", "The training command, as recorded:", "",
              *_fence(meta["training_command"]), "",
              f"Wall time: {_duration(meta['training_wall_time_s'])} "
              f"({meta['training_wall_time_s']:.0f} s).", ""]
    source = _source(meta)
    cli = _CLI_BY_TASK.get(meta["task"], "rnnzoo info {name}").format(name=source)
    lines += [
        "## Usage", "", *_fence(f'import rnnzoo\n\ntask = rnnzoo.from_preset("{source}")',
                                "python"), "",
        *_fence(cli, "sh"), "",
        "## Integrity", "",
        f"`{CHECKSUMS_FILE}` lists the sha256 of every file; rnnzoo verifies all of them (and "
        "refuses unlisted files) before loading anything.", "",
        *_digests(meta, source),
    ]
    return "\n".join(lines)


def _digests(meta: Mapping[str, Any], source: str) -> list[str]:
    """Each bundle's digest and how to pin it: checksums catch corruption, but a bundle replaced
    together with its checksums is caught only by a digest the user pins."""
    info = meta.get("onnx") if isinstance(meta.get("onnx"), Mapping) else {}
    rows = [(precision, entry) for precision in _PRECISIONS
            if isinstance(entry := info.get(precision), Mapping) and entry.get("digest")]
    if not rows:
        return []
    lines = ["Each ONNX bundle also lists the sha256 of its own files, `bundle.json` included, "
             "in its `SHA256SUMS`; the sha256 of that listing is the **bundle digest**, one "
             "value for the whole bundle (`sha256sum SHA256SUMS` in the bundle's folder prints "
             "it). Pin it to refuse a bundle that was replaced together with its checksums:", "",
             "| bundle | digest |", "|---|---|",
             *(f"| `{entry['path']}` | `sha256={entry['digest']}` |" for _, entry in rows), ""]
    precision, entry = rows[0]
    lines += _fence("from rnnzoo.export import runtime\nfrom rnnzoo.presets import "
                    f"resolve_preset\n\nmodel = runtime.load(resolve_preset(\"{source}\") / "
                    f"\"{entry['path']}\",\n                     expected_digest="
                    f"\"{entry['digest']}\")", "python")
    lines += ["", *_fence(f"rnnzoo serve {source}#sha256={entry['digest']}"
                          + ("" if precision == "fp32" else f" --precision {precision}"), "sh"),
              ""]
    return lines


def _intended_use(meta: Mapping[str, Any], app: ModuleType | None) -> list[str]:
    use = getattr(app, "INTENDED_USE", None)
    if not use:
        return []
    verb = getattr(app, "VERB", None)
    run = f" On the command line: `rnnzoo {verb} {meta['name']} ...`." if verb else ""
    return ["## Intended use", "", f"{use}{run}", ""]


def _metrics(meta: Mapping[str, Any]) -> list[str]:
    """The recorded metrics, headline first, with the command that re-measures them."""
    from rnnzoo.apps import headline

    metrics = dict(meta["metrics"])
    lines = ["## Metrics", ""]
    try:
        head = headline(meta["task"], metrics, meta["family"])
    except ConfigError:
        head = None
    if head is not None and head.value is not None:
        better = "higher" if head.direction == "max" else "lower"
        lines += [f"Headline: **{head.key} {_num(head.value)}** on the {meta['split']} split "
                  f"({better} is better).", ""]
        metrics = {head.key: metrics.pop(head.key), **metrics}
    elif head is not None:
        lines += [f"Headline: {head.key}, **not recorded** in this preset's metadata (the "
                  "metrics below are what was measured).", ""]
    lines += [f"Measured on {meta['dataset']} ({meta['split']} split); re-measure with:", "",
              *_fence(meta["metrics_command"]), ""]
    published = dict(meta.get("published") or {})
    column = any(key in published for key in metrics)  # anchors named like a metric
    lines += ["| metric | value | published |" if column else "| metric | value |",
              "|---|---|---|" if column else "|---|---|"]
    for key, value in metrics.items():
        row = f"| {_cell(key)} | {_num(value)} |"
        if column:
            row += f" {_num(published.pop(key))} |" if key in published else " |"
        lines.append(row)
    if published:
        lines += ["", "Other published anchors:" if column else "Published anchors:", ""]
        lines += [f"- {anchor}: {_num(value)}" for anchor, value in published.items()]
    check = meta.get("check")
    if isinstance(check, Mapping):
        quick = ", ".join(f"{k} {_num(v)}" for k, v in check["metrics"].items())
        if head is not None and head.key in check["metrics"]:
            quick = f"{head.key} {_num(check['metrics'][head.key])} (and the other metrics)"
        lines += ["", f"On the first {check['limit']} examples of the split (what the test "
                  f"suite re-measures): {quick}; re-measure with:", "",
                  *_fence(f"{meta['metrics_command']} --limit {check['limit']}")]
    return lines + [""]


def _limitations(meta: Mapping[str, Any], app: ModuleType | None) -> list[str]:
    items = [str(x) for x in getattr(app, "LIMITATIONS", ())]
    if meta["tradeoffs"].strip():
        items.append(f"Traded for size or speed: {meta['tradeoffs'].strip()}")
    if not items:
        return []
    return ["## Limitations", "", *(f"- {x}" for x in items), ""]


def _total_bytes(directory: Path) -> int:
    """Every file but the card and the checksums (the same before and after they are written)."""
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()
               and p.relative_to(directory).as_posix() not in (README_FILE, CHECKSUMS_FILE))


def _manifest(directory: Path | None, entry: Mapping[str, Any]) -> dict | None:
    """A bundle's ``bundle.json`` (covered by the preset's checksums), or None."""
    if directory is None:
        return None
    try:
        found = json.loads((directory / entry["path"] / _BUNDLE_MANIFEST).read_text("utf-8"))
    except (OSError, ValueError, TypeError):
        return None
    return found if isinstance(found.get("graphs"), Mapping) else None


def _tensor(spec: Mapping[str, Any]) -> str:
    shape = ", ".join(str(d) for d in spec.get("shape") or [])
    return f"`{spec.get('name')}` {spec.get('dtype')} [{shape}]"


def _io_lines(graphs: Mapping[str, Any]) -> list[str]:
    """Each graph's inputs, outputs and recurrent state: an input ``state_<i>`` that the graph
    returns as ``new_state_<i>`` is state the caller carries from one call to the next."""
    lines = []
    for graph, g in graphs.items():
        inputs, outputs = list(g.get("inputs") or []), list(g.get("outputs") or [])
        returned = {o.get("name") for o in outputs}
        state = [i for i in inputs if f"new_{i.get('name')}" in returned]
        carried = {i.get("name") for i in state} | {f"new_{i.get('name')}" for i in state}
        lines.append(f"  - graph `{graph}` (`{g.get('file')}`):")
        lines.append("    - inputs: " + (", ".join(_tensor(i) for i in inputs
                                                   if i.get("name") not in carried) or "none"))
        lines.append("    - outputs: " + (", ".join(_tensor(o) for o in outputs
                                                    if o.get("name") not in carried) or "none"))
        if state:
            pairs = ", ".join(f"{_tensor(i)} -> `new_{i.get('name')}`" for i in state)
            lines.append(f"    - state (fed back by the caller on the next call): {pairs}")
    return lines


def _onnx_card(meta: Mapping[str, Any], directory: Path | None = None) -> list[str]:
    """The bundles that ship, what was checked, and (from their manifests) each graph's inputs,
    outputs and state."""
    info = meta.get("onnx")
    if not isinstance(info, Mapping):
        return []
    lines = ["## ONNX bundles: inputs, outputs and state (no TensorFlow needed)", "",
             f"Built and validated from the stored weights when the preset was made "
             f"(onnxruntime {info.get('onnxruntime', '?')}, opset {info.get('opset', '?')}); "
             "used by the CLI's inference commands and by "
             f"`rnnzoo.from_preset(\"{meta['name']}\", backend=\"onnx\")`.", ""]
    shown: list[str] | None = None
    for precision in _PRECISIONS:
        entry = info.get(precision)
        if not isinstance(entry, Mapping):
            continue
        lines.append(f"- `{entry['path']}` ({_size(int(entry.get('bytes', 0)))})")
        for graph, g in (entry.get("graphs") or {}).items():
            diffs = ", ".join(f"{k} {v:.1e}" for k, v in g.get("max_abs_diff_vs_keras",
                                                                 {}).items())
            lines.append(f"  - {graph}: fused {g.get('recurrent_ops')}, loops "
                         f"{g.get('loop_ops')}, max abs diff vs Keras: {diffs}")
        if entry.get("keras_parity"):
            lines.append(f"  - {entry['keras_parity']}")
        if isinstance(entry.get("comparison"), Mapping):
            lines.append(f"  - vs fp32: {entry['comparison'].get('summary', '')}")
        manifest = _manifest(directory, entry)
        if manifest is not None:
            io = _io_lines(manifest["graphs"])
            if io == shown:
                lines.append("  - inputs, outputs and state: as fp32")
            else:
                lines += io
            shown = shown or io
    if info.get("int8_rejected"):
        lines.append(f"- int8 not shipped: {info['int8_rejected']}")
    return lines + [""]


def _bundle_bytes(directory: Path | None, entry: Mapping[str, Any]) -> int:
    if directory is not None and (directory / entry["path"]).is_dir():
        return sum(p.stat().st_size for p in (directory / entry["path"]).rglob("*")
                   if p.is_file())
    return int(entry.get("bytes", 0))


def _sizes(meta: Mapping[str, Any], directory: Path | None) -> list[str]:
    """Parameters, the weights and each bundle, and the whole preset (with a directory)."""
    rows = [("parameters", f"{meta['num_params']:,}")]
    if directory is not None:
        rows.append((f"Keras weights (`{WEIGHTS_FILE}`, {meta['storage']})",
                     _size((directory / WEIGHTS_FILE).stat().st_size)))
    else:
        rows.append(("Keras weights", f"stored as {meta['storage']}"))
    info = meta.get("onnx") if isinstance(meta.get("onnx"), Mapping) else {}
    for precision in _PRECISIONS:
        entry = info.get(precision)
        if isinstance(entry, Mapping):
            rows.append((f"ONNX {precision} (`{entry['path']}`)",
                         _size(_bundle_bytes(directory, entry))))
    if directory is not None:
        rows.append(("the whole preset (without this card and the checksums)",
                     _size(_total_bytes(directory))))
    return ["## Sizes", "", "| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows), ""]
