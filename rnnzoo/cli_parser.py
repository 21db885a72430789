"""The ``rnnzoo`` command line's arguments: ``_ABOUT`` holds every command's help texts, one
function per command group declares its subcommands and options. What each command does is in
``rnnzoo.cli`` (its ``cmd_*`` functions, passed in as ``on``), so this module imports nothing of
the zoo but the task types' CLI adapters and the shared ``--progress`` option.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any

from rnnzoo.progress import add_progress_argument

Handlers = Mapping[str, Callable[[argparse.Namespace], int]]

_ABOUT: dict[str, tuple[str, str]] = {  # command: (summary in the list, description)
    "list": ("list zoo models",
             "List zoo models."),
    "info": ("show a model's config",
             "Show a model's config."),
    "card": ("print a preset's model card",
             "Print a preset's model card (intended use, data and licence, metrics with the "
             "command that re-measures them, limitations, the ONNX bundles' inputs, outputs "
             "and state, sizes, the full training command), rendered from its verified "
             "metadata; no TensorFlow needed."),
    "train": ("train or fine-tune a model",
              "Train a zoo model with the shared loop. Running the same command again on an "
              "unfinished --out directory resumes it."),
    "launch": ("run a command as N local MultiWorkerMirroredStrategy workers",
               "Start N workers of one TF_CONFIG cluster on 127.0.0.1 (local testing; on a real "
               "cluster each host runs the same command with its own TF_CONFIG), e.g. rnnzoo "
               "launch --workers 2 -- rnnzoo train sentiment_gru --data D --out RUN --strategy "
               "multiworker. Stops all workers when one fails, on Ctrl-C or timeout."),
    "finetune": ("fine-tune a preset on your data into a new preset",
                 "Fine-tune a preset with the shared loop; labels that differ from the preset's "
                 "get a new head. Writes a new preset (weights, metadata with dev metrics "
                 "measured on what is saved, model card) to --out."),
    "save-preset": ("save a trained run as a preset with measured metrics",
                    "Write a run directory as a preset: weights (float16 by default), metadata "
                    "with the metrics measured on the saved weights, a model card and sha256 "
                    "checksums."),
    "preset-bundle": ("add validated ONNX bundles to an existing preset",
                      "Export a preset's stored weights to ONNX (fp32, and int8 when it passes "
                      "the task's acceptance rule on --data), validate them against Keras, and "
                      "write the preset with onnx/ added (metadata, model card and checksums "
                      "updated) to --out; --out may be the preset's own directory with "
                      "--overwrite."),
    "evaluate": ("a trained model's metrics on a dataset",
                 "Score a trained model on a split of a dataset; --split all scores a whole "
                 "held-out file."),
    "export": ("export a trained model to an ONNX bundle",
               "Export a trained model to an ONNX bundle with fused recurrent operators, "
               "validated against Keras (onnx.checker, no Loop, parity at several shapes)."),
    "diagnose": ("gradient flow through time of a trained model",
                 "Temporal gradient profile ||dL/dh_t||, effective memory length, gate "
                 "saturation (LSTM/GRU), spectral radius and singular values of every recurrent "
                 "matrix, on a probe batch of --data; JSON and PNG plots with --out."),
    "serve": ("serve presets/bundles over HTTP (v1 predict, v2 infer, demo page)",
              "Serve presets or ONNX bundles with onnxruntime (no TensorFlow): POST "
              '/v1/models/NAME:predict with {"instances": [...]}, the Open Inference Protocol v2 '
              "at /v2/..., a demo page at /, /openapi.json. Needs the serve extra: pip install "
              '"rnnzoo[serve]".'),
    "web": ("write presets as a static site that runs them in the browser",
            "Write a static site (no server code) that runs presets in the browser with "
            "onnxruntime-web: their verified ONNX bundles (int8 where shipped), onnxruntime-web "
            "(from npm at build time: the site works offline), rnnzoo.mjs (each task's pre- and "
            "post-processing in JavaScript, to embed in your own page) and index.html "
            "(?model=NAME&input=TEXT runs once on load). Serve DIR with any static file "
            "server, e.g. python -m http.server -d DIR."),
}


def add_trained_model_args(p: argparse.ArgumentParser) -> None:
    """NAME plus where its trained weights are: a preset (NAME itself: entry.tag, a preset
    directory, archive or URL), or an entry with a run directory or a weights file."""
    p.add_argument("name", help="a preset (e.g. sentiment_bilstm.sst2, a directory, an archive "
                   "or a URL), or an entry name with --run/--weights")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--run", metavar="DIR", help="run or preset directory")
    g.add_argument("--weights", metavar="FILE", help="a weights file inside a run directory")


def _command(sub: Any, on: Handlers, name: str, handler: str | None = None,
             about: tuple[str, str] | None = None, **kwargs: Any) -> argparse.ArgumentParser:
    """Declare subcommand ``name``, run by ``on[handler or name]``, with its ``_ABOUT`` texts
    (or ``about``): every command is made the same way, in one place."""
    summary, description = about or _ABOUT[name]
    p = sub.add_parser(name, help=summary, description=description, **kwargs)
    p.set_defaults(func=on[handler or name])
    return p


def _add_schedule_args(p: argparse.ArgumentParser) -> None:
    """The training-schedule overrides ``train`` and ``finetune`` share."""
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", dest="batch_size", type=int)
    p.add_argument("--learning-rate", dest="learning_rate", type=float)


def _add_catalogue_commands(sub: Any, on: Handlers) -> None:
    p = _command(sub, on, "list")
    p.add_argument("pattern", nargs="*", help="glob(s), e.g. 'sentiment_*'")
    p.add_argument("--task", help="only this task, e.g. text-classification")
    p.add_argument("--pretrained", action="store_true", help="list pretrained presets")

    p = _command(sub, on, "info")
    p.add_argument("name")

    p = _command(sub, on, "card")
    p.add_argument("preset", help="preset name, directory, archive or URL")


def _add_training_commands(sub: Any, on: Handlers) -> None:
    p = _command(sub, on, "train")
    p.add_argument("name")
    p.add_argument("--data", required=True, help="dataset folder or file (see README)")
    p.add_argument("--out", help="run directory (default: runs/NAME-TIMESTAMP)")
    _add_schedule_args(p)
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

    p = _command(sub, on, "launch")
    p.add_argument("--workers", type=int, default=2, help="number of workers (default 2)")
    p.add_argument("--port-base", dest="port_base", type=int,
                   help="first port (default: free ports)")
    p.add_argument("--log-dir", dest="log_dir", metavar="DIR",
                   help="worker-<i>.log files go here (default: a new temporary directory)")
    p.add_argument("--timeout", type=float, metavar="S", help="stop all workers after S seconds")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")


def _add_preset_commands(sub: Any, on: Handlers) -> None:
    p = _command(sub, on, "finetune")
    p.add_argument("preset", help="preset name, directory, archive or URL")
    p.add_argument("--data", required=True, help="dataset folder or file")
    p.add_argument("--out", required=True, help="the new preset directory")
    p.add_argument("--tag", default="finetuned", help="the new preset is ENTRY.TAG")
    p.add_argument("--freeze-backbone", dest="freeze_backbone", action="store_true",
                   help="train only the new head")
    p.add_argument("--run-dir", dest="run_dir", help="run directory (default: OUT-run)")
    p.add_argument("--data-license", dest="data_license", default="unknown")
    _add_schedule_args(p)
    p.add_argument("--set", action="append", metavar="KEY=VALUE")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--no-onnx", dest="no_onnx", action="store_true",
                   help="do not build the preset's ONNX bundles")

    p = _command(sub, on, "save-preset")
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

    p = _command(sub, on, "preset-bundle")
    p.add_argument("preset", help="preset name, directory, archive or URL")
    p.add_argument("--out", required=True, help="the preset directory to write")
    p.add_argument("--data", help="data to compare int8 against fp32 on (the task's metric)")
    p.add_argument("--no-int8", dest="no_int8", action="store_true",
                   help="build only the fp32 bundle")
    p.add_argument("--overwrite", action="store_true")


def _add_task_commands(sub: Any, on: Handlers) -> None:
    """``evaluate`` (with every task type's options) and one command per task-type verb."""
    from rnnzoo.apps import app_cli, known_task_types

    clis = {t: app_cli(t) for t in known_task_types()}
    p = _command(sub, on, "evaluate")
    add_trained_model_args(p)
    p.add_argument("--data", required=True)
    p.add_argument("--split", choices=["dev", "test", "train", "all", "last"], default="dev",
                   help="which part of the data (translators: the grouped test split is "
                   "'test'; 'all': the whole file; recommenders: 'last' scores each user's "
                   "last interaction given the rest)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--limit", type=int, metavar="N",
                   help="score only the first N examples of the split (quick trials)")
    p.add_argument("--backend", choices=["onnx", "keras"],
                   help="keras (default with the train extra) or the preset's ONNX bundle "
                   "(default without it)")
    add_progress_argument(p)
    for cli in clis.values():
        cli.add_evaluate_arguments(p)

    verbs: dict[str, list] = {}
    for task, cli in clis.items():
        verbs.setdefault(cli.VERB, []).append((task, cli))
    for verb, owners in verbs.items():
        tasks = ", ".join(task for task, _ in owners)
        # Task types sharing a verb (music and text generation) may declare the same option.
        about = (f"run a trained {tasks} model",
                 f"{verb.capitalize()} with a trained {tasks} model.")
        p = _command(sub, on, verb, handler="verb", about=about, conflict_handler="resolve")
        add_trained_model_args(p)
        for _, cli in owners:
            cli.add_verb_arguments(p)
        p.add_argument("--backend", choices=["onnx", "keras"],
                       help="onnx: the preset's validated ONNX bundle through onnxruntime, no "
                       "TensorFlow (default for presets that carry one); keras: the Keras model "
                       "(train extra)")
        p.add_argument("--int8", action="store_true",
                       help="run the preset's int8 ONNX bundle (faster, validated against fp32)")


def _add_export_command(sub: Any, on: Handlers) -> None:
    p = _command(sub, on, "export")
    add_trained_model_args(p)
    p.add_argument("--out", required=True, help="bundle directory to write")
    p.add_argument("--quantize", choices=["int8"],
                   help="also write OUT-int8 (dynamic int8; a video predictor's convolutions "
                        "are static int8, calibrated on --data)")
    p.add_argument("--data", help="labelled data to compare int8 accuracy against fp32 (and "
                                  "to calibrate static int8)")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--strict", action="store_true",
                   help="fail if a recurrent layer cannot be fused (instead of a Loop + warning)")
    p.add_argument("--no-validate", dest="no_validate", action="store_true",
                   help="skip parity checks (not recommended)")
    p.add_argument("--overwrite", action="store_true")
    add_progress_argument(p)


