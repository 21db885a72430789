"""The ASGI application: Starlette routes, with the hot routes (v1 predict and stream, v2 infer)
answered before its routing, behind the browser-safety checks (``safety``); the OpenAPI
description."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rnnzoo import limits
from rnnzoo.errors import RnnzooError
from rnnzoo.serving.config import (
    MODEL_VERSION,
    ClientGone,
    ServeConfig,
    ServeError,
    require_serve_extra,
)
from rnnzoo.serving.data import dumps, loads
from rnnzoo.serving.hooks import client_error
from rnnzoo.serving.models import (
    EXPIRED,
    GONE,
    ServedModel,
    StreamEnd,
    deadline_error,
)
from rnnzoo.serving.safety import BrowserGuard
from rnnzoo.serving.streaming import Final, producer
from rnnzoo.serving.v2 import v2_feeds, v2_metadata, v2_outputs

log = logging.getLogger("rnnzoo.serve")

DEMO_PAGE = Path(__file__).parent.parent / "serve_demo.html"


# -- the HTTP application ----------------------------------------------------------------------


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


def error_reply(exc: BaseException) -> tuple[int, dict]:
    """``(status, {"error", "code", ...})`` for what a request raised: a ``ServeError`` as it
    says, a typed rnnzoo error on bad input as a 4xx (a limit: 413/422), anything else as a
    500 (a server fault: a bug, or a bundle that cannot run) logged with a traceback under an
    id that the answer gives, and without the server's internals."""
    if isinstance(exc, RnnzooError):
        found = client_error(exc)
        if found is not None:
            exc = found
    if isinstance(exc, ServeError):
        return exc.status, {"error": exc.message, "code": exc.code, **exc.extra}
    error_id = uuid.uuid4().hex[:12]
    log.error("request failed [error id %s]", error_id, exc_info=exc)
    return 500, {"error": f"internal server error ({type(exc).__name__}); the server log has "
                          f"the details under error id {error_id}",
                 "code": "internal", "id": error_id}


_JSON_HEADERS = [(b"content-type", b"application/json")]
# Server-sent events: no caching, and no buffering by a proxy (nginx) that would hold the
# events back until the end.
_SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]


