"""The ``rnnzoo`` command. Errors print as one line (``rnnzoo: error: ...``) with exit code 2."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

from rnnzoo.errors import ConfigError, RnnzooError, RunDirError

_TF_BANNERS = (
    "All log messages before absl::InitializeLog()",
    "oneDNN custom operations are on",
    "This TensorFlow binary is optimized",
    "To enable the following instructions",
    "oneDNN supports DT_BOOL only",
)


def _quiet(verbose: bool) -> None:
    """Without ``--verbose``: no TensorFlow C++ log lines (``TF_CPP_MIN_LOG_LEVEL=3``), no
    TensorFlow/absl Python log lines below ERROR, and no warnings raised inside TensorFlow,
    Keras or tf2onnx (about their internals: nothing a user of this command can act on). Set
    before TensorFlow is imported, which is only on the commands that need it."""
    if verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for name in ("tensorflow", "absl", "tf2onnx", "keras"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"(tensorflow|keras|tf2onnx|absl|h5py)(\.|$)")


def _keras(purpose: str, verbose: bool = False) -> None:
    """Check that the train extra is installed (one-line error with the install command
    otherwise), then import TensorFlow quietly."""
    from rnnzoo.extras import require_training

    require_training(purpose)
    _import_tensorflow_quietly(verbose)


def _import_tensorflow_quietly(verbose: bool = False) -> None:
    """Import TensorFlow and Keras with the C++ start-up banners filtered out of stderr (they
    are printed before any log-level setting applies); any other message is passed through,
    and everything with ``--verbose``."""
    import tempfile

    if "tensorflow" in sys.modules:
        return

    with tempfile.TemporaryFile(mode="w+b") as capture:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        try:
            import keras  # noqa: F401
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode("utf-8", "replace").splitlines():
                if line.strip() and (verbose or not any(b in line for b in _TF_BANNERS)):
                    print(line, file=sys.stderr)


def _parse_set(items: list[str]) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set units=64")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def _find_run_dir(weights: Path) -> Path:
    """The run/preset directory a weights file belongs to (nearest parent with config.json)."""
    for parent in [weights.parent, *weights.parents]:
        if (parent / "config.json").is_file():
            return parent
    raise RunDirError(
        f"{weights}: no config.json next to it or above it; --weights must be a file inside a "
        "run directory (e.g. RUN/checkpoints/last.weights.h5)"
    )


def _source_dir(args: argparse.Namespace) -> Path:
    """Where NAME's trained files are: --run DIR, the run of --weights FILE, or NAME itself as
    a preset (``entry.tag``, a preset directory, archive or URL, verified before use)."""
    from rnnzoo.presets import resolve_preset
    from rnnzoo.registry import get_entry, list_models

    if args.weights:
        weights = Path(args.weights)
        if not weights.is_file():
            raise RunDirError(f"weights file not found: {weights}")
        return _find_run_dir(weights)
    if args.run:
        get_entry(args.name)  # unknown names fail with suggestions before any file work
        return Path(args.run)
    if "." not in args.name and "/" not in args.name:
        entry = get_entry(args.name)
        presets = list_models(f"{entry.name}.*", pretrained=True)
        hint = f"a preset ({', '.join(presets)})" if presets else "a preset name"
        raise ConfigError(f"{entry.name!r} is untrained: give --run DIR (a run directory), "
                          f"--weights FILE, or {hint}")
    return resolve_preset(args.name)


def _load(args: argparse.Namespace, directory: Path) -> Any:
    """The trained model in ``directory`` (sha256 verified); NAME must match its entry."""
    from rnnzoo.registry import load

    name = args.name if (args.run or args.weights) else None
    return load(directory, weights=args.weights, name=name)


def _app_cli_of(directory: Path, command: str) -> Any:
    """The CLI adapter of the model in ``directory`` (``rnnzoo.apps.app_cli``); a verb used
    with the wrong kind of model names the verb that fits (before any weights are read)."""
    from rnnzoo.apps import app_cli
    from rnnzoo.registry import read_config

    config = read_config(directory)
    cli = app_cli(config.task)
    if command not in (cli.VERB, "evaluate", "export", "finetune"):
        raise ConfigError(f"{config.name!r} is a {config.task} model: `rnnzoo {command}` does "
                          f"not apply; use `rnnzoo {cli.VERB} {config.name} ...`")
    return cli


def _loaded(args: argparse.Namespace, command: str) -> Any:
    directory = _source_dir(args)
    _app_cli_of(directory, command)
    _keras(f"rnnzoo {command}", _verbose(args))
    return _load(args, directory)


def _verbose(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "verbose", False))


def _preset_metadata(args: argparse.Namespace, directory: Path) -> dict | None:
    """The metadata of the preset NAME resolved to (verified by ``_source_dir``), or None for
    a run directory (``--run``/``--weights``)."""
    if args.run or args.weights or not (directory / "metadata.json").is_file():
        return None
    return json.loads((directory / "metadata.json").read_text(encoding="utf-8"))


def _inference_model(args: argparse.Namespace, directory: Path, command: str) -> Any:
    """The model an inference verb runs: the preset's ONNX bundle through onnxruntime (no
    TensorFlow import) unless ``--backend keras``, or when NAME has no bundle; Keras then."""
    from rnnzoo.presets import PresetError, has_bundle, open_runtime

    meta = _preset_metadata(args, directory)
    precision = "int8" if getattr(args, "int8", False) else "fp32"
    backend = getattr(args, "backend", None)
    if backend is None:
        backend = "onnx" if meta is not None and (has_bundle(meta) or precision == "int8") \
            else "keras"
    if backend == "onnx":
        if meta is None:
            raise PresetError("--backend onnx and --int8 run a preset's ONNX bundle; a run "
                              "directory has none (export one: rnnzoo export ... --out DIR)")
        return open_runtime(directory, meta, precision)
    if precision == "int8":
        raise PresetError("--int8 runs the preset's int8 ONNX bundle: drop --backend keras")
    hint = "" if meta is None else (" (this preset has no ONNX bundle; one runs without them: "
                                    f"rnnzoo preset-bundle {meta['name']} --out DIR)")
    _keras(f"rnnzoo {command} with Keras{hint}", _verbose(args))
    return _load(args, directory)


def cmd_list(args: argparse.Namespace) -> int:
    from rnnzoo.registry import get_entry, list_models

    if args.pretrained:
        return _list_presets(args)
    names = list_models(args.pattern or "*", task=args.task)
    if not names:
        print("no models match", file=sys.stderr)
        return 1
    width = max(len(n) for n in names)
    for name in names:
        entry = get_entry(name)
        print(f"{name:<{width}}  {entry.task:<22} {entry.description.splitlines()[0][:70]}")
    return 0


def _list_presets(args: argparse.Namespace) -> int:
    """Shipped and cached presets with their headline metric (from verified metadata)."""
    from rnnzoo.presets import list_presets, preset_info

    names = list_presets(args.pattern or "*")
    rows = []
    for name in names:
        meta = preset_info(name)
        if args.task and meta["task"] != args.task:
            continue
        metric = ", ".join(f"{k} {v:g}" for k, v in list(meta["metrics"].items())[:2])
        rows.append((name, meta["task"], f"{metric} ({meta['split']})"))
    if not rows:
        print("no presets match", file=sys.stderr)
        return 1
    width = max(len(r[0]) for r in rows)
    for name, task, metric in rows:
        print(f"{name:<{width}}  {task:<22} {metric}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from rnnzoo.registry import model_info

    print(json.dumps(model_info(args.name), indent=2))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from rnnzoo.training import train

    overrides = _parse_set(args.set or [])
    for key in ("epochs", "batch_size", "learning_rate", "precision"):
        value = getattr(args, key)
        if value is not None:
            overrides[key] = value
    if args.jit:
        overrides["jit_compile"] = True
    if args.diagnose is not None:
        overrides["diagnose_every"] = args.diagnose
    received: list[int] = []

    def stop(signum: int, frame: Any) -> None:  # SIGTERM (a scheduler's stop) acts as Ctrl-C
        received.append(signum)
        raise KeyboardInterrupt(f"signal {signum}")

    _keras("rnnzoo train", _verbose(args))
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, stop) if in_main else None
    try:
        result = train(args.name, args.data, out=args.out, strategy=args.strategy,
                       init_from=args.init_from, overwrite=args.overwrite, limit=args.limit,
                       **overrides)
    except KeyboardInterrupt as exc:  # TrainingInterrupted says what a rerun does
        print(f"rnnzoo: {exc or 'interrupted'}", file=sys.stderr)
        return 128 + (received[0] if received else signal.SIGINT)
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
    if result.metrics:
        from rnnzoo.apps import app_cli

        headline = app_cli(result.task.config.task).format_report(result.metrics).splitlines()[0]
        print(f"dev: {headline}  ->  {result.run_dir}")
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from rnnzoo.presets import finetune

    overrides = _parse_set(args.set or [])
    for key in ("epochs", "batch_size", "learning_rate"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    _keras("rnnzoo finetune", _verbose(args))
    out = finetune(args.preset, args.data, args.out, tag=args.tag,
                   freeze_backbone=args.freeze_backbone, run_dir=args.run_dir,
                   data_license=args.data_license, overwrite=args.overwrite,
                   command="rnnzoo " + " ".join(sys.argv[1:]), onnx=not args.no_onnx,
                   **overrides)
    meta = json.loads((out / "metadata.json").read_text(encoding="utf-8"))
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in meta["metrics"].items())
    print(f"fine-tuned preset {meta['name']} -> {out} (dev: {metrics})")
    return 0


def cmd_save_preset(args: argparse.Namespace) -> int:
    from rnnzoo.presets import save_measured_preset
    from rnnzoo.registry import load

    _keras("rnnzoo save-preset", _verbose(args))
    run = Path(args.run)
    task = load(run)
    log = json.loads((run / "train.log.json").read_text()) if (run / "train.log.json").is_file() \
        else {}
    meta = {"name": args.name, "dataset": args.dataset or log.get("data_description", args.data),
            "metrics_command": f"rnnzoo evaluate {args.name} --data {args.data} "
                               f"--split {args.split}",
            "training_command": args.training_command or log.get("command") or "unknown",
            "training_wall_time_s": float(args.wall_time if args.wall_time is not None
                                          else log.get("fit_seconds", 0.0)),
            "data_license": args.data_license}
    for key in ("description", "tradeoffs", "notes"):
        if getattr(args, key):
            meta[key] = getattr(args, key)
    if args.published:
        meta["published"] = {k: float(v) for k, v in _parse_set(args.published).items()}
    out = save_measured_preset(task, args.out, meta, args.data, args.split, args.storage,
                               args.overwrite, check_limit=args.check_limit,
                               onnx=not args.no_onnx, int8=not args.no_int8)
    saved = json.loads((out / "metadata.json").read_text(encoding="utf-8"))
    print(f"preset {args.name} -> {out}: {saved['metrics']}")
    _print_bundles(saved)
    return 0


def _print_bundles(meta: dict) -> None:
    info = meta.get("onnx") or {}
    for precision in ("fp32", "int8"):
        if precision in info:
            print(f"  ONNX {precision}: {info[precision]['path']} "
                  f"({info[precision]['bytes'] / 1e6:.1f} MB)")
    if info.get("int8_rejected"):
        print(f"  int8 not shipped: {info['int8_rejected']}")


def cmd_preset_bundle(args: argparse.Namespace) -> int:
    from rnnzoo.presets import add_bundle

    _keras("rnnzoo preset-bundle", _verbose(args))
    out = add_bundle(args.preset, args.out, eval_data=args.data, int8=not args.no_int8,
                     overwrite=args.overwrite)
    meta = json.loads((out / "metadata.json").read_text(encoding="utf-8"))
    print(f"preset {meta['name']} -> {out}")
    _print_bundles(meta)
    return 0


def cmd_launch(args: argparse.Namespace) -> int:
    from rnnzoo.launch import launch

    result = launch(args.command, workers=args.workers, port_base=args.port_base,
                    log_dir=args.log_dir, timeout=args.timeout)
    return result.returncode


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit: expected an integer >= 1, found {args.limit}")
    directory = _source_dir(args)
    cli = _app_cli_of(directory, "evaluate")
    from rnnzoo.evaluation import evaluation_reports

    model = _evaluation_model(args, directory, cli)
    reports = evaluation_reports(model, directory, args.data, args.split, vars(args))
    if args.json:
        print(json.dumps(reports if len(reports) > 1 else reports[0], indent=2))
        return 0
    print(f"{reports[0].get('model', args.name)} on {reports[0]['data']} ({args.split} split)")
    for report in reports:
        print(cli.format_report(report))
    return 0


def _evaluation_model(args: argparse.Namespace, directory: Path, cli: Any) -> Any:
    """Keras when the train extra is installed (or ``--backend keras``), else a preset's ONNX
    bundle (``--backend onnx``): the object a Python user holds, evaluated through the same
    public ``evaluate`` call."""
    from rnnzoo.extras import has_training
    from rnnzoo.presets import PresetError, has_bundle, open_runtime, task_on_bundle

    meta = _preset_metadata(args, directory)
    backend = args.backend
    if backend is None:
        backend = "onnx" if not has_training() and meta is not None and has_bundle(meta) \
            else "keras"
    if backend == "onnx":
        if meta is None:
            raise PresetError("--backend onnx evaluates a preset's ONNX bundle; a run "
                              "directory has none")
        if getattr(cli, "LEGACY", False):  # MIGRATION: task types not moved to rnnzoo/apps
            return task_on_bundle(directory, meta)
        return open_runtime(directory, meta)
    _keras("rnnzoo evaluate", _verbose(args))
    return _load(args, directory)


def cmd_verb(args: argparse.Namespace) -> int:
    """A task type's verb (predict, translate, ...) on a trained model."""
    directory = _source_dir(args)
    cli = _app_cli_of(directory, args.command)
    return int(cli.run_verb(_inference_model(args, directory, args.command), args) or 0)


