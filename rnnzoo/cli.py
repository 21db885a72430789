"""The ``rnnzoo`` command. Errors print as one line (``rnnzoo: error: ...``) with exit code 2."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

from rnnzoo import cli_parser
from rnnzoo.errors import ConfigError, RnnzooError, RunDirError


def _quiet(verbose: bool) -> None:
    """Without ``--verbose``: no TensorFlow/absl Python log lines below ERROR, and no warnings
    raised inside TensorFlow, Keras or tf2onnx (about their internals: nothing a user of this
    command can act on); TensorFlow's C++ log and start-up banners are off too
    (``rnnzoo.extras.import_tensorflow``, shared with the Python API). With ``--verbose``,
    all of them. Set before TensorFlow is imported, which is only on the commands that need
    it, after their arguments, config and data are checked."""
    from rnnzoo.extras import show_tensorflow_logs

    show_tensorflow_logs(verbose)
    if verbose:
        return
    for name in ("tensorflow", "absl", "tf2onnx", "keras"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"(tensorflow|keras|tf2onnx|absl|h5py)(\.|$)")


def _keras(purpose: str) -> None:
    """Import TensorFlow quietly, or a one-line error with the install command when the train
    extra is missing."""
    from rnnzoo.extras import import_tensorflow

    import_tensorflow(purpose)


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
    a preset (``entry.tag``, a preset directory, archive or URL, verified before use). A bare
    NAME that is a preset folder here (it holds metadata.json) is that preset, as
    ``rnnzoo.from_preset`` reads it."""
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
    local = (Path(args.name) / "metadata.json").is_file()  # a preset folder here wins
    if "." not in args.name and "/" not in args.name and not local:
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


def _loaded(args: argparse.Namespace, command: str, data: str | None = None) -> Any:
    """The Keras model NAME names; ``data`` (a ``--data`` it will use) is read first."""
    directory = _source_dir(args)
    _app_cli_of(directory, command)
    if data is not None:
        _read_data(directory, data)
    _keras(f"rnnzoo {command}")
    return _load(args, directory)


def _read_data(directory: Path, data: str) -> Any:
    """``--data`` read with the readers of the model in ``directory`` (TF-free), before
    TensorFlow is imported: a missing file or a bad header answers in a second."""
    from rnnzoo.evaluation import reader_task

    reader = reader_task(directory)
    return reader.load_data(data, seed=reader.config.training.seed)


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
    _keras(f"rnnzoo {command} with Keras{hint}")
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
    """Installed and cached presets with their headline metric (from verified metadata), then
    the zoo's presets that are not installed, with the distribution that provides each."""
    import fnmatch

    from rnnzoo.apps import headline
    from rnnzoo.presets import list_presets, missing_presets, preset_info
    from rnnzoo.registry import get_entry

    pattern = args.pattern or "*"
    rows = []
    for name in list_presets(pattern):
        meta = preset_info(name)
        if args.task and meta["task"] != args.task:
            continue
        head = headline(meta["task"], meta["metrics"], meta["family"])
        rows.append((name, meta["task"], f"{head.text()} ({meta['split']})"))
    for name, dist in sorted(missing_presets().items()):
        task = get_entry(name).task
        if fnmatch.fnmatchcase(name, pattern) and args.task in (None, task):
            rows.append((name, task, f"not installed: pip install {dist}"))
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


def cmd_card(args: argparse.Namespace) -> int:
    """Print a preset's model card, rendered from its verified metadata and bundle manifests
    (no TensorFlow)."""
    from rnnzoo.presets import render_model_card, resolve_preset

    directory = resolve_preset(args.preset)
    meta = json.loads((directory / "metadata.json").read_text(encoding="utf-8"))
    print(render_model_card(meta, directory), end="")
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

    # train checks the entry, the overrides and the data, then imports TensorFlow (quietly)
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
    # finetune checks the overrides and the data, then imports TensorFlow (quietly)
    out = finetune(args.preset, args.data, args.out, tag=args.tag,
                   freeze_backbone=args.freeze_backbone, run_dir=args.run_dir,
                   data_license=args.data_license, overwrite=args.overwrite,
                   command="rnnzoo " + " ".join(sys.argv[1:]), onnx=not args.no_onnx,
                   **overrides)
    meta = json.loads((out.preset / "metadata.json").read_text(encoding="utf-8"))
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in meta["metrics"].items())
    print(f"fine-tuned preset {meta['name']} -> {out.preset} (dev: {metrics}; run directory "
          f"{out.run_dir})")
    return 0


def cmd_save_preset(args: argparse.Namespace) -> int:
    from rnnzoo.presets import save_measured_preset
    from rnnzoo.registry import load

    _keras("rnnzoo save-preset")
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

    _keras("rnnzoo preset-bundle")
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
    from rnnzoo.evaluation import evaluate_reports
    from rnnzoo.progress import progress_wanted

    data = _read_data(directory, args.data)  # the model's readers, before TensorFlow
    model = _evaluation_model(args, directory, cli)
    args.progress = progress_wanted(args)
    reports = evaluate_reports(model, data, args.split, vars(args))
    if args.json:
        print(json.dumps(reports if len(reports) > 1 else reports[0], indent=2))
        return 0
    print(f"{args.name} on {reports[0]['data']} ({args.split} split)")
    for report in reports:
        print(cli.format_report(report))
    return 0


