"""Writing presets: save a trained task (weights stored, reloaded and compared), measure what
ships, add ONNX bundles to an existing preset, fine-tune a preset into a new one."""

from __future__ import annotations

import datetime
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from rnnzoo.evaluation import evaluate_reports, report_metrics
from rnnzoo.io import atomic_directory, atomic_write_text
from rnnzoo.presets.bundles import ONNX_DIR_NAME
from rnnzoo.presets.card import render_model_card
from rnnzoo.presets.metadata import (
    CHECKSUMS_FILE,
    METADATA_FILE,
    PRESET_FORMAT,
    README_FILE,
    STORAGES,
    WEIGHTS_FILE,
    PresetError,
    _write_checksums,
    validate_metadata,
)
from rnnzoo.presets.resolve import _resolve


def rewrite_weights(path: Path, storage: str) -> None:
    """Rewrite a Keras ``.weights.h5`` file keeping its layout (groups, dataset names, attrs),
    without the optimizer state, and with float32 datasets as float16 when ``storage`` says so.

    The file is rebuilt rather than edited in place because HDF5 never reclaims the space of
    deleted datasets. Keras casts on assignment, so float16 files load into float32 models.
    """
    import h5py
    import numpy as np

    def copy(src: Any, dst: Any, prefix: str) -> None:
        dst.attrs.update(dict(src.attrs))
        for key, item in src.items():
            name = f"{prefix}{key}"
            if isinstance(item, h5py.Group):
                if name == "optimizer":  # training state: useless for inference, 2x the size
                    continue
                copy(item, dst.create_group(key), f"{name}/")
                continue
            data = item[()]
            if storage == "float16" and item.dtype == np.float32:
                with np.errstate(over="ignore"):  # overflow is reported below, by name
                    half = np.asarray(data).astype(np.float16)
                if not np.array_equal(np.isfinite(half), np.isfinite(data)):
                    raise PresetError(
                        f"{path}: weight {name!r} has values beyond the float16 range "
                        f"(max |x| = {np.nanmax(np.abs(data)):.3g}); save with storage='float32'")
                data = half
            out = dst.create_dataset(key, data=data)
            out.attrs.update(dict(item.attrs))

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(path, "r") as src, h5py.File(tmp, "w") as dst:
            copy(src, dst, "")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _check_weights_round_trip(task: Any, directory: Path, storage: str) -> None:
    """Load the written preset with the public loader and compare every variable with the
    original: exact for float32, exact up to float16 rounding for float16."""
    import numpy as np

    import rnnzoo

    loaded = rnnzoo.load(directory)
    before, after = task.model.weights, loaded.model.weights
    if len(before) != len(after):
        raise PresetError(f"{directory}: the saved preset reloads with {len(after)} weights "
                          f"instead of {len(before)}; the entry config does not rebuild the model")
    for old, new in zip(before, after):
        want = np.asarray(old.numpy())
        if storage == "float16" and want.dtype == np.float32:
            want = want.astype(np.float16).astype(np.float32)
        got = np.asarray(new.numpy())
        if want.shape != got.shape or not np.array_equal(want, got):
            raise PresetError(f"{directory}: weight {getattr(old, 'path', old.name)!r} does not "
                              "round-trip through the saved preset")


def _versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    from rnnzoo import __version__

    return {"rnnzoo": __version__, "keras": keras.__version__, "tensorflow": tf.__version__}