def cmd_diagnose(args: argparse.Namespace) -> int:
    """Gradient-through-time diagnostics of a trained model (rnnzoo/diagnostics.py)."""
    directory = _source_dir(args)
    _keras("rnnzoo diagnose", _verbose(args))
    from rnnzoo.diagnostics import diagnose

    report = diagnose(_load(args, directory), args.data, split=args.split,
                      probe_size=args.probe_size, out=args.out)
    print(report["summary"])
    if args.out:
        print(f"report.json and plots -> {args.out}")
    return 0


def _add_diagnose_command(sub: Any) -> None:
    p = sub.add_parser(
        "diagnose", help="gradient flow through time of a trained model",
        description="Temporal gradient profile ||dL/dh_t||, effective memory length, gate "
        "saturation (LSTM/GRU), spectral radius and singular values of every recurrent matrix, "
        "on a probe batch of --data; JSON and PNG plots with --out.",
    )
    _add_trained_model_args(p)
    p.add_argument("--data", required=True, help="dataset the probe batch is drawn from")
    p.add_argument("--split", choices=["dev", "train"], default="dev")
    p.add_argument("--probe-size", dest="probe_size", type=int, default=32,
                   help="examples in the probe batch (default 32)")
    p.add_argument("--out", metavar="DIR", help="write report.json and the plots here")
    p.set_defaults(func=cmd_diagnose)


