"""``rnnzoo serve``: presets and ONNX bundles behind an HTTP API, with request batching and a
demo page (the ``serve`` extra: Starlette and uvicorn). TensorFlow is never imported: models run
through the TF-free runtime (``rnnzoo.export.runtime``), as in ``from_preset(backend="onnx")``.

Two API levels, as model servers share them:

* task level, the TF Serving / KServe v1 shape: ``POST /v1/models/{name}:predict`` with
  ``{"instances": [...], <options>}`` of raw inputs (texts, series, generation requests) returns
  ``{"predictions": [...]}`` of plain data; ``GET /v1/models/{name}`` its status;
  ``GET /v1/models`` the served models with their options and demo input (an rnnzoo addition);
* tensor level, the Open Inference Protocol v2: ``/v2/health/live``, ``/v2/health/ready``,
  ``/v2`` (server metadata), ``/v2/models/{name}`` (named inputs and outputs of the bundle's
  graphs), ``/v2/models/{name}/ready``, ``POST /v2/models/{name}/infer`` (``parameters.graph``
  picks a graph of a multi-graph bundle; the default is ``model``, else the first);
* ``/openapi.json``; the demo page at ``/`` and ``/demo/{name}``.

The server is generic over task types. What a task type serves is declared on its runtime class
(``RUNTIME_CLASS`` of ``rnnzoo/apps/<task>/inference.py``), every hook optional:

* ``serve_predict(self, instances: list, options: dict) -> list``: one JSON-able prediction per
  instance. Default (:func:`default_predict`): the task's user call (its ``cli.VERB``) on the
  list of instances with the options as keyword arguments, its result split per instance
  (a list or array row by row; a NamedTuple of per-instance columns as one mapping per row).
* ``serve_options: dict[str, Any]``: the options accepted beside the instances, with their
  defaults. Default: the keyword parameters of the user call (``batch_size`` excepted; a
  ``**kwargs`` call accepts any name and checks them itself).
* ``serve_demo: dict``: the demo page's input (``{"input": "text" | "json", "example": ...,
  "options": {...}}``). Default: a text box when the task's ``example_inputs`` are strings,
  else a JSON box.

Bad input raises the runtime's typed errors (``DataError``, ``ConfigError``): the server answers
400 with ``{"error": message, "code": ...}``. Every other client mistake (malformed JSON, an
unknown model, a body over the limit, a client that sends too slowly, a full queue) has its own
4xx/503 and JSON body; a 500 means a bug.

Batching: concurrent v1 requests for a model with the same options are merged into one user
call (at most ``max_batch_size`` instances). Runtime calls run in the model's ``threads``
worker threads, which take requests from a queue: a worker takes everything waiting as soon as
its previous call returns, so batches grow with load and a lone request never waits (it waits
at most ``max_delay_ms`` for more requests, 0 by default). Without batching the same workers
take one request per call. A request's predictions are the ones it would get alone: the
runtimes pad and mask per row (``benchmarks/bench_serve.py`` measures the gain).

The two hot routes (v1 predict, v2 infer) are plain ASGI functions reached before Starlette's
routing, with orjson when installed: on a small machine what each request costs in Python
bounds requests/s as much as the model does.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import json
import logging
import math
import os
import queue
import re
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo.errors import ConfigError, RnnzooError, short_repr
from rnnzoo.extras import MissingDependencyError, has_module

log = logging.getLogger("rnnzoo.serve")

try:  # the serve extra brings orjson: 3-10x faster JSON than the standard library
    import orjson as _orjson
except ImportError:  # pragma: no cover - the standard library is the fallback
    _orjson = None

DEMO_PAGE = Path(__file__).with_name("serve_demo.html")
SERVE_EXTRA = 'pip install "rnnzoo[serve]"'
MODEL_VERSION = "1"


def require_serve_extra(module: str) -> Any:
    """Import ``module`` (starlette, uvicorn) or say which install brings it."""
    import importlib

    if not has_module(module):
        raise MissingDependencyError(f"rnnzoo serve needs {module}, which is not installed: "
                                     f"{SERVE_EXTRA}")
    return importlib.import_module(module)


# -- configuration -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ServeConfig:
    """What ``rnnzoo serve`` options set; the defaults suit a small CPU machine."""

    batching: bool = True
    max_batch_size: int = 64  # instances per runtime call
    # How long a batch waits for more requests once one arrived. 0: none; a batch is collected
    # only when one of the model's threads is free, so under load requests pile up while the
    # previous batch runs (no added latency at low load: 2 ms cost 1 client 3x its req/s).
    max_delay_ms: float = 0.0
    threads: int = 1  # runtime calls in flight per model (onnxruntime releases the GIL)
    max_queue: int = 1024  # instances waiting per model before 503
    max_body_bytes: int = 1 << 20
    max_instances: int = 256  # per request
    body_timeout_s: float = 10.0  # a client must send its whole body within this
    precision: str = "fp32"  # a preset's bundle: fp32 or int8
    # onnxruntime threads per runtime call: 1, N, or "auto" (one thread for calls of fewer
    # than 8 rows, every granted core from 8: merged batches use the second core, single
    # requests do not pay for waking it; rnnzoo.export.bundle.AUTO_MIN_BATCH).
    intra_op_threads: int | str = 1

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "threads", "max_queue", "max_body_bytes",
                     "max_instances"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"serve: {name} must be an integer >= 1, found "
                                  f"{short_repr(value)}")
        for name in ("max_delay_ms", "body_timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0:
                raise ConfigError(f"serve: {name} must be a number >= 0, found "
                                  f"{short_repr(value)}")
        threads = self.intra_op_threads
        if threads != "auto" and (isinstance(threads, bool) or not isinstance(threads, int)
                                  or threads < 1):
            raise ConfigError(f"serve: intra_op_threads must be an integer >= 1 or 'auto', "
                              f"found {short_repr(threads)}")
        if self.precision not in ("fp32", "int8"):
            raise ConfigError(f"serve: precision must be 'fp32' or 'int8', found "
                              f"{short_repr(self.precision)}")


class ServeError(Exception):
    """A request the server answers with a JSON error: HTTP status, a stable code, a message
    saying what to change."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