def _add_diagnose_command(sub: Any, on: Handlers) -> None:
    p = _command(sub, on, "diagnose")
    add_trained_model_args(p)
    p.add_argument("--data", required=True, help="dataset the probe batch is drawn from")
    p.add_argument("--split", choices=["dev", "train"], default="dev")
    p.add_argument("--probe-size", dest="probe_size", type=int, default=32,
                   help="examples in the probe batch (default 32)")
    p.add_argument("--out", metavar="DIR", help="write report.json and the plots here")


def _add_serve_command(sub: Any, on: Handlers) -> None:
    p = _command(sub, on, "serve")
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
    # Limits and safety (issue #31): what one request may cost, and what a web page may do.
    p.add_argument("--limit", dest="serve_limits", action="append", default=[],
                   metavar="NAME=VALUE",
                   help="raise or lower a limit of rnnzoo.limits for this server, e.g. "
                   "--limit max_decode_length=4096 (repeatable; the README's Safety section "
                   "lists them); over a limit a request gets 413 or 422 naming it")
    p.add_argument("--request-timeout", dest="request_timeout", type=float, metavar="S",
                   help="seconds a request may run (queued or working) before it is stopped "
                   "and answered 504 (default: the limit request_timeout_s, 60)")
    p.add_argument("--max-instances", dest="max_instances", type=int, default=256,
                   help="instances per request (default 256; more: 413)")
    p.add_argument("--body-timeout", dest="body_timeout", type=float, default=10.0,
                   metavar="S", help="seconds a client has to send its request body "
                   "(default 10; slower: 408)")
    p.add_argument("--header-timeout", dest="header_timeout", type=float, default=10.0,
                   metavar="S", help="seconds a client has to send its request headers "
                   "(default 10; slower: 408 and the connection is closed)")
    p.add_argument("--graceful-timeout", dest="graceful_timeout", type=float, default=30.0,
                   metavar="S", help="on SIGTERM/Ctrl-C, seconds the requests in flight may "
                   "take to finish before their work is stopped (default 30)")
    p.add_argument("--allowed-hosts", dest="allowed_hosts", action="append", default=[],
                   metavar="HOST[,HOST...]",
                   help="more names the Host header may carry besides loopback names, IP "
                   "addresses and --host (a proxy's or LAN name; .example.com: it and its "
                   "subdomains; *: any; comma-separated or repeated). Others get 421 "
                   "(DNS-rebinding protection)")
    p.add_argument("--cors-origin", dest="cors_origins", action="append", default=[],
                   metavar="ORIGIN",
                   help="let pages of ORIGIN (e.g. http://localhost:3000) call the API "
                   "(repeatable; * for any). By default no other origin may: 403")