def cmd_export(args: argparse.Namespace) -> int:
    task = _loaded(args, "export")
    from rnnzoo.export import to_onnx

    report = to_onnx(task, args.out, opset=args.opset, quantize=args.quantize,
                     validate=not args.no_validate, strict=args.strict, eval_data=args.data,
                     overwrite=args.overwrite)
    print(report.summary())
    return 0


def _add_trained_model_args(p: argparse.ArgumentParser) -> None:
    """NAME plus where its trained weights are: a preset (NAME itself: entry.tag, a preset
    directory, archive or URL), or an entry with a run directory or a weights file."""
    p.add_argument("name", help="a preset (e.g. sentiment_bilstm.sst2, a directory, an archive "
                   "or a URL), or an entry name with --run/--weights")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--run", metavar="DIR", help="run or preset directory")
    g.add_argument("--weights", metavar="FILE", help="a weights file inside a run directory")


def _add_catalogue_commands(sub: Any) -> None:
    p = sub.add_parser("list", help="list zoo models", description="List zoo models.")
    p.add_argument("pattern", nargs="*", help="glob(s), e.g. 'sentiment_*'")
    p.add_argument("--task", help="only this task, e.g. text-classification")
    p.add_argument("--pretrained", action="store_true", help="list pretrained presets")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="show a model's config", description="Show a model's config.")
    p.add_argument("name")
    p.set_defaults(func=cmd_info)


