"""A served model: the task-type hooks (with their defaults) and the request queue its worker
threads batch from."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import queue
import threading
import time
from collections.abc import Mapping
from typing import Any

from rnnzoo.errors import RnnzooError, short_repr
from rnnzoo.serving.config import ServeConfig, ServeError
from rnnzoo.serving.data import _rows, plain, split_predictions

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
        # batch_size is the server's to choose; progress lines belong to a terminal, not to a
        # request (a client cannot make the server write to its stderr).
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) \
                and p.name not in ("batch_size", "progress"):
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