def _evaluation_model(args: argparse.Namespace, directory: Path, cli: Any) -> Any:
    """Keras when the train extra is installed (or ``--backend keras``), else a preset's ONNX
    bundle (``--backend onnx``): the object a Python user holds, evaluated through the same
    public ``evaluate`` call."""
    from rnnzoo.extras import has_training
    from rnnzoo.presets import PresetError, has_bundle, open_runtime

    meta = _preset_metadata(args, directory)
    backend = args.backend
    if backend is None:
        backend = "onnx" if not has_training() and meta is not None and has_bundle(meta) \
            else "keras"
    if backend == "onnx":
        if meta is None:
            raise PresetError("--backend onnx evaluates a preset's ONNX bundle; a run "
                              "directory has none")
        return open_runtime(directory, meta)
    _keras("rnnzoo evaluate")
    return _load(args, directory)


def cmd_verb(args: argparse.Namespace) -> int:
    """A task type's verb (predict, translate, ...) on a trained model."""
    directory = _source_dir(args)
    cli = _app_cli_of(directory, args.command)
    return int(cli.run_verb(_inference_model(args, directory, args.command), args) or 0)


def cmd_diagnose(args: argparse.Namespace) -> int:
    """Gradient-through-time diagnostics of a trained model (rnnzoo/diagnostics/)."""
    directory = _source_dir(args)
    _keras("rnnzoo diagnose")
    from rnnzoo.diagnostics import diagnose

    report = diagnose(_load(args, directory), args.data, split=args.split,
                      probe_size=args.probe_size, out=args.out)
    print(report["summary"])
    if args.out:
        print(f"report.json and plots -> {args.out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    # --data is read only with --quantize int8 (to_onnx says so otherwise)
    task = _loaded(args, "export", args.data if args.quantize else None)
    from rnnzoo.export import to_onnx
    from rnnzoo.progress import progress_wanted

    report = to_onnx(task, args.out, opset=args.opset, quantize=args.quantize,
                     validate=not args.no_validate, strict=args.strict, eval_data=args.data,
                     overwrite=args.overwrite, progress=progress_wanted(args))
    print(report.summary())
    return 0


def _threads_arg(value: str) -> int | str:
    """``--intra-op-threads``: an integer or ``auto`` (checked by ServeConfig)."""
    return int(value) if value.isdigit() else value


def cmd_serve(args: argparse.Namespace) -> int:
    """Presets and bundles behind an HTTP API and a demo page (rnnzoo/serving/, TF-free)."""
    from rnnzoo import limits
    from rnnzoo.serving import PortInUseError, ServeConfig, serve

    changed = dict(limits.parse_limit(text) for text in args.serve_limits)
    if args.request_timeout is not None:
        changed["request_timeout_s"] = args.request_timeout
    limits.configure(**changed)
    config = ServeConfig(batching=not args.no_batching, max_batch_size=args.max_batch_size,
                         max_delay_ms=args.max_delay_ms, threads=args.threads,
                         max_body_bytes=args.max_body_bytes, max_queue=args.max_queue,
                         max_instances=args.max_instances, body_timeout_s=args.body_timeout,
                         header_timeout_s=args.header_timeout, precision=args.precision,
                         intra_op_threads=_threads_arg(args.intra_op_threads),
                         allowed_hosts=tuple(h for given in args.allowed_hosts
                                             for h in given.split(",") if h.strip()),
                         cors_origins=tuple(args.cors_origins))
    try:
        serve(args.models, config, host=args.host, port=args.port, workers=args.workers,
              log_level="info" if args.verbose else "warning",
              graceful_timeout_s=args.graceful_timeout)
    except PortInUseError as exc:  # not a mistake in the command: status 1, as servers exit
        print(f"rnnzoo: error: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_web(args: argparse.Namespace) -> int:
    """Presets as a static site on onnxruntime-web (rnnzoo/web/, TF-free)."""
    from rnnzoo.web import build_site

    site = build_site(args.presets, args.out, precision=args.precision,
                      overwrite=args.overwrite, onnxruntime_web=args.onnxruntime_web)
    for m in site["models"]:
        print(f"{m['name']}: {m['task']}, {m['precision']}, {m['bytes'] / 1e6:.1f} MB, "
              f"sha256={m['digest']}")
    print(f"wrote {args.out} (onnxruntime-web {site['onnxruntime_web']}); serve it with any "
          f"static file server, e.g. python -m http.server -d {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``rnnzoo`` parser (``rnnzoo.cli_parser``), each command bound to its ``cmd_*``."""
    return cli_parser.build_parser({
        "list": cmd_list, "info": cmd_info, "card": cmd_card, "train": cmd_train,
        "launch": cmd_launch,
        "finetune": cmd_finetune, "save-preset": cmd_save_preset,
        "preset-bundle": cmd_preset_bundle, "evaluate": cmd_evaluate, "verb": cmd_verb,
        "export": cmd_export, "diagnose": cmd_diagnose, "serve": cmd_serve,
        "web": cmd_web,
    })


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
        if args.global_limits:
            from rnnzoo import limits

            limits.configure(**dict(limits.parse_limit(t) for t in args.global_limits))
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