def _add_training_commands(sub: Any) -> None:
    p = sub.add_parser(
        "train", help="train or fine-tune a model",
        description="Train a zoo model with the shared loop. Running the same command again on "
        "an unfinished --out directory resumes it.",
    )
    p.add_argument("name")
    p.add_argument("--data", required=True, help="dataset folder or file (see README)")
    p.add_argument("--out", help="run directory (default: runs/NAME-TIMESTAMP)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", dest="batch_size", type=int)
    p.add_argument("--learning-rate", dest="learning_rate", type=float)
    p.add_argument("--precision", choices=["float32", "mixed_bfloat16", "auto"])
    p.add_argument("--jit", action="store_true", help="XLA-compile the train step")
    p.add_argument("--diagnose", nargs="?", type=int, const=100, metavar="N",
                   help="gradient diagnostics every N steps (default 100): norms per layer, "
                   "clipping, ||dL/dh_t|| -> RUN/diagnostics.{json,png}")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override any config key, e.g. --set units=64 (repeatable)")
    p.add_argument("--init-from", dest="init_from", metavar="DIR",
                   help="fine-tune: start from this run/preset's architecture, weights and "
                   "vocabulary (other labels in --data get a new head)")
    p.add_argument("--limit", type=int, metavar="N",
                   help="at most N examples per split (a seeded sample): quick trials")
    p.add_argument("--strategy", choices=["none", "mirrored", "multiworker"], default=None)
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "launch", help="run a command as N local MultiWorkerMirroredStrategy workers",
        description="Start N workers of one TF_CONFIG cluster on 127.0.0.1 (local testing; on a "
        "real cluster each host runs the same command with its own TF_CONFIG), e.g. "
        "rnnzoo launch --workers 2 -- rnnzoo train sentiment_gru --data D --out RUN "
        "--strategy multiworker. Stops all workers when one fails, on Ctrl-C or timeout.",
    )
    p.add_argument("--workers", type=int, default=2, help="number of workers (default 2)")
    p.add_argument("--port-base", dest="port_base", type=int,
                   help="first port (default: free ports)")
    p.add_argument("--log-dir", dest="log_dir", metavar="DIR",
                   help="worker-<i>.log files go here (default: a new temporary directory)")
    p.add_argument("--timeout", type=float, metavar="S", help="stop all workers after S seconds")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    p.set_defaults(func=cmd_launch)