async def send_json(send: Any, status: int, body: bytes) -> None:
    """A complete JSON response through ASGI ``send`` (two messages, no framework)."""
    await send({"type": "http.response.start", "status": status,
                "headers": [*_JSON_HEADERS, (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


# What a request still running when a shutdown's graceful timeout ends is answered (its work
# is stopped): the server, not the request, is at fault, and a retry elsewhere may succeed.
SHUTTING_DOWN = ServeError(503, "shutting_down", "the server is shutting down and stopped this "
                           "request's work (it ran past the graceful timeout); retry")


def create_app(models: Mapping[str, ServedModel], config: ServeConfig | None = None) -> Any:
    """The ASGI application serving ``models`` (see the ``rnnzoo.serving`` docstring):
    Starlette, with the two hot routes answered before its routing."""
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
    async def v1_request(model: ServedModel, receive: Any, scope: Mapping[str, Any]
                         ) -> tuple[list, dict]:
        """The instances and options of a v1 request body, checked (limits included)."""
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
                             f"limit per request is {config.max_instances} (rnnzoo serve "
                             "--max-instances)")
        return instances, model.check_request(instances, body)

    def v1_target(target: str) -> tuple[ServedModel, str]:
        # /v1/models/{name}:predict with a ':' Starlette cannot split from the name.
        name, sep, verb = target.rpartition(":")
        if not sep or verb not in ("predict", "stream"):
            raise ServeError(404, "unknown_route", "use POST /v1/models/{name}:predict or "
                             "/v1/models/{name}:stream")
        return get_model(name), verb

    async def v1_predict(model: ServedModel, receive: Any, scope: Mapping[str, Any]) -> dict:
        instances, options = await v1_request(model, receive, scope)
        return {"predictions": await model.predict(instances, options, receive)}

    async def v2_infer(name: str, receive: Any, scope: Mapping[str, Any]) -> dict:
        model = get_model(name)
        body = loads(await read_body(scope, receive, config))
        graph, feeds, wanted = v2_feeds(model, body)
        try:
            results = await model.run_job(model.runtime.run, graph, feeds, receive=receive)
        except RnnzooError as exc:
            error = client_error(exc)
            raise (error or exc) from None
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
        except asyncio.CancelledError:  # shutdown past its graceful timeout: work stopped
            status, reply = error_reply(SHUTTING_DOWN)
        except Exception as exc:  # noqa: BLE001 - typed 4xx, or a logged JSON 500
            status, reply = error_reply(exc)
        await send_json(send, status, dumps(reply))

    async def v1(target: str, scope: Any, receive: Any, send: Any) -> None:
        try:
            model, verb = v1_target(target)
        except ServeError as exc:
            status, reply = error_reply(exc)
            return await send_json(send, status, dumps(reply))
        if verb == "stream":
            return await v1_stream(model, scope, receive, send)
        await hot(v1_predict, model, scope, receive, send)

    async def v1_stream(model: ServedModel, scope: Any, receive: Any, send: Any) -> None:
        """Server-sent events of one instance's output (``rnnzoo.serving.streaming``): an
        error before the first event is a JSON answer with its status, one after it an
        ``error`` event."""
        started = False
        finish = None
        try:
            instances, options = await v1_request(model, receive, scope)
            if model.stream_kind is None:
                raise ServeError(400, "not_streamable", f"{model.name} ({model.task}) does not "
                                 "stream; streaming models: generators, translators, "
                                 "captioners and streaming recognizers. Use :predict")
            if len(instances) != 1:
                raise ServeError(400, "invalid_request", f":stream takes one instance, found "
                                 f"{len(instances)}; send the others as their own requests")
            item, finish = model.start_stream(producer(model, instances[0], options), receive)

            async def flush(chunks: list[bytes]) -> None:
                nonlocal started
                if not chunks:
                    return
                if not started:
                    await send({"type": "http.response.start", "status": 200,
                                "headers": _SSE_HEADERS})
                    started = True
                await send({"type": "http.response.body", "body": b"".join(chunks),
                            "more_body": True})
                chunks.clear()

            while True:
                # Every event waiting goes out in one write: when the model produces faster
                # than the connection takes them, they are not written one call each.
                waiting = [await item.events.get()]
                while not item.events.empty():
                    waiting.append(item.events.get_nowait())
                chunks: list[bytes] = []
                for event in waiting:
                    if event is GONE:
                        model.stats["client_gone"] += 1
                        return
                    if event is EXPIRED:
                        await flush(chunks)
                        raise deadline_error(limits.current().request_timeout_s)
                    if isinstance(event, StreamEnd):
                        await flush(chunks)
                        if event.error is not None:
                            raise event.error
                        break
                    if isinstance(event, Final):
                        chunks.append(b"event: result\ndata: " + dumps(
                            {"predictions": [event.prediction]}) + b"\n\n")
                    else:
                        chunks.append(b"data: " + dumps(event) + b"\n\n")
                else:
                    await flush(chunks)
                    continue
                break
        except ClientGone:
            return
        except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 - typed 4xx, or 500
            status, reply = error_reply(SHUTTING_DOWN if isinstance(
                exc, asyncio.CancelledError) else exc)
            if not started:
                return await send_json(send, status, dumps(reply))
            await send({"type": "http.response.body", "more_body": True,
                        "body": b"event: error\ndata: " + dumps({**reply, "status": status})
                        + b"\n\n"})
        finally:
            if finish is not None:
                finish()
        if started:
            await send({"type": "http.response.body", "body": b""})

    class HotRoute:
        """The hot handler as a Starlette route endpoint (an ASGI app), so that a request the
        shortcut does not take (a root path, a wrong method) is routed as before."""

        def __init__(self, fn: Any, param: str) -> None:
            self.fn, self.param = fn, param

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if self.fn is v1:
                return await v1(scope["path_params"][self.param], scope, receive, send)
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
        if target.endswith((":predict", ":stream")):
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
        Route("/v1/models/{target}", HotRoute(v1, "target"), methods=["POST"]),
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
                    return await v1(target, scope, receive, send)
            elif path.startswith("/v2/models/") and path.endswith("/infer"):
                name = path[11:-6]
                if name and "/" not in name:
                    return await hot(v2_infer, name, scope, receive, send)
        await routed(scope, receive, send)

    guarded = BrowserGuard(app, config)
    guarded.starlette = routed  # type: ignore[attr-defined]
    return guarded


def openapi_spec(models: Mapping[str, ServedModel]) -> dict:
    """An OpenAPI 3.1 description of the routes, the model names as an enum."""
    name = {"name": "name", "in": "path", "required": True,
            "schema": {"type": "string", "enum": list(models)}}
    err = {"description": "a JSON error", "content": {"application/json": {"schema": {
        "type": "object", "properties": {"error": {"type": "string"},
                                         "code": {"type": "string"}}}}}}
    ok = {"description": "OK", "content": {"application/json": {}}}
    # 400 bad input, 403 another origin, 404 no such model, 408 body too slow, 413 input over
    # a size limit, 415 not JSON, 421 Host not allowed, 422 work over a limit, 503 queue full,
    # 504 deadline.
    errors = {str(code): err for code in (400, 403, 404, 408, 413, 415, 421, 422, 503, 504)}
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
                "responses": {"200": ok, **errors}}},
            "/v1/models/{name}:stream": {"post": {
                "summary": "one instance's output as server-sent events while it is produced "
                           "(generators, translators, captioners, streaming recognizers)",
                "description": "The body is :predict's with one instance. Events: one "
                               "'data: {json}' per piece ({\"delta\": text}, {\"frame\": "
                               "[pitches]} or {\"partial\": transcript}), then 'event: "
                               "result' with what :predict answers; a failure after the first "
                               "event is an 'event: error'.",
                "parameters": [name],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["instances"],
                    "properties": {"instances": {"type": "array", "minItems": 1,
                                                 "maxItems": 1}},
                    "additionalProperties": True}}}},
                "responses": {"200": {"description": "server-sent events",
                                      "content": {"text/event-stream": {
                                          "schema": {"type": "string"}}}}, **errors}}},
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
                "responses": {"200": ok, **errors}}},
            "/stats": {"get": {"summary": "requests, runtime calls and largest batch per model",
                               "responses": {"200": ok}}},
        },
    }