# -- plain data --------------------------------------------------------------------------------


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON of plain data (orjson when installed, else ``json``); as Starlette's
    ``JSONResponse`` writes it, non-finite floats excepted (``plain`` makes them ``null``)."""
    if _orjson is not None:
        try:
            return _orjson.dumps(value, option=_orjson.OPT_SERIALIZE_NUMPY)
        except TypeError:  # e.g. an int beyond 64 bits: the standard library writes it
            pass
    return json.dumps(value, ensure_ascii=False, allow_nan=False,
                      separators=(",", ":")).encode("utf-8")


def loads(raw: bytes) -> Any:
    """The JSON document of a request body, or a 400 ``invalid_json`` naming what is wrong."""
    if not raw.strip():
        raise ServeError(400, "invalid_json", "the request body is empty; send a JSON "
                         "object")
    try:
        if _orjson is not None:
            return _orjson.loads(raw)
        return json.loads(raw)
    except UnicodeDecodeError:
        raise ServeError(400, "invalid_json", "the body is not UTF-8 JSON") from None
    except json.JSONDecodeError as exc:  # orjson's error is a subclass
        if "UTF-8" in exc.msg or "surrogate" in exc.msg:
            raise ServeError(400, "invalid_json", "the body is not UTF-8 JSON") from None
        raise ServeError(400, "invalid_json", f"malformed JSON at line {exc.lineno} column "
                         f"{exc.colno}: {exc.msg}") from None


def plain(value: Any) -> Any:
    """JSON-able data from what a user call returns: NamedTuples become mappings, numpy arrays
    lists, numpy scalars numbers, non-finite floats ``None`` (JSON has no NaN)."""
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            return plain(value.tolist())
        return value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def split_predictions(result: Any, n: int) -> list:
    """One prediction per instance from a batched user call's result: a list/array of ``n``
    rows, a NamedTuple whose fields each hold ``n`` rows, or a tuple of such lists (e.g.
    ``(translations, attentions)``)."""
    if isinstance(result, tuple) and hasattr(result, "_fields"):
        cols = {f: getattr(result, f) for f in result._fields}
        if all(_rows(v) == n for v in cols.values()):
            return [{f: plain(v[i]) for f, v in cols.items()} for i in range(n)]
    elif isinstance(result, tuple) and result and all(_rows(v) == n for v in result):
        return [[plain(v[i]) for v in result] for i in range(n)]
    if _rows(result) == n:
        return [plain(r) for r in result]
    raise TypeError(f"the user call returned {type(result).__name__}, which does not split "
                    f"into {n} predictions; give the runtime class a serve_predict hook")


def _rows(value: Any) -> int | None:
    if isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim):
        return len(value)
    return None


# -- the task-type hooks and their defaults ----------------------------------------------------


def task_verb(runtime: Any) -> str:
    """The user call of a runtime's task type (``predict``, ``translate``, ...)."""
    from rnnzoo.apps import verb_of

    return verb_of(runtime.manifest["task"])


def options_of(runtime: Any) -> dict[str, Any] | None:
    """The options a model accepts beside the instances, with defaults; ``None``: any (the
    user call takes ``**kwargs`` and checks them)."""
    declared = getattr(runtime, "serve_options", None)
    if isinstance(declared, Mapping):
        return dict(declared)
    if getattr(runtime, "serve_predict", None) is not None:
        return None
    fn = getattr(runtime, task_verb(runtime))
    out: dict[str, Any] = {}
    params = list(inspect.signature(fn).parameters.values())[1:]
    for p in params:
        if p.kind is p.VAR_KEYWORD:
            return None
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "batch_size":
            out[p.name] = plain(p.default) if p.default is not p.empty else None
    return out


def demo_of(runtime: Any) -> dict[str, Any]:
    """The demo page's input for a model (``serve_demo`` or a default from the task's
    example inputs)."""
    declared = getattr(runtime, "serve_demo", None)
    if isinstance(declared, Mapping):
        return plain(dict(declared))
    from rnnzoo.apps import app_cli

    try:
        examples = list(app_cli(runtime.manifest["task"]).example_inputs())
    except Exception:  # noqa: BLE001 - a demo default is best effort
        examples = []
    strings = [e for e in examples if isinstance(e, str) and e.strip()]
    if strings and len(strings) == len([e for e in examples if isinstance(e, str)]):
        return {"input": "text", "example": strings[0]}
    return {"input": "json", "example": None}


def default_predict(runtime: Any, instances: list, options: Mapping[str, Any]) -> list:
    """The user call on the instances, split per instance (:func:`split_predictions`)."""
    fn = getattr(runtime, task_verb(runtime))
    return split_predictions(fn(list(instances), **dict(options)), len(instances))


def run_predict(runtime: Any, instances: list, options: Mapping[str, Any]) -> list:
    """Predictions through the runtime's ``serve_predict`` hook or the default."""
    hook = getattr(runtime, "serve_predict", None)
    out = hook(list(instances), dict(options)) if hook is not None else \
        default_predict(runtime, instances, options)
    if not isinstance(out, list) or len(out) != len(instances):
        raise TypeError(f"serve_predict returned {short_repr(type(out).__name__)} of "
                        f"{_rows(out)} predictions for {len(instances)} instances")
    return out


