"""The model card (``README.md``) of a preset, rendered from its metadata."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rnnzoo.presets.metadata import CHECKSUMS_FILE, WEIGHTS_FILE


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
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


_CLI_BY_TASK = {
    "text-classification": 'rnnzoo predict {name} "a quietly moving film"',
    "translation": 'rnnzoo translate {name} "¿Dónde está la estación?"',
    "music-generation": "rnnzoo generate {name} --out piece.mid",
}


def render_model_card(meta: Mapping[str, Any], directory: Path | None = None) -> str:
    """The README.md of a preset: everything in its metadata, readable, with how to load it.

    ``directory`` (the preset being written) gives the sizes on disk."""
    name = meta["name"]
    lines = [f"# {name}", "", meta["description"].strip(), ""]
    rows = [
        ("entry", f"`{meta['entry']}` (family `{meta['family']}`, task `{meta['task']}`)"),
        ("parameters", f"{meta['num_params']:,}"),
    ]
    if directory is not None:
        weights = (directory / WEIGHTS_FILE).stat().st_size
        total = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
        rows.append(("size on disk", f"{_size(weights)} weights ({meta['storage']}), "
                                     f"{_size(total)} with config, assets and metadata"))
    else:
        rows.append(("storage", meta["storage"]))
    rows += [
        ("dataset", f"{meta['dataset']} (split: {meta['split']})"),
        ("data licence", meta["data_license"]),
        ("saved", meta["date"]),
        ("versions", ", ".join(f"{k} {v}" for k, v in meta["versions"].items())),
    ]
    lines += ["| | |", "|---|---|", *(f"| {k} | {_cell(v)} |" for k, v in rows), ""]

    published = dict(meta.get("published") or {})
    column = any(key in published for key in meta["metrics"])  # anchors named like a metric
    lines += ["## Metrics", "", f"Measured on {meta['dataset']} ({meta['split']} split) with:", "",
              "```", meta["metrics_command"], "```", ""]
    header = "| metric | value | published |" if column else "| metric | value |"
    lines += [header, "|---|---|---|" if column else "|---|---|"]
    for key, value in meta["metrics"].items():
        row = f"| {_cell(key)} | {_num(value)} |"
        if column:
            row += f" {_num(published.pop(key))} |" if key in published else " |"
        lines.append(row)
    if published:
        lines += ["", "Other published anchors:" if column else "Published anchors:", ""]
        lines += [f"- {anchor}: {_num(value)}" for anchor, value in published.items()]
    lines += ["", "## Training", "", "```", meta["training_command"], "```", "",
              f"Wall time: {_duration(meta['training_wall_time_s'])} "
              f"({meta['training_wall_time_s']:.0f} s).", ""]
    lines += ["## Trade-offs", "", meta["tradeoffs"].strip() or "None.", ""]
    if meta.get("notes"):
        lines += ["## Notes", "", meta["notes"].strip(), ""]
    lines += _onnx_card(meta)
    cli = _CLI_BY_TASK.get(meta["task"], "rnnzoo info {name}").format(name=name)
    lines += [
        "## Usage", "", "```python", "import rnnzoo", "",
        f'task = rnnzoo.from_preset("{name}")', "```", "", "```sh", cli, "```", "",
        "## Integrity", "",
        f"`{CHECKSUMS_FILE}` lists the sha256 of every file; rnnzoo verifies all of them (and "
        "refuses unlisted files) before loading anything.", "",
    ]
    return "\n".join(lines)


def _onnx_card(meta: Mapping[str, Any]) -> list[str]:
    """The model card's ONNX section: which bundles ship and what was checked."""
    info = meta.get("onnx")
    if not isinstance(info, Mapping):
        return []
    lines = ["## ONNX bundles (no TensorFlow needed)", "",
             f"Built and validated from the stored weights when the preset was made "
             f"(onnxruntime {info.get('onnxruntime', '?')}, opset {info.get('opset', '?')}); "
             "used by the CLI's inference commands and by "
             f"`rnnzoo.from_preset(\"{meta['name']}\", backend=\"onnx\")`.", ""]
    for precision in ("fp32", "int8"):
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
    if info.get("int8_rejected"):
        lines.append(f"- int8 not shipped: {info['int8_rejected']}")
    return lines + [""]