def _add_preset_commands(sub: Any) -> None:
    p = sub.add_parser(
        "finetune", help="fine-tune a preset on your data into a new preset",
        description="Fine-tune a preset with the shared loop; labels that differ from the "
        "preset's get a new head. Writes a new preset (weights, metadata with dev metrics "
        "measured on what is saved, model card) to --out.",
    )
    p.add_argument("preset", help="preset name, directory, archive or URL")
    p.add_argument("--data", required=True, help="dataset folder or file")
    p.add_argument("--out", required=True, help="the new preset directory")
    p.add_argument("--tag", default="finetuned", help="the new preset is ENTRY.TAG")
    p.add_argument("--freeze-backbone", dest="freeze_backbone", action="store_true",
                   help="train only the new head")
    p.add_argument("--run-dir", dest="run_dir", help="run directory (default: OUT-run)")
    p.add_argument("--data-license", dest="data_license", default="unknown")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", dest="batch_size", type=int)
    p.add_argument("--learning-rate", dest="learning_rate", type=float)
    p.add_argument("--set", action="append", metavar="KEY=VALUE")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--no-onnx", dest="no_onnx", action="store_true",
                   help="do not build the preset's ONNX bundles")
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser(
        "save-preset", help="save a trained run as a preset with measured metrics",
        description="Write a run directory as a preset: weights (float16 by default), metadata "
        "with the metrics measured on the saved weights, a model card and sha256 checksums.",
    )
    p.add_argument("name", help="ENTRY.TAG, e.g. sentiment_bilstm.sst2")
    p.add_argument("--run", required=True, help="the trained run directory")
    p.add_argument("--data", required=True, help="the data the metrics are measured on")
    p.add_argument("--split", default="dev")
    p.add_argument("--out", required=True)
    p.add_argument("--storage", choices=["float16", "float32"], default="float16")
    p.add_argument("--dataset", help="dataset description (default: from the run)")
    p.add_argument("--data-license", dest="data_license", required=True)
    p.add_argument("--training-command", dest="training_command")
    p.add_argument("--wall-time", dest="wall_time", type=float, help="training wall time, s")
    p.add_argument("--description")
    p.add_argument("--tradeoffs")
    p.add_argument("--notes")
    p.add_argument("--published", action="append", metavar="NAME=VALUE")
    p.add_argument("--check-limit", dest="check_limit", type=int,
                   help="also record the metric on the first N examples (re-measured in CI)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--no-onnx", dest="no_onnx", action="store_true",
                   help="do not build the validated ONNX bundles (onnx/fp32, onnx/int8)")
    p.add_argument("--no-int8", dest="no_int8", action="store_true",
                   help="build only the fp32 bundle")
    p.set_defaults(func=cmd_save_preset)

    p = sub.add_parser(
        "preset-bundle", help="add validated ONNX bundles to an existing preset",
        description="Export a preset's stored weights to ONNX (fp32, and int8 when it passes "
        "the task's acceptance rule on --data), validate them against Keras, and write the "
        "preset with onnx/ added (metadata, model card and checksums updated) to --out; "
        "--out may be the preset's own directory with --overwrite.",
    )
    p.add_argument("preset", help="preset name, directory, archive or URL")
    p.add_argument("--out", required=True, help="the preset directory to write")
    p.add_argument("--data", help="data to compare int8 against fp32 on (the task's metric)")
    p.add_argument("--no-int8", dest="no_int8", action="store_true",
                   help="build only the fp32 bundle")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_preset_bundle)


