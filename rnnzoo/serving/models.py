"""A served model: the request queue its worker threads batch from, with the deadline and
client-disconnect cancellation of queued and running work (the hooks and limits every request
is checked against before it is queued live in ``rnnzoo.serving.hooks``)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import queue
import threading
import time
from collections.abc import Mapping
from typing import Any

from rnnzoo import limits
from rnnzoo.serving.config import ClientGone, ServeConfig, ServeError
from rnnzoo.serving.hooks import (
    RESERVED_OPTIONS,
    check_request_limits,
    client_error,
    demo_of,
    limit_error,
    options_of,
    run_predict,
    task_verb,
)
from rnnzoo.serving.streaming import stream_kind

# -- cancellation ------------------------------------------------------------------------------


class Cancelled(BaseException):
    """Raised inside a worker thread's runtime call whose requests were all cancelled (deadline,
    client gone, shutdown): a BaseException, so that no ``except Exception`` of a runtime
    swallows it. Caught by the worker."""


_local = threading.local()  # .items: the requests the worker thread is running now


class GuardedSession:
    """An onnxruntime session whose ``run`` first checks that someone still waits for the work
    of the calling worker thread (``Cancelled`` otherwise). Every graph run of a runtime goes
    through its sessions, one per decoding or generation step, so a cancelled request stops
    within one step, without the runtimes knowing about servers."""

    __slots__ = ("_session",)

    def __init__(self, session: Any) -> None:
        object.__setattr__(self, "_session", session)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    def run(self, *args: Any, **kwargs: Any) -> Any:
        items = getattr(_local, "items", None)
        if items and all(i.cancelled for i in items):
            raise Cancelled
        return self._session.run(*args, **kwargs)


def guard_sessions(runtime: Any) -> None:
    """Route the runtime's graph runs through :class:`GuardedSession` (idempotent): the
    sessions it holds and those it opens later (``intra_op_threads="auto"`` opens a wide one
    on the first large batch)."""
    sessions = getattr(runtime, "sessions", None)
    if isinstance(sessions, dict):
        for name, session in list(sessions.items()):
            if not isinstance(session, GuardedSession):
                sessions[name] = GuardedSession(session)
    opener = getattr(runtime, "_open", None)
    if opener is not None and not getattr(opener, "_guarded", False):
        def guarded_open(*args: Any, **kwargs: Any) -> Any:
            return GuardedSession(opener(*args, **kwargs))
        guarded_open._guarded = True  # type: ignore[attr-defined]
        runtime._open = guarded_open


def check_cancelled() -> None:
    """``Cancelled`` when the requests of this worker thread are gone (for loops between graph
    runs, such as a stream's)."""
    items = getattr(_local, "items", None)
    if items and all(i.cancelled for i in items):
        raise Cancelled


class _Marker:
    """Why a request ended without a result (set as its result by the event loop)."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why


EXPIRED, GONE = _Marker("deadline"), _Marker("client gone")


def deadline_error(timeout: float) -> ServeError:
    return ServeError(504, "deadline_exceeded", f"the request ran over the limit "
                      f"request_timeout_s={timeout:g} s and was stopped; raise it with "
                      f"rnnzoo serve --request-timeout S (or --limit request_timeout_s=S)",
                      {"limit": "request_timeout_s", "maximum": timeout})


# -- models and batching -----------------------------------------------------------------------


class _Pending:
    """A request waiting for a runtime call: its instances and options, or (``job``) a
    function to run alone, such as a v2 infer or a stream; the event loop's future that gets
    the result (or ``events``, the queue a stream's events go to). ``cancelled``: nobody waits
    any more (deadline, client gone, shutdown); workers skip it and stop its work."""

    __slots__ = ("instances", "options", "key", "future", "loop", "job", "cancelled",
                 "events")

    def __init__(self, instances: list, options: dict, future: asyncio.Future,
                 job: Any = None, events: asyncio.Queue | None = None) -> None:
        self.instances, self.options, self.future, self.job = instances, options, future, job
        self.key = _options_key(options)
        self.loop = future.get_loop()
        self.cancelled = False
        self.events = events

    def settle(self, value: Any) -> None:
        """On the event loop: end the wait with ``value`` (a result or a marker)."""
        if isinstance(value, _Marker):
            self.cancelled = True
        if self.events is not None:
            self.events.put_nowait(value)
        elif not self.future.done():
            self.future.set_result(value)


def _options_key(options: dict) -> str:
    """Requests are merged only when their options are equal."""
    return json.dumps(options, sort_keys=True, default=str) if options else ""


class _DisconnectWatch:
    """Ends a request whose client disconnects (its work is stopped). Started only when the
    answer takes longer than ``DELAY`` s: most answers come sooner, and the watch costs a task.
    """

    DELAY = 0.05
    __slots__ = ("receive", "item", "handle", "task")

    def __init__(self, receive: Any, item: _Pending) -> None:
        self.receive, self.item, self.task = receive, item, None
        self.handle = item.loop.call_later(self.DELAY, self._start)

    def _start(self) -> None:
        self.handle = None
        self.task = self.item.loop.create_task(self._watch())

    async def _watch(self) -> None:
        # After the body, an ASGI server's receive() returns only http.disconnect (when the
        # client goes, or once the response is sent: the watch is stopped before that).
        message = await self.receive()
        if message.get("type") == "http.disconnect":
            self.item.settle(GONE)

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
        if self.task is not None:
            self.task.cancel()


_STOP = object()  # tells a worker thread to end


class ServedModel:
    """One model: its runtime, metadata, and request queue served by worker threads.

    Every runtime call runs in one of ``config.threads`` worker threads, which take requests
    from a thread-safe queue: with batching, a worker takes everything waiting (up to
    ``max_batch_size`` instances, waiting at most ``max_delay_ms`` for more) as soon as its
    previous call returns, so requests that arrive while the model runs form the next batch
    without a round trip through the event loop; without batching, one request per call. Both
    modes run the same code. Results go back to the event loop with one wake-up per call.

    Every request has a deadline (``rnnzoo.limits`` ``request_timeout_s``) and, while it runs
    long, a watch on its client: past the deadline it is answered 504, a client gone gets
    nothing, and either way its work stops (a queued request is skipped; a running call stops
    at its next graph run once every request merged into it is gone)."""

    def __init__(self, name: str, runtime: Any, source: str, config: ServeConfig) -> None:
        self.name = name
        self.runtime = runtime
        self.source = source
        self.config = config
        self.task = runtime.manifest["task"]
        self.verb = task_verb(runtime)
        self.options = options_of(runtime)
        self.demo = demo_of(runtime)
        self.text_instances = self.demo.get("input") == "text"
        guard_sessions(runtime)
        self.stream_kind = stream_kind(runtime, self.verb)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._start_lock = threading.Lock()
        self._queued = 0  # instances waiting or running (counted on the event loop)
        self._in_flight = 0  # requests waiting or running
        self._pending: set[_Pending] = set()
        # deadline_exceeded, client_gone: requests ended so; stopped: runtime calls stopped
        # midway because nobody waited for them any more.
        self.stats = {"requests": 0, "instances": 0, "runtime_calls": 0, "largest_batch": 0,
                      "deadline_exceeded": 0, "client_gone": 0, "stopped": 0}

    # -- request checks ----------------------------------------------------------------------
    def check_options(self, options: dict) -> dict:
        reserved = sorted(RESERVED_OPTIONS.intersection(options))
        if reserved:
            raise ServeError(400, "unknown_option", f"{self.name}: option(s) "
                             f"{', '.join(reserved)} are the server's to choose, not a "
                             "request's" + ("" if "stream" not in reserved else
                                            "; to stream, POST :stream"))
        if self.options is not None:
            unknown = sorted(set(options) - set(self.options))
            if unknown:
                allowed = ", ".join(sorted(self.options)) or "none"
                raise ServeError(400, "unknown_option",
                                 f"{self.name}: unknown option(s) {', '.join(unknown)} beside "
                                 f"'instances'; this model accepts: {allowed}")
        return options

    def check_request(self, instances: list, options: dict) -> dict:
        """The options, checked; the request's limits checked (413/422) before it is queued."""
        options = self.check_options(options)
        try:
            check_request_limits(instances, options, self.text_instances)
        except limits.LimitError as exc:
            raise limit_error(exc) from None
        return options

    def info(self) -> dict:
        meta = getattr(self.runtime, "preset_metadata", None) or {}
        return {"name": self.name, "task": self.task, "verb": self.verb,
                "family": self.runtime.family, "entry": self.runtime.entry,
                "precision": self.runtime.manifest.get("precision"), "source": self.source,
                "description": meta.get("description") if isinstance(meta, Mapping) else None,
                "options": self.options, "demo": self.demo, "stream": self.stream_kind,
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

    async def predict(self, instances: list, options: dict, receive: Any = None) -> list:
        """Predictions for one request, batched with concurrent ones when batching is on.
        ``receive``: the request's ASGI receive, to stop its work if the client goes."""
        self._admit(len(instances))
        self.stats["requests"] += 1
        self.stats["instances"] += len(instances)
        self._queued += len(instances)
        try:
            result = await self._submit(_Pending(
                instances, options, asyncio.get_running_loop().create_future()), receive)
        finally:
            self._queued -= len(instances)
        if isinstance(result, BaseException):
            error = client_error(result)
            if error is not None:
                raise error
            raise result
        return result

    def _admit(self, count: int) -> None:
        if self._queued + count > self.config.max_queue:
            raise ServeError(503, "overloaded",
                             f"{self.name}: {self._queued} instances are already waiting "
                             f"(limit {self.config.max_queue}); retry later")

    async def run_job(self, fn: Any, *args: Any, receive: Any = None) -> Any:
        """``fn(*args)`` in a worker thread, alone (a v2 infer): the model's threads bound all
        of its runtime calls, batched or not."""
        self._admit(1)
        self._queued += 1
        try:
            result = await self._submit(_Pending(
                [], {}, asyncio.get_running_loop().create_future(), job=(fn, args)), receive)
        finally:
            self._queued -= 1
        if isinstance(result, BaseException):
            raise result
        return result

    def start_stream(self, produce: Any, receive: Any) -> tuple[_Pending, Any]:
        """Queue a stream job: ``produce(emit)`` runs in a worker thread and calls ``emit(event)``
        for each event (each goes to the returned item's ``events`` queue, then a final
        ``StreamEnd``). Returns the item and a ``stop()`` to call when the stream is over."""
        self._admit(1)
        loop = asyncio.get_running_loop()
        item = _Pending([], {}, loop.create_future(), job=("stream", produce),
                        events=asyncio.Queue())
        self.stats["requests"] += 1
        self.stats["instances"] += 1
        self._queued += 1
        stop = self._enqueue(item, receive)

        def finish() -> None:
            self._queued -= 1
            stop()
        return item, finish

    def _enqueue(self, item: _Pending, receive: Any) -> Any:
        """Queue ``item`` with its deadline and disconnect watch; returns ``stop()``, which
        ends them (and marks the item cancelled if it has not finished)."""
        if len(self._workers) < self.config.threads:
            self._start_workers()
        timeout = limits.current().request_timeout_s
        timer = item.loop.call_later(timeout, self._expire, item)
        watch = _DisconnectWatch(receive, item) if receive is not None else None
        self._in_flight += 1
        self._pending.add(item)
        self._queue.put(item)

        def stop() -> None:
            self._in_flight -= 1
            self._pending.discard(item)
            timer.cancel()
            if watch is not None:
                watch.stop()
            if not item.future.done():  # nobody reads the result any more
                item.cancelled = True
        return stop

    def _expire(self, item: _Pending) -> None:
        self.stats["deadline_exceeded"] += 1
        item.settle(EXPIRED)

    async def _submit(self, item: _Pending, receive: Any = None) -> Any:
        stop = self._enqueue(item, receive)
        try:
            result = await item.future
        except asyncio.CancelledError:  # the server cancels the request (shutdown)
            item.cancelled = True
            raise
        finally:
            stop()
        if result is EXPIRED:
            raise deadline_error(limits.current().request_timeout_s)
        if result is GONE:
            self.stats["client_gone"] += 1
            raise ClientGone
        return result

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
            if first.cancelled:  # its deadline passed or its client left while it waited
                continue
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
                if item is not _STOP and item.cancelled:
                    continue
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
            _local.items = items
            try:
                results = self.call([i.instances for i in items], items[0].options)
            except BaseException as exc:  # noqa: BLE001 - handed to every waiter
                results = [exc] * len(items)
            finally:
                _local.items = None
            if any(isinstance(r, Cancelled) for r in results):
                self.stats["stopped"] += 1
            _deliver(items, results)

    def _run_job(self, item: _Pending) -> None:
        fn, args = item.job
        _local.items = [item]
        try:
            if fn == "stream":
                self._run_stream(item, args)
                return
            try:
                result = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiter
                result = exc
                if isinstance(exc, Cancelled):
                    self.stats["stopped"] += 1
            _deliver([item], [result])
        finally:
            _local.items = None

    def _run_stream(self, item: _Pending, produce: Any) -> None:
        """A stream job: each event to the item's queue as it is made; then ``StreamEnd``
        (with the exception that ended it, if any)."""
        loop, events = item.loop, item.events
        # Events wait in a deque. The first wakes the event loop at once; then the loop is
        # woken at most every STREAM_FLUSH_S for all the events made meanwhile (one wake-up,
        # and one GIL hand-over, per character would cost more than the character).
        waiting: collections.deque = collections.deque()
        woken = [False]

        def drain() -> None:
            while waiting:
                events.put_nowait(waiting.popleft())

        def move() -> None:  # on the event loop
            drain()
            loop.call_later(STREAM_FLUSH_S, rearm)

        def rearm() -> None:  # on the event loop
            woken[0] = False  # first: an event appended from now on wakes the loop again
            drain()

        def emit(event: Any) -> None:
            check_cancelled()
            waiting.append(event)
            if not woken[0]:
                woken[0] = True
                with contextlib.suppress(RuntimeError):  # a loop closed meanwhile
                    loop.call_soon_threadsafe(move)

        try:
            produce(emit)
            end = StreamEnd(None)
        except Cancelled:
            self.stats["stopped"] += 1
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the stream
            end = StreamEnd(exc)
        self.stats["runtime_calls"] += 1
        waiting.append(end)
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(move)

    async def close(self) -> None:
        """Stop the worker threads: uvicorn has drained (or, past its graceful timeout,
        cancelled) the requests; whatever still runs is cancelled and stops at its next graph
        run. Daemon threads: a call that does not return in time does not hold up the exit."""
        for item in list(self._pending):
            item.cancelled = True
        workers, self._workers = self._workers, []
        for _ in workers:
            self._queue.put(_STOP)
        loop = asyncio.get_running_loop()
        for t in workers:
            await loop.run_in_executor(None, t.join, 5.0)


STREAM_FLUSH_S = 0.005  # a stream's events reach the event loop at most this much later


class StreamEnd:
    """The last item of a stream's event queue: ``error`` is None, or what ended it."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


def _deliver(items: list[_Pending], results: list) -> None:
    """Results to the requests' futures, one event-loop wake-up per loop (from a worker)."""
    by_loop: dict[Any, list] = {}
    for item, result in zip(items, results):
        if isinstance(result, Cancelled):
            continue  # nobody waits
        by_loop.setdefault(item.loop, []).append((item.future, result))
    for loop, pairs in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a loop closed meanwhile: no one waits
            loop.call_soon_threadsafe(_set_results, pairs)


def _set_results(pairs: list) -> None:
    for future, result in pairs:
        if not future.done():  # a client gone (cancelled) needs nothing
            future.set_result(result)