def _add_web_command(sub: Any, on: Handlers) -> None:
    p = _command(sub, on, "web")
    p.add_argument("presets", nargs="+", metavar="PRESET",
                   help="presets (name, directory, archive or URL) of a task the page runs: "
                   "text-classification, text-generation, token-classification, translation, "
                   "forecasting, music-generation, speech-recognition")
    p.add_argument("--out", required=True, metavar="DIR", help="the site folder to write")
    p.add_argument("--precision", choices=["auto", "fp32", "int8"], default="auto",
                   help="which bundle of each preset (default auto: int8 where shipped, else "
                   "fp32)")
    p.add_argument("--overwrite", action="store_true", help="replace a site already in DIR")
    p.add_argument("--onnxruntime-web", dest="onnxruntime_web", metavar="PACKAGE_DIR",
                   help="an installed onnxruntime-web package folder (default: the one "
                   "`npm ci` installs in rnnzoo/web/js)")


def build_parser(on: Handlers) -> argparse.ArgumentParser:
    """The ``rnnzoo`` parser; ``on`` maps each command (``"verb"``: every task-type verb) to the
    function ``main`` runs for it (``rnnzoo.cli``'s ``cmd_*``)."""
    parser = argparse.ArgumentParser(
        prog="rnnzoo",
        description="A model zoo of recurrent networks: list models, train, evaluate, run and "
        "export them.",
    )
    parser.add_argument("--limit", dest="global_limits", action="append", default=[],
                        metavar="NAME=N",
                        help="raise or lower one of rnnzoo.limits for this command, e.g. "
                        "rnnzoo --limit max_midi_seconds=7200 generate ... (repeatable; the "
                        "README's Safety section lists them)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_catalogue_commands(sub, on)
    _add_training_commands(sub, on)
    _add_task_commands(sub, on)
    _add_preset_commands(sub, on)
    _add_export_command(sub, on)
    _add_diagnose_command(sub, on)
    _add_serve_command(sub, on)
    _add_web_command(sub, on)
    for command in sub.choices.values():  # every command that reads a trained model
        command.add_argument("--verbose", action="store_true",
                             help="show TensorFlow/Keras log lines and warnings")
        if {a.dest for a in command._actions} & {"run", "weights", "init_from"}:
            command.add_argument(
                "--no-verify", dest="no_verify", action="store_true",
                help="load run/preset directories without checking their checksums.json "
                "(only for files you trust)")
    return parser
