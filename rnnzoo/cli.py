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
    from rnnzoo.registry import get_entry
    from rnnzoo.task import load

    get_entry(args.name)  # unknown names fail with suggestions before any file work
    if args.weights:
        weights = Path(args.weights)
        if not weights.is_file():
            raise RunDirError(f"weights file not found: {weights}")
        return load(_find_run_dir(weights), weights=weights, name=args.name)
    if not args.run:
        raise ConfigError("give --run DIR (a run directory) or --weights FILE")
    return load(args.run, name=args.name)


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
    task = _load(args)
    data = task.load_data(args.data, seed=task.config.training.seed)
    if task.config.family == "translator":
        # BLEU/chrF for greedy decoding and for beam search, on the grouped split.
        reports = [task.evaluate_data(data, args.split),
                   task.evaluate_data(data, args.split, beam=args.beam)]
    else:
        if args.split == "test":
            raise ConfigError("this dataset layout has no test split; use --split dev")
        reports = [task.evaluate_data(data, args.split)]
    if args.json:
        print(json.dumps(reports if len(reports) > 1 else reports[0], indent=2))
        return 0
    print(f"{task.name} on {reports[0]['data']} ({args.split} split)")
    for report in reports:
        print(task.format_report(report))
    return 0


def cmd_translate(args: argparse.Namespace) -> int:
    task = _load(args)
    if task.config.family != "translator":
        raise ConfigError(f"{task.name!r} is a {task.config.family!r} model; translate needs a "
                          "translator (see `rnnzoo list 'translator_*'`)")
    texts = list(args.texts)
    if not texts:
        raise ConfigError('nothing to translate: pass sentences, e.g. "¿Dónde está la estación?"')
    kwargs = {k: v for k, v in (("k", args.k), ("p", args.p), ("temperature", args.temperature))
              if v is not None}
    want_attention = args.attention_plot is not None
    out = task.translate(texts, beam=args.beam, sampler=args.sampler, seed=args.seed,
                         return_attention=want_attention, **kwargs)
    translations, attentions = out if want_attention else (out, None)
    for src, hyp in zip(texts, translations):
        print(hyp if len(texts) == 1 else f"{src}\t{hyp}")
    if want_attention:
        from rnnzoo.families.translator import plot_attention

        if attentions[0] is None:
            raise ConfigError(f"{task.name!r} has no attention to plot (attention: none)")
        plot_attention(task.preprocessor, texts[0], translations[0], attentions[0],
                       args.attention_plot)
        print(f"attention heatmap for the first sentence: {args.attention_plot}",
              file=sys.stderr)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    task = _load(args)
    if not hasattr(task, "predict"):
        raise ConfigError(f"{task.name!r} is a {task.config.family!r} model; predict is for "
                          f"classifiers (use `rnnzoo translate {task.name} ...`)")
    texts = list(args.texts)
    if args.file:
        texts += [ln.strip() for ln in Path(args.file).read_text().splitlines() if ln.strip()]
    if not texts:
        raise ConfigError('nothing to predict: pass texts ("a great film") or --file FILE')
    pred = task.predict(texts)
    names = task.preprocessor.label_names
    for text, label, probs in zip(texts, pred.labels, pred.probs):
        if args.json:
            print(json.dumps({"text": text, "label": label,
                              "probs": {n: round(float(p), 6) for n, p in zip(names, probs)}}))
        else:
            print(f"{label:<10} {float(probs.max()):.3f}  {text}")
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnzoo",
        description="A model zoo of recurrent networks: list, train, evaluate, predict, translate, "
        "export.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="list zoo models", description="List zoo models.")
    p.add_argument("pattern", nargs="*", help="glob(s), e.g. 'sentiment_*'")
    p.add_argument("--task", help="only this task, e.g. text-classification")
    p.add_argument("--pretrained", action="store_true", help="list pretrained presets")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="show a model's config", description="Show a model's config.")
    p.add_argument("name")
    p.set_defaults(func=cmd_info)

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

    for name, func, helptext in (
        ("evaluate", cmd_evaluate, "accuracy, macro-F1 and confusion matrix on a dataset"),
        ("predict", cmd_predict, "labels and probabilities for texts"),
    ):
        p = sub.add_parser(name, help=helptext, description=helptext[0].upper() + helptext[1:])
        _add_trained_model_args(p)
        p.add_argument("--json", action="store_true", help="machine-readable output")
        if name == "evaluate":
            p.add_argument("--data", required=True)
            p.add_argument("--split", choices=["dev", "test", "train"], default="dev",
                           help="translators: the grouped test split is 'test'")
            p.add_argument("--beam", type=int, default=5,
                           help="translators: beam width for the beam-search score (default 5)")
        else:
            p.add_argument("texts", nargs="*")
            p.add_argument("--file", help="a text file, one input per line")
        p.set_defaults(func=func)
    p = sub.add_parser(
        "translate", help="translate sentences with a trained translator",
        description="Translate sentences (greedy by default; --beam K for beam search, or "
        "--sampler top_k/top_p/temperature).",
    )
    _add_trained_model_args(p)
    p.add_argument("texts", nargs="*")
    p.add_argument("--beam", type=int, help="beam width (beam search)")
    p.add_argument("--sampler", choices=["greedy", "temperature", "top_k", "top_p"])
    p.add_argument("--k", type=int, help="top_k: candidates kept")
    p.add_argument("--p", type=float, help="top_p: nucleus mass")
    p.add_argument("--temperature", type=float)
    p.add_argument("--seed", type=int, help="seed for the stochastic samplers")
    p.add_argument("--attention-plot", dest="attention_plot", metavar="PNG",
                   help="save the attention heatmap of the first sentence")
    p.set_defaults(func=cmd_translate)

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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # argparse cannot place a '*' positional after options ("NAME --run DIR text ..."), so
    # predict collects the texts that follow its options here.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.command not in ("predict", "translate") or any(e.startswith("-")
                                                                for e in extra):
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