def _complete_metadata(task: Any, metadata: Mapping[str, Any], storage: str) -> dict:
    """``metadata`` plus what save_preset knows better than the caller (entry, family, task,
    num_params, format, versions, date, storage), validated."""
    where = "save_preset(metadata=...)"
    if storage not in STORAGES:
        raise PresetError(f"save_preset(storage={storage!r}): expected "
                          f"{' or '.join(map(repr, STORAGES))}")
    meta = dict(metadata)
    facts = {
        "format": PRESET_FORMAT,
        "entry": task.config.name,
        "family": task.config.family,
        "task": task.config.task,
        "num_params": int(task.model.count_params()),
    }
    for key, value in facts.items():
        if key in meta and meta[key] != value:
            raise PresetError(f"{where}: field {key!r} is {meta[key]!r} but the model says "
                              f"{value!r}; leave it out, save_preset fills it in")
    meta.update(facts)
    meta.update(versions=_versions(), storage=storage,
                date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    meta.setdefault("description", task.config.description)
    meta.setdefault("tradeoffs", "weights stored as float16 (half the size; outputs differ from "
                    "float32 by rounding only)" if storage == "float16" else "")
    return validate_metadata(meta, where)


def save_preset(task: Any, directory: str | os.PathLike, metadata: Mapping[str, Any],
                storage: str = "float16", overwrite: bool = False, onnx: bool = False,
                eval_data: str | os.PathLike | None = None, int8: bool = True) -> Path:
    """Write ``task`` as a preset directory (whole or not at all) and return its path.

    ``metadata`` gives what only the caller knows (name, dataset, split, metrics and the commands
    that produced them, wall time, data licence, optionally published anchors and notes); the
    rest is filled in. The saved weights are reloaded and compared before the directory appears.
    ``onnx=True`` also builds the validated ONNX bundles from the stored weights
    (``rnnzoo.preset_bundle``: fp32, and int8 when it passes on ``eval_data``).
    """
    meta = _complete_metadata(task, metadata, storage)
    final = Path(directory)

    def fill(tmp: Path) -> None:
        try:
            task.write_artifacts(tmp)
            rewrite_weights(tmp / WEIGHTS_FILE, storage)
            if onnx:
                _add_bundles(tmp, meta, eval_data, int8)
            atomic_write_text(tmp / METADATA_FILE, json.dumps(meta, indent=2) + "\n")
            atomic_write_text(tmp / README_FILE, render_model_card(meta, tmp))
            _write_checksums(tmp)
            _check_weights_round_trip(task, tmp, storage)
        except PresetError as exc:  # name the destination, not the hidden temporary folder
            raise PresetError(str(exc).replace(str(tmp), str(final))) from None

    return atomic_directory(final, fill, overwrite, PresetError)


def _add_bundles(directory: Path, meta: dict, eval_data: Any, int8: bool) -> None:
    """Build the ONNX bundles of the preset being written in ``directory`` from its stored
    weights and record them in ``meta`` (validated again)."""
    import rnnzoo
    from rnnzoo.preset_bundle import build_bundles

    stored = rnnzoo.load(directory, verify=False)  # being written: no checksums yet
    meta["onnx"] = build_bundles(stored, directory, eval_data=eval_data, int8=int8)
    validate_metadata(meta, f"{directory / METADATA_FILE}")


def add_bundle(source: str | os.PathLike, out: str | os.PathLike, *,
               eval_data: str | os.PathLike | None = None, int8: bool = True,
               overwrite: bool = False) -> Path:
    """Give an existing preset its validated ONNX bundles: a copy of the verified preset with
    ``onnx/`` (any old one replaced), its metadata, model card and checksums, written to
    ``out`` whole or not at all (``out`` may be the preset itself, with ``overwrite``)."""
    directory, meta = _resolve(source)
    meta = {k: v for k, v in meta.items() if k != "onnx"}

    def fill(tmp: Path) -> None:
        for item in directory.iterdir():
            if item.name in (ONNX_DIR_NAME, CHECKSUMS_FILE, METADATA_FILE, README_FILE):
                continue
            if item.is_dir():
                shutil.copytree(item, tmp / item.name)
            else:
                shutil.copy2(item, tmp / item.name)
        try:
            _add_bundles(tmp, meta, eval_data, int8)
            atomic_write_text(tmp / METADATA_FILE, json.dumps(meta, indent=2) + "\n")
            atomic_write_text(tmp / README_FILE, render_model_card(meta, tmp))
            _write_checksums(tmp)
        except PresetError as exc:
            raise PresetError(str(exc).replace(str(tmp), str(out))) from None

    return atomic_directory(Path(out), fill, overwrite, PresetError)


def measure(model: Any, data: str | os.PathLike, split: str, limit: int | None = None
            ) -> dict[str, float]:
    """The task's metrics on ``split`` of ``data`` (first ``limit`` examples), as recorded:
    the numbers ``rnnzoo evaluate`` prints for the same model."""
    loaded = model.load_data(data, seed=model.config.training.seed)
    return report_metrics(evaluate_reports(model, loaded, split, {"limit": limit}))


def save_measured_preset(task: Any, directory: str | os.PathLike, metadata: Mapping[str, Any],
                         data: str | os.PathLike, split: str, storage: str = "float16",
                         overwrite: bool = False, check_limit: int | None = None,
                         onnx: bool = True, int8: bool = True) -> Path:
    """Save ``task`` as a preset whose metrics are measured on exactly what ships: the weights
    are stored (float16 rounding included), loaded back and evaluated on ``split`` of
    ``data``. ``check_limit`` also records the metrics on the first N examples of the split,
    the fixed subset the test suite re-measures when the full split is too slow for CI.
    ``onnx`` builds the validated bundles (int8 compared on ``data``)."""
    import tempfile

    import rnnzoo

    with tempfile.TemporaryDirectory(prefix=".rnnzoo-measure-") as work:
        probe = Path(work) / "preset"
        save_preset(task, probe, {**metadata, "split": split, "metrics": {"pending": 0.0}},
                    storage)
        shipped = rnnzoo.load(probe)
        meta = {**metadata, "metrics": measure(shipped, data, split), "split": split}
        if check_limit:
            meta["check"] = {"limit": int(check_limit),
                             "metrics": measure(shipped, data, split, check_limit)}
        return save_preset(shipped, directory, meta, storage, overwrite, onnx=onnx,
                           eval_data=data, int8=int8)


class FinetuneResult(NamedTuple):
    """What :func:`finetune` wrote: the new preset and the run directory it was trained in.
    It stands for the preset where a path is expected (``os.fspath(result)``,
    ``result / "metadata.json"``), as the bare path ``finetune`` used to return did."""

    preset: Path
    run_dir: Path

    def __fspath__(self) -> str:
        return os.fspath(self.preset)

    def __truediv__(self, other: str | os.PathLike) -> Path:
        return self.preset / other


#: ``finetune`` keywords that go to ``rnnzoo.train`` as they are (not config keys).
_TRAIN_CALL_KEYS = ("strategy", "callbacks")


def _set_value(value: Any) -> str:
    """``value`` as ``--set KEY=VALUE`` reads it back (YAML): floats keep a dot before an
    exponent (``1.0e-05``; PyYAML reads ``1e-05`` as a string)."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        text = repr(value)
        mantissa, e, exponent = text.partition("e")
        if e and "." not in mantissa:
            text = f"{mantissa}.0e{exponent if exponent[0] in '+-' else '+' + exponent}"
        return text
    return json.dumps(value)


def _finetune_command(source: Any, data: Any, out: Any, tag: str, freeze_backbone: bool,
                      run_dir: Any, overrides: Mapping[str, Any]) -> str:
    """The ``rnnzoo finetune`` command that repeats a Python ``finetune`` call, every override
    included (``--set epochs=2``)."""
    import shlex

    parts = ["rnnzoo", "finetune", os.fspath(source), "--data", os.fspath(data),
             "--out", os.fspath(out)]
    if tag != "finetuned":
        parts += ["--tag", tag]
    if freeze_backbone:
        parts.append("--freeze-backbone")
    if run_dir is not None:
        parts += ["--run-dir", os.fspath(run_dir)]
    for key, value in overrides.items():
        parts += ["--set", f"{key}={_set_value(value)}"]
    return shlex.join(parts)


def _architecture(task: Any) -> str:
    """The entry's description of its architecture (the preset's own description says how the
    source was trained, which the fine-tuned model was not)."""
    from rnnzoo.registry import get_entry

    try:
        return get_entry(task.config.name).description.strip()
    except Exception:  # noqa: BLE001 - an entry this rnnzoo lacks: the saved config's words
        return task.config.description.strip()


def finetune(source: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike, *,
             tag: str = "finetuned", freeze_backbone: bool = False,
             run_dir: str | os.PathLike | None = None, data_license: str = "unknown",
             storage: str = "float16", command: str = "", overwrite: bool = False,
             onnx: bool = True, verbose: int | str = "auto",
             **overrides: Any) -> FinetuneResult:
    """Fine-tune a preset on ``data`` with the shared loop and write the result as a new preset
    at ``out``; returns ``FinetuneResult(preset, run_dir)`` (it also works as the preset's path).

    The run directory goes to ``run_dir`` (default ``<out>-run``). A dataset whose labels
    differ from the preset's gets a new head (``Task.head_overrides``), and a note naming both
    label sets is printed; ``freeze_backbone`` trains only the new layers. The metrics in the
    new preset's metadata are measured on the dev split of ``data`` with the weights as saved
    (the model the trainer's closing dev report scored; ``storage="float16"`` rounds them).

    ``overrides`` are config keys. The training recipe's (the preset's own recipe otherwise):
    ``epochs``, ``batch_size``, ``learning_rate``, ``optimizer`` (adam, adamw, rmsprop, sgd),
    ``weight_decay``, ``schedule`` (constant, cosine, exponential), ``warmup_steps``,
    ``decay_rate``, ``clipnorm``, ``ema_momentum``, ``early_stopping_patience``, ``monitor``,
    ``seed``, ``bucketing``, ``precision``, ``jit_compile``, ``intra_op_threads``,
    ``inter_op_threads``, ``backup_every``, ``diagnose_every``. A recipe made for training
    from scratch is usually far longer than a fine-tune: weight averaging and warm-up that
    ``epochs x steps`` cannot accommodate are scaled down or turned off, with a printed line
    (``ema_momentum=`` / ``warmup_steps=`` given here are kept as given). Other keys change
    the architecture (``num_layers=``, ``dropout=``): layers whose shapes change start fresh.
    ``strategy`` and ``callbacks`` go to ``rnnzoo.train``; ``verbose`` is its progress
    setting. ``command`` is recorded as the training command (default: the ``rnnzoo
    finetune`` command that repeats this call).
    """
    import dataclasses
    import time

    import rnnzoo
    from rnnzoo.config import TrainingConfig
    from rnnzoo.training import new_head_note, train
    from rnnzoo.training_setup import _log, ready_to_finetune

    start = time.time()
    directory, meta = _resolve(source)
    recipe_keys = {f.name for f in dataclasses.fields(TrainingConfig)} | {"training"}
    call = {k: overrides.pop(k) for k in _TRAIN_CALL_KEYS if k in overrides}
    recipe = {k: v for k, v in overrides.items() if k in recipe_keys}
    arch = {k: v for k, v in overrides.items() if k not in recipe_keys}
    # Overrides and data checked (TF-free), TF threads set, before loading runs TF's first op.
    dataset = ready_to_finetune(directory, data, overrides)
    task = rnnzoo.load(directory)
    if not dataset.num_dev:
        raise PresetError(f"{data}: no dev split to measure the fine-tuned model on")
    head = task.head_overrides(dataset)
    if head or arch or freeze_backbone:
        tuned = task.with_new_head(freeze_backbone=freeze_backbone, **{**arch, **head})
        note = new_head_note(os.fspath(source), task, head, tuned)
        if note:
            _log(note)
        task = tuned
    preset = Path(out)
    run = Path(run_dir) if run_dir is not None else preset.with_name(preset.name + "-run")
    result = train(task, data, out=run, overwrite=overwrite, verbose=verbose, **call, **recipe)
    what = f"with a new head for the labels {head['labels']}" if head.get("labels") else (
        "with a new output layer" if head else "")
    how = ", ".join(filter(None, [what, "the backbone frozen" if freeze_backbone else ""]))
    saved = save_measured_preset(result.task, preset, {
        "name": f"{task.name}.{tag}",
        "description": f"Fine-tuned from {meta['name']} on {dataset.description}"
                       f"{f' ({how})' if how else ''}. Architecture: {_architecture(task)}",
        "dataset": dataset.description,
        "metrics_command": "rnnzoo evaluate " + _quoted(out) + " --data " + _quoted(data)
                           + " --split dev",
        "training_command": command or _finetune_command(source, data, out, tag,
                                                         freeze_backbone, run_dir, overrides),
        "training_wall_time_s": round(time.time() - start, 1),
        "data_license": data_license,
        "notes": f"fine-tuned from {meta['name']}"
                 + (" with the backbone frozen" if freeze_backbone else ""),
    }, data, "dev", storage=storage, overwrite=overwrite, onnx=onnx)
    return FinetuneResult(saved, result.run_dir)


def _quoted(path: str | os.PathLike) -> str:
    import shlex

    return shlex.quote(os.fspath(path))