def _add_task_commands(sub: Any) -> None:
    """``evaluate`` (with every task type's options) and one command per task-type verb."""
    from rnnzoo.apps import app_cli, known_task_types

    clis = {t: app_cli(t) for t in known_task_types()}
    p = sub.add_parser("evaluate", help="a trained model's metrics on a dataset",
                       description="Score a trained model on a split of a dataset; --split all "
                       "scores a whole held-out file.")
    _add_trained_model_args(p)
    p.add_argument("--data", required=True)
    p.add_argument("--split", choices=["dev", "test", "train", "all"], default="dev",
                   help="which part of the data (translators: the grouped test split is "
                   "'test'; 'all': the whole file)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--limit", type=int, metavar="N",
                   help="score only the first N examples of the split (quick trials)")
    p.add_argument("--backend", choices=["onnx", "keras"],
                   help="keras (default with the train extra) or the preset's ONNX bundle "
                   "(default without it)")
    for cli in clis.values():
        cli.add_evaluate_arguments(p)
    p.set_defaults(func=cmd_evaluate)

    verbs: dict[str, list] = {}
    for task, cli in clis.items():
        verbs.setdefault(cli.VERB, []).append((task, cli))
    for verb, owners in verbs.items():
        tasks = ", ".join(task for task, _ in owners)
        # Task types sharing a verb (music and text generation) may declare the same option.
        p = sub.add_parser(verb, help=f"run a trained {tasks} model",
                           description=f"{verb.capitalize()} with a trained {tasks} model.",
                           conflict_handler="resolve")
        _add_trained_model_args(p)
        for _, cli in owners:
            cli.add_verb_arguments(p)
        p.add_argument("--backend", choices=["onnx", "keras"],
                       help="onnx: the preset's validated ONNX bundle through onnxruntime, no "
                       "TensorFlow (default for presets that carry one); keras: the Keras model "
                       "(train extra)")
        p.add_argument("--int8", action="store_true",
                       help="run the preset's int8 ONNX bundle (faster, validated against fp32)")
        p.set_defaults(func=cmd_verb)