def client_error(exc: BaseException) -> ServeError | None:
    """A typed rnnzoo error raised by a user call on bad input, as a 400 (None: not the
    client's fault)."""
    from rnnzoo.export.bundle import BundleError

    if isinstance(exc, RnnzooError) and not isinstance(exc, BundleError):
        return ServeError(400, "invalid_input", str(exc))
    return None


# -- models and batching -----------------------------------------------------------------------


class _Pending:
    """A request waiting for a runtime call: its instances and options, or (``job``) a
    function to run alone, such as a v2 infer; the event loop's future that gets the result."""

    __slots__ = ("instances", "options", "key", "future", "loop", "job")

    def __init__(self, instances: list, options: dict, future: asyncio.Future,
                 job: Any = None) -> None:
        self.instances, self.options, self.future, self.job = instances, options, future, job
        self.key = _options_key(options)
        self.loop = future.get_loop()


def _options_key(options: dict) -> str:
    """Requests are merged only when their options are equal."""
    return json.dumps(options, sort_keys=True, default=str) if options else ""


_STOP = object()  # tells a worker thread to end


class ServedModel:
    """One model: its runtime, metadata, and request queue served by worker threads.

    Every runtime call runs in one of ``config.threads`` worker threads, which take requests
    from a thread-safe queue: with batching, a worker takes everything waiting (up to
    ``max_batch_size`` instances, waiting at most ``max_delay_ms`` for more) as soon as its
    previous call returns, so requests that arrive while the model runs form the next batch
    without a round trip through the event loop; without batching, one request per call. Both
    modes run the same code. Results go back to the event loop with one wake-up per call."""

    def __init__(self, name: str, runtime: Any, source: str, config: ServeConfig) -> None:
        self.name = name
        self.runtime = runtime
        self.source = source
        self.config = config
        self.task = runtime.manifest["task"]
        self.verb = task_verb(runtime)
        self.options = options_of(runtime)
        self.demo = demo_of(runtime)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._start_lock = threading.Lock()
        self._queued = 0  # instances waiting or running (counted on the event loop)
        self._in_flight = 0  # requests waiting or running
        self.stats = {"requests": 0, "instances": 0, "runtime_calls": 0, "largest_batch": 0}

    # -- request checks ----------------------------------------------------------------------
    def check_options(self, options: dict) -> dict:
        if self.options is not None:
            unknown = sorted(set(options) - set(self.options))
            if unknown:
                allowed = ", ".join(sorted(self.options)) or "none"
                raise ServeError(400, "unknown_option",
                                 f"{self.name}: unknown option(s) {', '.join(unknown)} beside "
                                 f"'instances'; this model accepts: {allowed}")
        return options

    def info(self) -> dict:
        meta = getattr(self.runtime, "preset_metadata", None) or {}
        return {"name": self.name, "task": self.task, "verb": self.verb,
                "family": self.runtime.family, "entry": self.runtime.entry,
                "precision": self.runtime.manifest.get("precision"), "source": self.source,
                "description": meta.get("description") if isinstance(meta, Mapping) else None,
                "options": self.options, "demo": self.demo,
                "graphs": list(self.runtime.sessions)}

    # -- running -----------------------------------------------------------------------------
    def call(self, groups: list[list], options: dict) -> list:
        """Run one user call over several requests' instances (in a worker thread); the
        predictions of each request, or the exception that request alone gets."""
        flat = [x for g in groups for x in g] if len(groups) > 1 else groups[0]
        try:
            preds = run_predict(self.runtime, flat, options)
        except Exception as exc:  # noqa: BLE001 - attributed per request below
            if len(groups) == 1:
                return [exc]
            # One bad request must not fail the others merged with it: bisect until it runs
            # alone (a few extra calls, not one per request).
            half = len(groups) // 2
            return self.call(groups[:half], options) + self.call(groups[half:], options)
        self.stats["runtime_calls"] += 1
        self.stats["largest_batch"] = max(self.stats["largest_batch"], len(flat))
        if len(groups) == 1:
            return [preds]
        out, start = [], 0
        for g in groups:
            out.append(preds[start:start + len(g)])
            start += len(g)
        return out

    async def predict(self, instances: list, options: dict) -> list:
        """Predictions for one request, batched with concurrent ones when batching is on."""
        if self._queued + len(instances) > self.config.max_queue:
            raise ServeError(503, "overloaded",
                             f"{self.name}: {self._queued} instances are already waiting "
                             f"(limit {self.config.max_queue}); retry later")
        self.stats["requests"] += 1
        self.stats["instances"] += len(instances)
        self._queued += len(instances)
        try:
            result = await self._submit(_Pending(
                instances, options, asyncio.get_running_loop().create_future()))
        finally:
            self._queued -= len(instances)
        if isinstance(result, BaseException):
            error = client_error(result)
            if error is not None:
                raise error
            raise result
        return result

    async def run_job(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` in a worker thread, alone (a v2 infer): the model's threads bound all
        of its runtime calls, batched or not."""
        result = await self._submit(_Pending([], {}, asyncio.get_running_loop().create_future(),
                                             job=(fn, args)))
        if isinstance(result, BaseException):
            raise result
        return result

    async def _submit(self, item: _Pending) -> Any:
        if len(self._workers) < self.config.threads:
            self._start_workers()
        self._in_flight += 1
        try:
            self._queue.put(item)
            return await item.future
        finally:
            self._in_flight -= 1

    def _start_workers(self) -> None:
        with self._start_lock:
            self._workers = [t for t in self._workers if t.is_alive()]
            while len(self._workers) < self.config.threads:
                t = threading.Thread(target=self._work, daemon=True,
                                     name=f"serve-{self.name}-{len(self._workers)}")
                t.start()
                self._workers.append(t)

    def _work(self) -> None:
        """A worker thread: take a batch, run it, hand the results to the event loop(s)."""
        limit = self.config.max_batch_size if self.config.batching else 1
        delay = self.config.max_delay_ms / 1000.0 if self.config.batching else 0.0
        get, carry = self._queue.get, None
        while True:
            first = carry if carry is not None else get()
            carry = None
            if first is _STOP:
                return
            if first.job is not None:
                self._run_job(first)
                continue
            batch, size = [first], len(first.instances)
            deadline = time.monotonic() + delay
            while size < limit:
                try:
                    if delay:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        item = get(timeout=remaining)
                    else:
                        item = get(block=False)
                except queue.Empty:
                    break
                if item is _STOP or item.job is not None \
                        or size + len(item.instances) > limit:
                    carry = item  # the next call's first
                    break
                batch.append(item)
                size += len(item.instances)
            self._run_batch(batch)

    def _run_batch(self, batch: list[_Pending]) -> None:
        groups: dict[str, list[_Pending]] = {}
        for item in batch:
            groups.setdefault(item.key, []).append(item)
        for items in groups.values():
            try:
                results = self.call([i.instances for i in items], items[0].options)
            except BaseException as exc:  # noqa: BLE001 - handed to every waiter
                results = [exc] * len(items)
            _deliver(items, results)

    def _run_job(self, item: _Pending) -> None:
        fn, args = item.job
        try:
            result = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiter
            result = exc
        _deliver([item], [result])

    async def close(self) -> None:
        """Stop the worker threads once the requests in flight are answered."""
        deadline = time.monotonic() + 60
        while self._in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        workers, self._workers = self._workers, []
        for _ in workers:
            self._queue.put(_STOP)
        loop = asyncio.get_running_loop()
        for t in workers:
            await loop.run_in_executor(None, t.join)


def _deliver(items: list[_Pending], results: list) -> None:
    """Results to the requests' futures, one event-loop wake-up per loop (from a worker)."""
    by_loop: dict[Any, list] = {}
    for item, result in zip(items, results):
        by_loop.setdefault(item.loop, []).append((item.future, result))
    for loop, pairs in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a loop closed meanwhile: no one waits
            loop.call_soon_threadsafe(_set_results, pairs)


def _set_results(pairs: list) -> None:
    for future, result in pairs:
        if not future.done():  # a client gone (cancelled) needs nothing
            future.set_result(result)


# -- loading -----------------------------------------------------------------------------------


def load_model(spec: str, config: ServeConfig) -> tuple[str, Any, str]:
    """``(name, runtime, source)`` for ``[NAME=]PRESET_OR_BUNDLE``: a directory holding
    ``bundle.json`` is opened as a bundle (named by its entry), anything else as a preset
    (name, directory, archive or URL; its own validated ONNX bundle, named as the preset)."""
    head, sep, tail = spec.partition("=")
    if sep and re.fullmatch(r"[A-Za-z0-9_.-]+", head) and not Path(spec).exists():
        name, source = head, tail
    else:
        name, source = "", spec
    from rnnzoo.export import runtime as rt
    from rnnzoo.export.bundle import BUNDLE_FILE

    path = Path(source).expanduser()
    if path.is_dir() and (path / BUNDLE_FILE).is_file():
        model = rt.load(path, intra_op_threads=config.intra_op_threads)
        return name or model.entry, model, str(path)
    from rnnzoo.presets import _resolve, has_bundle, open_runtime, preset_info

    meta = preset_info(source)
    opened = source if has_bundle(meta) else str(bundled_preset(source, meta))
    directory, verified = _resolve(opened)  # every file's sha256 checked
    model = open_runtime(directory, verified, config.precision,
                         intra_op_threads=config.intra_op_threads)
    return name or str(meta.get("name") or source), model, source


def bundled_preset(source: str, meta: Mapping[str, Any]) -> Path:
    """A copy of a preset that carries no ONNX bundle, with its bundle exported and validated
    (``rnnzoo preset-bundle --no-int8``), cached under ``$RNNZOO_HOME/serve/`` by the preset's
    checksums: exported on first use, reused afterwards. The export runs in a child process
    (it needs the train extra), so the server itself never imports TensorFlow."""
    import hashlib
    import subprocess
    import sys

    from rnnzoo.extras import TRAIN_EXTRA, has_training
    from rnnzoo.presets import CHECKSUMS_FILE, PresetError, resolve_preset, rnnzoo_home

    directory = resolve_preset(source)
    digest = hashlib.sha256((directory / CHECKSUMS_FILE).read_bytes()).hexdigest()[:16]
    cached = rnnzoo_home() / "serve" / f"{meta.get('name', directory.name)}-{digest}"
    if (cached / CHECKSUMS_FILE).is_file():
        return cached
    if not has_training():
        raise PresetError(f"{source}: this preset carries no ONNX bundle; rnnzoo serve exports "
                          f"one on first use with the train extra ({TRAIN_EXTRA}), or add it "
                          f"elsewhere: rnnzoo preset-bundle {source} --out DIR")
    print(f"{source}: no ONNX bundle in the preset; exporting one to {cached} (once)",
          flush=True)
    cached.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "rnnzoo.cli", "preset-bundle", str(directory),
                           "--out", str(cached), "--no-int8"], capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise PresetError(f"{source}: exporting its ONNX bundle failed: {last}")
    return cached


def load_models(specs: Sequence[str], config: ServeConfig) -> dict[str, ServedModel]:
    """Every model, by unique name (names are URL path segments)."""
    if not specs:
        raise ConfigError("serve: give at least one preset or bundle, e.g. rnnzoo serve "
                          "sentiment_bilstm.sst2")
    models: dict[str, ServedModel] = {}
    for spec in specs:
        name, runtime, source = load_model(spec, config)
        if not name or "/" in name or ":" in name or name.strip() != name:
            raise ConfigError(f"serve: {spec}: model name {name!r} cannot be a URL segment "
                              "(no '/', ':' or surrounding spaces); name it NAME=SOURCE")
        if name in models:
            raise ConfigError(f"serve: two models are named {name!r}; name one NAME=SOURCE")
        models[name] = ServedModel(name, runtime, source, config)
    return models


# -- the v2 tensor protocol --------------------------------------------------------------------

_V2_TYPES = {"tensor(int32)": "INT32", "tensor(int64)": "INT64", "tensor(float)": "FP32",
             "tensor(double)": "FP64", "tensor(bool)": "BOOL", "tensor(uint8)": "UINT8",
             "tensor(float16)": "FP16", "tensor(int8)": "INT8"}
_NUMPY = {"INT32": np.int32, "INT64": np.int64, "FP32": np.float32, "FP64": np.float64,
          "BOOL": np.bool_, "UINT8": np.uint8, "FP16": np.float16, "INT8": np.int8}


def _v2_tensors(values: Sequence[Any]) -> list[dict]:
    return [{"name": v.name, "datatype": _V2_TYPES.get(v.type, v.type),
             "shape": [d if isinstance(d, int) else -1 for d in v.shape]} for v in values]


def main_graph(runtime: Any) -> str:
    return "model" if "model" in runtime.sessions else next(iter(runtime.sessions))


def v2_metadata(model: ServedModel) -> dict:
    rt = model.runtime
    graphs = {g: {"inputs": _v2_tensors(s.get_inputs()), "outputs": _v2_tensors(s.get_outputs())}
              for g, s in rt.sessions.items()}
    main = main_graph(rt)
    return {"name": model.name, "versions": [MODEL_VERSION], "platform": "onnxruntime_onnx",
            "inputs": graphs[main]["inputs"], "outputs": graphs[main]["outputs"],
            "parameters": {"task": model.task, "family": rt.family, "graph": main,
                           "graphs": graphs}}


def _time_limit(model: ServedModel, graph: str, name: str) -> int | None:
    """The most time steps an input may have: ``preprocessing.max_length`` for an input whose
    exported shape names a ``time`` axis (what the model was trained and validated on)."""
    pre = model.runtime.manifest.get("preprocessing", {})
    limit = pre.get("max_length")
    if not isinstance(limit, int) or isinstance(limit, bool):
        return None
    for spec in model.runtime.manifest["graphs"].get(graph, {}).get("inputs", []):
        if isinstance(spec, Mapping) and spec.get("name") == name \
                and "time" in [d for d in spec.get("shape", []) if isinstance(d, str)]:
            return limit
    return None


def v2_feeds(model: ServedModel, body: Any) -> tuple[str, dict[str, np.ndarray], list[str]]:
    """``(graph, feeds, requested outputs)`` of an infer request, or a 400 naming the tensor."""
    if not isinstance(body, dict):
        raise ServeError(400, "invalid_request", "expected a JSON object with 'inputs'")
    params = body.get("parameters") or {}
    if not isinstance(params, dict):
        raise ServeError(400, "invalid_request", "'parameters' must be an object")
    graph = params.get("graph", main_graph(model.runtime))
    if graph not in model.runtime.sessions:
        raise ServeError(400, "unknown_graph", f"{model.name}: no graph {short_repr(graph)}; "
                         f"graphs: {', '.join(model.runtime.sessions)}")
    specs = {i.name: i for i in model.runtime.sessions[graph].get_inputs()}
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ServeError(400, "invalid_request", f"'inputs' must be a non-empty list of tensors "
                         f"({', '.join(specs)})")
    feeds: dict[str, np.ndarray] = {}
    for k, t in enumerate(inputs):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            raise ServeError(400, "invalid_request", f"inputs[{k}]: expected an object with "
                             "name, shape, datatype and data")
        name = t["name"]
        if name not in specs:
            raise ServeError(400, "unknown_input", f"inputs[{k}]: {short_repr(name)} is not an "
                             f"input of graph {graph!r} ({', '.join(specs)})")
        spec = specs[name]
        want = _V2_TYPES.get(spec.type)
        if t.get("datatype") != want:
            raise ServeError(400, "wrong_datatype", f"input {name!r}: datatype must be {want}, "
                             f"found {short_repr(t.get('datatype'))}")
        shape = t.get("shape")
        if not isinstance(shape, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise ServeError(400, "wrong_shape", f"input {name!r}: shape must be a list of "
                             f"integers >= 0, found {short_repr(shape)}")
        if len(shape) != len(spec.shape):
            raise ServeError(400, "wrong_shape", f"input {name!r}: expected rank "
                             f"{len(spec.shape)} {list(spec.shape)}, found shape {shape}")
        for axis, (got, fixed) in enumerate(zip(shape, spec.shape)):
            if isinstance(fixed, int) and got != fixed:
                raise ServeError(400, "wrong_shape", f"input {name!r}: axis {axis} must be "
                                 f"{fixed} {list(spec.shape)}, found shape {shape}")
        limit = _time_limit(model, graph, name)
        if limit is not None and len(shape) > 1 and shape[1] > limit:
            raise ServeError(400, "too_long", f"input {name!r}: {shape[1]} time steps exceed "
                             f"this model's max_length {limit}; cut the input")
        try:
            data = np.asarray(t.get("data"))
        except (ValueError, TypeError):
            data = np.asarray([], dtype=object)
        kind = {"BOOL": "b", "FP32": "biuf", "FP64": "biuf", "FP16": "biuf"}.get(want, "iu")
        if data.dtype.kind not in kind or data.dtype == object:
            raise ServeError(400, "wrong_datatype", f"input {name!r}: 'data' must be a (flat or "
                             f"nested) list of {want} values, found "
                             f"{short_repr(t.get('data'), 60)}")
        if data.size != math.prod(shape):
            raise ServeError(400, "wrong_shape", f"input {name!r}: shape {shape} needs "
                             f"{math.prod(shape)} values, found {data.size}")
        if not np.isfinite(data.astype(np.float64)).all():
            raise ServeError(400, "invalid_input", f"input {name!r}: values must be finite")
        np_type = _NUMPY[want]
        if np.dtype(np_type).kind in "iu" and data.size and data.min() < 0:
            # onnxruntime's Gather reads negative token ids from the end of the table.
            raise ServeError(400, "invalid_input", f"input {name!r}: integer inputs (token ids, "
                             f"flags) must be >= 0, found {int(data.min())}")
        if data.dtype.kind in "iu" and np.dtype(np_type).kind in "iu":
            info = np.iinfo(np_type)
            if data.size and (data.min() < info.min or data.max() > info.max):
                raise ServeError(400, "invalid_input", f"input {name!r}: values out of the "
                                 f"{want} range")
        feeds[name] = data.reshape(shape).astype(np_type)
    missing = [n for n in specs if n not in feeds]
    if missing:
        raise ServeError(400, "missing_input", f"graph {graph!r} also needs "
                         f"{', '.join(missing)}")
    outs = body.get("outputs")
    names = [o.name for o in model.runtime.sessions[graph].get_outputs()]
    wanted = names
    if outs is not None:
        if not isinstance(outs, list) or not all(isinstance(o, dict) for o in outs):
            raise ServeError(400, "invalid_request", "'outputs' must be a list of {\"name\": ...}")
        wanted = [o.get("name") for o in outs]
        bad = [str(o) for o in wanted if o not in names]
        if bad:
            raise ServeError(400, "unknown_output", f"no output {', '.join(bad)} in graph "
                             f"{graph!r} ({', '.join(names)})")
    return graph, feeds, wanted


def v2_outputs(results: Mapping[str, np.ndarray], wanted: list[str]) -> list[dict]:
    out = []
    for name in wanted:
        arr = np.asarray(results[name])
        dtype = {np.dtype(v): k for k, v in _NUMPY.items()}.get(arr.dtype, "FP32")
        out.append({"name": name, "datatype": dtype, "shape": list(arr.shape),
                    "data": plain(arr.reshape(-1))})
    return out


# -- the HTTP application ----------------------------------------------------------------------


class ClientGone(Exception):
    """The client closed the connection before its body arrived: there is no one to answer."""


async def read_body(scope: Mapping[str, Any], receive: Any, config: ServeConfig) -> bytes:
    """An ASGI request's body within the size and time limits, or a typed 4xx."""
    limit = config.max_body_bytes
    for key, value in scope["headers"]:
        if key == b"content-length":
            if not value.isdigit():
                raise ServeError(400, "invalid_request", "Content-Length must be a number")
            if int(value) > limit:
                raise ServeError(413, "body_too_large", f"the body has {value.decode()} "
                                 f"bytes; the limit is {limit} (rnnzoo serve --max-body-bytes)")
            break

    async def receive_all() -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise ServeError(413, "body_too_large", f"the body exceeds the limit of "
                                 f"{limit} bytes (rnnzoo serve --max-body-bytes)")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    try:
        if hasattr(asyncio, "timeout"):  # Python 3.11+: no extra task per request
            async with asyncio.timeout(config.body_timeout_s):
                return await receive_all()
        return await asyncio.wait_for(receive_all(), config.body_timeout_s)
    except asyncio.TimeoutError:
        raise ServeError(408, "body_timeout", f"the body did not arrive within "
                         f"{config.body_timeout_s:g} s") from None


def error_reply(exc: Exception) -> tuple[int, dict]:
    """``(status, {"error", "code"})`` for what a request raised: a ``ServeError`` as it says,
    a typed rnnzoo error on bad input as a 400, anything else as a logged 500 (a bug)."""
    if isinstance(exc, ServeError):
        return exc.status, {"error": exc.message, "code": exc.code}
    if isinstance(exc, RnnzooError):
        found = client_error(exc)
        if found is not None:
            return found.status, {"error": found.message, "code": found.code}
        log.exception("request failed", exc_info=exc)
        return 500, {"error": f"{type(exc).__name__}: {exc}", "code": "internal"}
    log.exception("request failed", exc_info=exc)
    return 500, {"error": f"{type(exc).__name__}: {short_repr(exc, 200)}", "code": "internal"}


_JSON_HEADERS = [(b"content-type", b"application/json")]


async def send_json(send: Any, status: int, body: bytes) -> None:
    """A complete JSON response through ASGI ``send`` (two messages, no framework)."""
    await send({"type": "http.response.start", "status": status,
                "headers": [*_JSON_HEADERS, (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


def create_app(models: Mapping[str, ServedModel], config: ServeConfig | None = None) -> Any:
    """The ASGI application serving ``models`` (see the module docstring): Starlette, with the
    two hot routes answered before its routing."""
    require_serve_extra("starlette")
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    config = config or ServeConfig()
    started = time.time()

    def error(status: int, code: str, message: str) -> JSONResponse:
        return JSONResponse({"error": message, "code": code}, status_code=status)

    def get_model(name: str) -> ServedModel:
        if name not in models:
            raise ServeError(404, "unknown_model", f"no model {name!r}; served: "
                             f"{', '.join(models)}")
        return models[name]

    def handler(fn: Any) -> Any:
        async def wrapped(request: Request) -> Response:
            try:
                return await fn(request)
            except Exception as exc:  # noqa: BLE001 - typed 4xx, or a logged JSON 500
                status, reply = error_reply(exc)
                return error(status, reply["code"], reply["error"])
        return wrapped

    # The two hot routes (v1 predict, v2 infer) are raw ASGI: no Request object, no response
    # class, no middleware; the routing shortcut in ``app`` below reaches them without
    # Starlette's router (what one request costs bounds requests/s on a small machine).
    async def v1_predict(target: str, receive: Any, scope: Mapping[str, Any]) -> dict:
        # /v1/models/{name}:predict with a ':' Starlette cannot split from the name.
        name, sep, verb = target.rpartition(":")
        if not sep or verb != "predict":
            raise ServeError(404, "unknown_route", "use POST /v1/models/{name}:predict")
        model = get_model(name)
        body = loads(await read_body(scope, receive, config))
        if not isinstance(body, dict) or "instances" not in body:
            raise ServeError(400, "invalid_request", 'expected a JSON object {"instances": '
                             '[...]} (plus any options of the model)')
        instances = body.pop("instances")
        body.pop("signature_name", None)
        if not isinstance(instances, list) or not instances:
            raise ServeError(400, "invalid_request", "'instances' must be a non-empty list")
        if len(instances) > config.max_instances:
            raise ServeError(413, "too_many_instances", f"{len(instances)} instances; the "
                             f"limit per request is {config.max_instances}")
        options = model.check_options(body)
        return {"predictions": await model.predict(instances, options)}

    async def v2_infer(name: str, receive: Any, scope: Mapping[str, Any]) -> dict:
        model = get_model(name)
        body = loads(await read_body(scope, receive, config))
        graph, feeds, wanted = v2_feeds(model, body)
        try:
            results = await model.run_job(model.runtime.run, graph, feeds)
        except RnnzooError as exc:
            raise ServeError(400, "invalid_input", str(exc)) from None
        reply: dict[str, Any] = {"model_name": model.name, "model_version": MODEL_VERSION,
                                 "outputs": v2_outputs(results, wanted)}
        if isinstance(body.get("id"), str):
            reply["id"] = body["id"]
        return reply

    async def hot(fn: Any, name: str, scope: Any, receive: Any, send: Any) -> None:
        try:
            status, reply = 200, await fn(name, receive, scope)
        except ClientGone:
            return
        except Exception as exc:  # noqa: BLE001 - typed 4xx, or a logged JSON 500
            status, reply = error_reply(exc)
        await send_json(send, status, dumps(reply))

    class HotRoute:
        """The hot handler as a Starlette route endpoint (an ASGI app), so that a request the
        shortcut does not take (a root path, a wrong method) is routed as before."""

        def __init__(self, fn: Any, param: str) -> None:
            self.fn, self.param = fn, param

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            await hot(self.fn, scope["path_params"][self.param], scope, receive, send)

    async def v1_status(request: Request) -> Response:
        get_model(request.path_params["name"])
        return JSONResponse({"model_version_status": [
            {"version": MODEL_VERSION, "state": "AVAILABLE",
             "status": {"error_code": "OK", "error_message": ""}}]})

    async def v1_models(request: Request) -> Response:
        return JSONResponse({"models": [m.info() for m in models.values()]})

    async def v1_get(request: Request) -> Response:
        target = request.path_params["target"]
        if target.endswith(":predict"):
            raise ServeError(405, "method_not_allowed", f"POST {request.url.path} with "
                             '{"instances": [...]}')
        request.path_params["name"] = target
        return await v1_status(request)

    async def v2_server(request: Request) -> Response:
        from rnnzoo import __version__

        return JSONResponse({"name": "rnnzoo", "version": __version__, "extensions": []})

    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> Response:
        return JSONResponse({"ready": True})

    async def v2_model(request: Request) -> Response:
        return JSONResponse(v2_metadata(get_model(request.path_params["name"])))

    async def v2_model_ready(request: Request) -> Response:
        get_model(request.path_params["name"])
        return JSONResponse({"name": request.path_params["name"], "ready": True})

    async def stats(request: Request) -> Response:
        return JSONResponse({"uptime_s": round(time.time() - started, 1),
                             "batching": config.batching,
                             "models": {n: m.stats for n, m in models.items()}})

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_spec(models))

    page = DEMO_PAGE.read_text(encoding="utf-8")

    async def demo(request: Request) -> Response:
        name = request.path_params.get("name")
        if name is not None:
            get_model(name)
        return HTMLResponse(page)

    async def not_found(request: Request, exc: HTTPException) -> Response:
        code = "unknown_route" if exc.status_code == 404 else "method_not_allowed"
        return error(exc.status_code, code, f"{request.method} {request.url.path}: "
                     f"{exc.detail}; see /openapi.json")

    routes = [  # the hot route first (routes are matched in order)
        Route("/v1/models/{target}", HotRoute(v1_predict, "target"), methods=["POST"]),
        Route("/", handler(demo)),
        Route("/demo/{name}", handler(demo)),
        Route("/openapi.json", handler(openapi)),
        Route("/v1/models", handler(v1_models)),
        Route("/v1/models/{target}", handler(v1_get), methods=["GET"]),
        Route("/v2", handler(v2_server)),
        Route("/v2/health/live", handler(live)),
        Route("/v2/health/ready", handler(ready)),
        Route("/v2/models/{name}", handler(v2_model)),
        Route("/v2/models/{name}/ready", handler(v2_model_ready)),
        Route("/v2/models/{name}/infer", HotRoute(v2_infer, "name"), methods=["POST"]),
        Route("/stats", handler(stats)),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        yield
        for model in models.values():
            await model.close()

    routed = Starlette(routes=routes, lifespan=lifespan,
                       exception_handlers={HTTPException: not_found})

    async def app(scope: Any, receive: Any, send: Any) -> None:
        """The hot routes without Starlette's routing and middleware; everything else (and
        any path under a root path) through Starlette."""
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            path = scope["path"]
            if path.startswith("/v1/models/"):
                target = path[11:]
                if target and "/" not in target:
                    return await hot(v1_predict, target, scope, receive, send)
            elif path.startswith("/v2/models/") and path.endswith("/infer"):
                name = path[11:-6]
                if name and "/" not in name:
                    return await hot(v2_infer, name, scope, receive, send)
        await routed(scope, receive, send)

    app.starlette = routed  # type: ignore[attr-defined]
    return app


def openapi_spec(models: Mapping[str, ServedModel]) -> dict:
    """An OpenAPI 3.1 description of the routes, the model names as an enum."""
    name = {"name": "name", "in": "path", "required": True,
            "schema": {"type": "string", "enum": list(models)}}
    err = {"description": "a JSON error", "content": {"application/json": {"schema": {
        "type": "object", "properties": {"error": {"type": "string"},
                                         "code": {"type": "string"}}}}}}
    ok = {"description": "OK", "content": {"application/json": {}}}
    tensor = {"type": "object", "required": ["name", "shape", "datatype", "data"], "properties": {
        "name": {"type": "string"}, "shape": {"type": "array", "items": {"type": "integer"}},
        "datatype": {"type": "string"}, "data": {"type": "array"}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "rnnzoo serve", "version": MODEL_VERSION,
                 "description": "TF Serving/KServe v1 task-level predict and Open Inference "
                                "Protocol v2 tensor-level infer for rnnzoo presets and bundles"},
        "paths": {
            "/v1/models": {"get": {"summary": "served models, their options and demo inputs",
                                   "responses": {"200": ok}}},
            "/v1/models/{name}:predict": {"post": {
                "summary": "raw instances in, plain predictions out (batched)",
                "parameters": [name],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["instances"],
                    "properties": {"instances": {"type": "array", "minItems": 1}},
                    "additionalProperties": True}}}},
                "responses": {"200": ok, "400": err, "404": err, "408": err, "413": err,
                              "503": err}}},
            "/v1/models/{name}": {"get": {"summary": "model status", "parameters": [name],
                                          "responses": {"200": ok, "404": err}}},
            "/v2": {"get": {"summary": "server metadata", "responses": {"200": ok}}},
            "/v2/health/live": {"get": {"summary": "liveness", "responses": {"200": ok}}},
            "/v2/health/ready": {"get": {"summary": "readiness", "responses": {"200": ok}}},
            "/v2/models/{name}": {"get": {"summary": "inputs and outputs of the bundle's graphs",
                                          "parameters": [name],
                                          "responses": {"200": ok, "404": err}}},
            "/v2/models/{name}/ready": {"get": {"summary": "model readiness",
                                                "parameters": [name],
                                                "responses": {"200": ok, "404": err}}},
            "/v2/models/{name}/infer": {"post": {
                "summary": "tensors in, tensors out (one graph run)", "parameters": [name],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["inputs"], "properties": {
                        "id": {"type": "string"},
                        "parameters": {"type": "object",
                                       "properties": {"graph": {"type": "string"}}},
                        "inputs": {"type": "array", "items": tensor},
                        "outputs": {"type": "array", "items": {"type": "object"}}}}}}},
                "responses": {"200": ok, "400": err, "404": err, "413": err}}},
            "/stats": {"get": {"summary": "requests, runtime calls and largest batch per model",
                               "responses": {"200": ok}}},
        },
    }


# -- running the server ------------------------------------------------------------------------

_ENV = "RNNZOO_SERVE_SPEC"


def app_from_environment() -> Any:
    """The app factory each uvicorn worker process calls (``--workers N``): the models and
    settings come in ``$RNNZOO_SERVE_SPEC``."""
    spec = json.loads(os.environ[_ENV])
    config = ServeConfig(**spec["config"])
    return create_app(load_models(spec["models"], config), config)


def serve(specs: Sequence[str], config: ServeConfig, host: str = "127.0.0.1", port: int = 8000,
          workers: int = 1, log_level: str = "info", graceful_timeout_s: float = 30.0) -> None:
    """Load the models and run uvicorn until SIGINT/SIGTERM (in-flight requests finish
    first, within ``graceful_timeout_s``)."""
    uvicorn = require_serve_extra("uvicorn")
    require_serve_extra("starlette")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"serve: workers must be an integer >= 1, found {workers!r}")
    models = load_models(specs, config)  # fails here, once, on a bad preset or bundle
    # No proxy-header rewriting: the server never reads client addresses, and uvicorn's check
    # of the peer against forwarded_allow_ips parses an IP address per request. The access log
    # only when it is shown (uvicorn formats its arguments before the level filter).
    common = {"host": host, "port": port, "log_level": log_level, "proxy_headers": False,
              "access_log": log_level in ("info", "debug", "trace"),
              "timeout_graceful_shutdown": graceful_timeout_s}
    for name, model in models.items():
        print(f"serving {name} ({model.task}, {model.verb}) from {model.source}", flush=True)
    print(f"demo page: http://{host}:{port}/   API: http://{host}:{port}/openapi.json",
          flush=True)
    if workers == 1:
        uvicorn.run(create_app(models, config), **common)
        return
    os.environ[_ENV] = json.dumps({"models": list(specs),
                                   "config": dataclasses.asdict(config)})
    uvicorn.run("rnnzoo.serving:app_from_environment", factory=True, workers=workers, **common)
