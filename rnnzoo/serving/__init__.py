"""``rnnzoo serve``: presets and ONNX bundles behind an HTTP API, with request batching and a
demo page (the ``serve`` extra: Starlette and uvicorn). TensorFlow is never imported: models run
through the TF-free runtime (``rnnzoo.export.runtime``), as in ``from_preset(backend="onnx")``.

Two API levels, as model servers share them:

* task level, the TF Serving / KServe v1 shape: ``POST /v1/models/{name}:predict`` with
  ``{"instances": [...], <options>}`` of raw inputs (texts, series, generation requests) returns
  ``{"predictions": [...]}`` of plain data; ``POST /v1/models/{name}:stream`` (one instance)
  the same prediction as server-sent events while it is produced, for generators, translators,
  captioners and streaming recognizers (``streaming``); ``GET /v1/models/{name}`` its status;
  ``GET /v1/models`` the served models with their options, demo input and what they stream
  (an rnnzoo addition);
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
* ``serve_stream(self, instance, options: dict, emit) -> prediction``: ``:stream`` for one
  instance, calling ``emit(event)`` (a JSON-able dict) per piece and returning the final
  prediction. Default: the task's streaming user call (``streaming._KINDS``), or none.
* ``serve_demo: dict``: the demo page's input (``{"input": "text" | "json", "example": ...,
  "options": {...}}``). Default: a text box when the task's ``example_inputs`` are strings,
  else a JSON box.

Bad input raises the runtime's typed errors (``DataError``, ``ConfigError``): the server answers
400 with ``{"error": message, "code": ...}``. Every other client mistake (malformed JSON, an
unknown model, a body over the limit, a client that sends too slowly, a full queue) has its own
4xx/503 and JSON body; a 500 means a server fault (a bug), logged with a traceback under the
error id the answer gives.

Cost and safety (issue #31): every request is checked against ``rnnzoo.limits`` before it is
queued (instances, decode lengths, beams, steps, text length: 413 for an input too large, 422
for too much work asked, naming the limit and ``--limit NAME=N``); readers check sizes from
headers (pixels, audio seconds, MIDI length) with the same errors. A request has a deadline
(``request_timeout_s``, 504) and, while it runs, a watch on its client: either way its work
stops at the next graph run (the runtimes' sessions are wrapped, ``models.GuardedSession``),
so a runaway never holds a model's worker. The browser checks (``safety``): Host names (421),
other origins (CORS off by default: 403), JSON-only POSTs (415); uvicorn's protocol bounds
request headers in time (408) and size (431, ``protocol``); SIGTERM drains, stops what runs
past the graceful timeout (503) and exits 0 (``run``).

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

The package, by role: ``config`` (ServeConfig, ServeError, the serve extra), ``data`` (JSON in
and out), ``models`` (the task-type hooks, limits checked per request, ServedModel and its
batching workers with deadlines and cancellation), ``streaming`` (``:stream`` per task type),
``loading`` (bundles and presets, ``#sha256=`` pins), ``v2`` (the tensor protocol), ``safety``
(Host, CORS, content type), ``app`` (the ASGI application, OpenAPI), ``protocol`` (uvicorn's
HTTP protocol with header limits), ``run`` (uvicorn, the socket, signals). Everything public
is re-exported here.
"""

from __future__ import annotations

from rnnzoo.serving.app import (
    DEMO_PAGE,
    create_app,
    error_reply,
    log,
    openapi_spec,
    read_body,
    send_json,
)
from rnnzoo.serving.config import (
    MODEL_VERSION,
    SERVE_EXTRA,
    ClientGone,
    PortInUseError,
    ServeConfig,
    ServeError,
    require_serve_extra,
)
from rnnzoo.serving.data import dumps, loads, plain, split_predictions
from rnnzoo.serving.hooks import (
    check_request_limits,
    client_error,
    default_predict,
    demo_of,
    options_of,
    run_predict,
    task_verb,
)
from rnnzoo.serving.loading import bundled_preset, load_model, load_models
from rnnzoo.serving.models import ServedModel
from rnnzoo.serving.run import app_from_environment, serve
from rnnzoo.serving.v2 import main_graph, v2_feeds, v2_metadata, v2_outputs

__all__ = [
    "DEMO_PAGE", "MODEL_VERSION", "SERVE_EXTRA", "ClientGone", "PortInUseError", "ServeConfig",
    "ServeError", "ServedModel", "app_from_environment", "bundled_preset",
    "check_request_limits", "client_error", "create_app",
    "default_predict", "demo_of", "dumps", "error_reply", "load_model", "load_models", "loads",
    "log", "main_graph", "openapi_spec", "options_of", "plain", "read_body",
    "require_serve_extra", "run_predict", "send_json", "serve", "split_predictions",
    "task_verb", "v2_feeds", "v2_metadata", "v2_outputs",
]
