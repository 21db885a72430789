"""Running the server: uvicorn in one process, or N worker processes that rebuild the app from
the environment. The listening socket is bound here, once the models are loaded (a port in use
is one line, exit status 1), and handed to uvicorn; its HTTP protocol bounds request headers
(``rnnzoo.serving.protocol``). SIGTERM drains: uvicorn stops accepting, waits for the requests
in flight up to ``graceful_timeout_s``, then cancels what still runs (its work stops at the next
graph run), and ``serve`` returns normally (exit status 0)."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import signal
import socket
import threading
from collections.abc import Sequence
from typing import Any

from rnnzoo import limits
from rnnzoo.errors import ConfigError
from rnnzoo.serving.app import create_app
from rnnzoo.serving.config import PortInUseError, ServeConfig, require_serve_extra
from rnnzoo.serving.loading import load_models

# -- running the server ------------------------------------------------------------------------

_ENV = "RNNZOO_SERVE_SPEC"


def app_from_environment() -> Any:
    """The app factory each uvicorn worker process calls (``--workers N``): the models,
    settings and limits come in ``$RNNZOO_SERVE_SPEC``."""
    spec = json.loads(os.environ[_ENV])
    limits.configure(**spec.get("limits", {}))
    config = ServeConfig(**spec["config"])
    return create_app(load_models(spec["models"], config), config)


def check_port(port: Any) -> int:
    """A TCP port to listen on, 1-65535 (the kernel would silently take 99999 modulo 65536)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(f"serve: --port must be an integer from 1 to 65535, found {port!r}")
    return port


def bind_socket(host: str, port: int) -> socket.socket:
    """The listening socket (bound; uvicorn listens on it), or one line saying why it cannot be
    had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(f"serve: port {port} on {host} is in use (another server?); "
                                 "stop it or choose another port with --port") from None
        reason = exc.strerror or str(exc)
        raise ConfigError(f"serve: cannot listen on {host}:{port} ({reason}); check --host "
                          "and --port") from None
    sock.set_inheritable(True)
    return sock


def serve(specs: Sequence[str], config: ServeConfig, host: str = "127.0.0.1", port: int = 8000,
          workers: int = 1, log_level: str = "info", graceful_timeout_s: float = 30.0) -> None:
    """Load the models and run uvicorn until SIGINT/SIGTERM (in-flight requests finish
    first, within ``graceful_timeout_s``; what still runs then is stopped)."""
    uvicorn = require_serve_extra("uvicorn")
    require_serve_extra("starlette")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"serve: workers must be an integer >= 1, found {workers!r}")
    if isinstance(graceful_timeout_s, bool) or not isinstance(graceful_timeout_s, (int, float)) \
            or not graceful_timeout_s >= 0:
        raise ConfigError(f"serve: graceful_timeout_s must be a number >= 0, found "
                          f"{graceful_timeout_s!r}")
    check_port(port)
    config = dataclasses.replace(config, host=host)  # the Host header check names it
    sock = None
    with _terminable() as state:
        try:
            models = load_models(specs, config)  # fails here, once, on a bad preset or bundle
            sock = bind_socket(host, port)
            from rnnzoo.serving.protocol import protocol_class

            # No proxy-header rewriting: the server never reads client addresses, and
            # uvicorn's check of the peer against forwarded_allow_ips parses an IP address per
            # request. The access log only when it is shown (uvicorn formats its arguments
            # before the level filter).
            common = {"host": host, "port": port, "log_level": log_level,
                      "proxy_headers": False, "http": protocol_class(),
                      "access_log": log_level in ("info", "debug", "trace"),
                      "timeout_graceful_shutdown": graceful_timeout_s,
                      "h11_max_incomplete_event_size": config.max_header_bytes}
            for name, model in models.items():
                print(f"serving {name} ({model.task}, {model.verb}) from {model.source}",
                      flush=True)
            shown = f"[{host}]" if ":" in host else host
            print(f"demo page: http://{shown}:{port}/   API: http://{shown}:{port}/openapi.json",
                  flush=True)
            if workers == 1:
                uv_config = uvicorn.Config(create_app(models, config), **common)
            else:
                os.environ[_ENV] = json.dumps({
                    "models": list(specs), "config": dataclasses.asdict(config),
                    "limits": dataclasses.asdict(limits.current())})
                uv_config = uvicorn.Config("rnnzoo.serving:app_from_environment", factory=True,
                                           workers=workers, **common)
            uv_config.rnnzoo_header_timeout_s = config.header_timeout_s
            uv_config.rnnzoo_max_header_bytes = config.max_header_bytes
            server = uvicorn.Server(uv_config)
            state["serving"] = True
            if workers == 1:
                server.run(sockets=[sock])
            else:
                from uvicorn.supervisors import Multiprocess

                Multiprocess(uv_config, target=server.run, sockets=[sock]).run()
        finally:
            if sock is not None:
                sock.close()


class _Terminated(BaseException):
    """SIGTERM before the server ran (while the models load): nothing to drain."""


class _terminable:
    """SIGTERM handling around ``serve``: before uvicorn runs, SIGTERM ends ``serve`` at once;
    while it runs, uvicorn's own handler drains and, on its way out, raises the signal again to
    the handler it found, this one, which ignores it: ``serve`` returns and the process exits 0
    instead of dying of the signal."""

    def __enter__(self) -> dict:
        self.state = {"serving": False}
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            def on_term(sig: int, frame: Any) -> None:
                if not self.state["serving"]:
                    raise _Terminated
            self.previous = signal.signal(signal.SIGTERM, on_term)
        return self.state

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> bool:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        return kind is _Terminated
