"""The ``rnnzoo`` command. Errors print as one line (``rnnzoo: error: ...``) with exit code 2."""

from __future__ import annotations

import argparse
import json
import os
import sys
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


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up banners filtered out of stderr (they are printed
    before any log-level setting applies); any other message is passed through."""
    import tempfile

    with tempfile.TemporaryFile(mode="w+b") as capture:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode("utf-8", "replace").splitlines():
                if line.strip() and not any(b in line for b in _TF_BANNERS):
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


def _load(args: argparse.Namespace) -> Any:
    """The trained model named by NAME plus --run DIR or --weights FILE."""
    from rnnzoo.registry import load

    if args.weights:
        weights = Path(args.weights)
        if not weights.is_file():
            raise RunDirError(f"weights file not found: {weights}")
        return load(_find_run_dir(weights), weights=weights, name=args.name)
    if not args.run:
        raise ConfigError("give --run DIR (a run directory) or --weights FILE")
    return load(args.run, name=args.name)


def _task_class_of(name: str, command: str) -> Any:
    """The task type of NAME; a verb used with the wrong kind of model names the verb that fits
    (before any file is read)."""
    from rnnzoo.registry import get_entry
    from rnnzoo.tasks import task_class

    entry = get_entry(name)  # unknown names fail with suggestions before any file work
    cls = task_class(entry.task)
    if command not in (cls.verb, "evaluate", "export"):
        raise ConfigError(f"{entry.name!r} is a {entry.task} model: `rnnzoo {command}` does not "
                          f"apply; use `rnnzoo {cls.verb} {entry.name} ...`")
    return cls


def cmd_list(args: argparse.Namespace) -> int:
    from rnnzoo.registry import get_entry, list_models

    names = list_models(args.pattern or "*", task=args.task, pretrained=args.pretrained)
    if not names:
        print("no models match", file=sys.stderr)
        return 1
    width = max(len(n) for n in names)
    for name in names:
        entry = get_entry(name)
        print(f"{name:<{width}}  {entry.task:<22} {entry.description.splitlines()[0][:70]}")
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
    try:
        result = train(args.name, args.data, out=args.out, strategy=args.strategy,
                       init_from=args.init_from, overwrite=args.overwrite, **overrides)
    except KeyboardInterrupt:
        print(f"rnnzoo: interrupted; run the same command with --out {args.out or 'DIR'} to "
              "resume", file=sys.stderr)
        return 130
    if result.metrics:
        headline = result.task.format_report(result.metrics).splitlines()[0]
        print(f"dev: {headline}  ->  {result.run_dir}")
    return 0


def cmd_launch(args: argparse.Namespace) -> int:
    from rnnzoo.launch import launch

    result = launch(args.command, workers=args.workers, port_base=args.port_base,
                    log_dir=args.log_dir, timeout=args.timeout)
    return result.returncode


def cmd_evaluate(args: argparse.Namespace) -> int:
    _task_class_of(args.name, "evaluate")
    task = _load(args)
    data = task.load_data(args.data, seed=task.config.training.seed)
    reports = task.evaluate_reports(data, args.split, vars(args))
    if args.json:
        print(json.dumps(reports if len(reports) > 1 else reports[0], indent=2))
        return 0
    print(f"{task.name} on {reports[0]['data']} ({args.split} split)")
    for report in reports:
        print(task.format_report(report))
    return 0


def cmd_verb(args: argparse.Namespace) -> int:
    """A task type's verb (predict, translate, ...) on a trained model."""
    cls = _task_class_of(args.name, args.command)
    return int(cls.run_verb(_load(args), args) or 0)


def cmd_export(args: argparse.Namespace) -> int:
    from rnnzoo.export import to_onnx

    task = _load(args)
    report = to_onnx(task, args.out, opset=args.opset, quantize=args.quantize,
                     validate=not args.no_validate, strict=args.strict, eval_data=args.data,
                     overwrite=args.overwrite)
    print(report.summary())
    return 0


def _add_trained_model_args(p: argparse.ArgumentParser) -> None:
    """NAME plus where its trained weights are: a run/preset directory or a weights file."""
    p.add_argument("name")
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
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override any config key, e.g. --set units=64 (repeatable)")
    p.add_argument("--init-from", dest="init_from", metavar="DIR",
                   help="fine-tune: start from this run/preset's weights and vocabulary")
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


def _add_task_commands(sub: Any) -> None:
    """``evaluate`` (with every task type's options) and one command per task-type verb."""
    from rnnzoo.tasks import known_task_types, task_class

    classes = [task_class(t) for t in known_task_types()]
    p = sub.add_parser("evaluate", help="a trained model's metrics on a dataset",
                       description="Score a trained model on a split of a dataset; --split all "
                       "scores a whole held-out file.")
    _add_trained_model_args(p)
    p.add_argument("--data", required=True)
    p.add_argument("--split", choices=["dev", "test", "train", "all"], default="dev",
                   help="which part of the data (translators: the grouped test split is "
                   "'test'; 'all': the whole file)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    for cls in classes:
        cls.add_evaluate_arguments(p)
    p.set_defaults(func=cmd_evaluate)

    verbs: dict[str, list] = {}
    for cls in classes:
        verbs.setdefault(cls.verb, []).append(cls)
    for verb, owners in verbs.items():
        tasks = ", ".join(c.task_type for c in owners)
        # Task types sharing a verb (music and text generation) may declare the same option.
        p = sub.add_parser(verb, help=f"run a trained {tasks} model",
                           description=f"{verb.capitalize()} with a trained {tasks} model.",
                           conflict_handler="resolve")
        _add_trained_model_args(p)
        for cls in owners:
            cls.add_verb_arguments(p)
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
    _add_export_command(sub)
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
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.command not in ("list", "info", "launch"):
        _import_tensorflow_quietly()
    try:
        return int(args.func(args) or 0)
    except RnnzooError as exc:
        print(f"rnnzoo: error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"rnnzoo: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