def _add_export_command(sub: Any) -> None:
    p = sub.add_parser(
        "export", help="export a trained model to an ONNX bundle",
        description="Export a trained model to an ONNX bundle with fused recurrent operators, "
        "validated against Keras (onnx.checker, no Loop, parity at several shapes).",
    )
    _add_trained_model_args(p)
    p.add_argument("--out", required=True, help="bundle directory to write")
    p.add_argument("--quantize", choices=["int8"], help="also write OUT-int8 (dynamic int8)")
    p.add_argument("--data", help="labelled data to compare int8 accuracy against fp32")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--strict", action="store_true",
                   help="fail if a recurrent layer cannot be fused (instead of a Loop + warning)")
    p.add_argument("--no-validate", dest="no_validate", action="store_true",
                   help="skip parity checks (not recommended)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_export)


def _threads_arg(value: str) -> int | str:
    """``--intra-op-threads``: an integer or ``auto`` (checked by ServeConfig)."""
    return int(value) if value.isdigit() else value


def cmd_serve(args: argparse.Namespace) -> int:
    """Presets and bundles behind an HTTP API and a demo page (rnnzoo/serving.py, TF-free)."""
    from rnnzoo.serving import ServeConfig, serve

    config = ServeConfig(batching=not args.no_batching, max_batch_size=args.max_batch_size,
                         max_delay_ms=args.max_delay_ms, threads=args.threads,
                         max_body_bytes=args.max_body_bytes, max_queue=args.max_queue,
                         precision=args.precision,
                         intra_op_threads=_threads_arg(args.intra_op_threads))
    serve(args.models, config, host=args.host, port=args.port, workers=args.workers,
          log_level="info" if args.verbose else "warning")
    return 0


def _add_serve_command(sub: Any) -> None:
    p = sub.add_parser(
        "serve", help="serve presets/bundles over HTTP (v1 predict, v2 infer, demo page)",
        description="Serve presets or ONNX bundles with onnxruntime (no TensorFlow): "
        "POST /v1/models/NAME:predict with {\"instances\": [...]}, the Open Inference Protocol "
        "v2 at /v2/..., a demo page at /, /openapi.json. Needs the serve extra: "
        'pip install "rnnzoo[serve]".')
    p.add_argument("models", nargs="+", metavar="PRESET_OR_BUNDLE",
                   help="a preset (name, directory, archive, URL) or a bundle directory; "
                   "NAME=SOURCE names it in the URLs")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    p.add_argument("--threads", type=int, default=1,
                   help="runtime calls in flight per model and process (default 1)")
    p.add_argument("--no-batching", dest="no_batching", action="store_true",
                   help="one runtime call per request (no merging of concurrent requests)")
    p.add_argument("--max-batch-size", dest="max_batch_size", type=int, default=64,
                   help="instances per merged runtime call (default 64)")
    p.add_argument("--max-delay-ms", dest="max_delay_ms", type=float, default=0.0,
                   help="how long a batch waits for more requests (default 0: batches form "
                   "while the previous one runs)")
    p.add_argument("--max-queue", dest="max_queue", type=int, default=1024,
                   help="instances waiting per model before answering 503 (default 1024)")
    p.add_argument("--max-body-bytes", dest="max_body_bytes", type=int, default=1 << 20,
                   help="largest request body (default 1 MiB; larger: 413)")
    p.add_argument("--precision", choices=["fp32", "int8"], default="fp32",
                   help="which of a preset's bundles to serve (default fp32)")
    p.add_argument("--intra-op-threads", dest="intra_op_threads", default="1",
                   help="onnxruntime threads per runtime call: N, or 'auto' (1 below 8 rows, "
                   "every granted core from 8: merged batches use them; default 1)")
    p.set_defaults(func=cmd_serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnzoo",
        description="A model zoo of recurrent networks: list models, train, evaluate, run and "
        "export them.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_catalogue_commands(sub)
    _add_training_commands(sub)
    _add_task_commands(sub)
    _add_preset_commands(sub)
    _add_export_command(sub)
    _add_diagnose_command(sub)
    _add_serve_command(sub)
    for command in sub.choices.values():  # every command that reads a trained model
        command.add_argument("--verbose", action="store_true",
                             help="show TensorFlow/Keras log lines and warnings")
        if {a.dest for a in command._actions} & {"run", "weights", "init_from"}:
            command.add_argument(
                "--no-verify", dest="no_verify", action="store_true",
                help="load run/preset directories without checking their checksums.json "
                "(only for files you trust)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # argparse cannot place a '*' positional after options ("NAME --run DIR text ..."), so
    # predict collects the texts that follow its options here.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "texts") or any(e.startswith("-") for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.texts = list(args.texts) + extra
    _quiet(_verbose(args))
    from rnnzoo.registry import verification

    try:
        with verification(not getattr(args, "no_verify", False)):
            return int(args.func(args) or 0)
    except RnnzooError as exc:  # config, data, run directory, storage, lock, bundle, export
        print(f"rnnzoo: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file problem no rnnzoo check anticipated: still one line
        print(f"rnnzoo: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rnnzoo: interrupted", file=sys.stderr)
        return 130


def _one_line(exc: BaseException) -> str:
    """An error message on one line (a message from a library may span several)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 2000 else text[:1997] + "..."


if __name__ == "__main__":
    sys.exit(main())
