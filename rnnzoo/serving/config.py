"""What ``rnnzoo serve`` options set (``ServeConfig``), the error a request is answered with
(``ServeError``), and the serve extra."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from rnnzoo.errors import ConfigError, short_repr
from rnnzoo.extras import MissingDependencyError, has_module

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
    # Browser safety. The address the server is bound to: a Host header must name it, a
    # loopback name, an IP address or one of ``allowed_hosts`` (DNS rebinding: a page of
    # evil.example whose name resolves to 127.0.0.1 sends "Host: evil.example"); "*" allows
    # any. ``cors_origins``: the other origins whose pages may call the API ("*": any); by
    # default none, and a request from any other origin is refused (403).
    host: str = "127.0.0.1"
    allowed_hosts: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    # A client must send a request's headers within this (else 408 and the connection is
    # closed: a client trickling header bytes holds no connection open), and at most this many
    # header bytes (else 431).
    header_timeout_s: float = 10.0
    max_header_bytes: int = 64 * 1024

    def __post_init__(self) -> None:
        for name in ("allowed_hosts", "cors_origins"):  # lists from JSON (worker processes)
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) and v.strip()
                                                 for v in value):
                raise ConfigError(f"serve: {name} must be a list of non-empty strings, found "
                                  f"{short_repr(value)}")
            object.__setattr__(self, name, tuple(v.strip() for v in value))
        for origin in self.cors_origins:
            if origin != "*" and (not origin.startswith(("http://", "https://"))
                                  or origin.count("/") != 2):
                raise ConfigError(f"serve: --cors-origin {origin!r}: expected an origin "
                                  "such as https://app.example.com or http://localhost:3000 "
                                  "(scheme, host and port; no path), or *")
        for name in ("max_batch_size", "threads", "max_queue", "max_body_bytes",
                     "max_instances", "max_header_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"serve: {name} must be an integer >= 1, found "
                                  f"{short_repr(value)}")
        for name in ("max_delay_ms", "body_timeout_s", "header_timeout_s"):
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
    saying what to change (``extra``: more fields of the JSON body, such as the limit's
    name)."""

    def __init__(self, status: int, code: str, message: str,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra or {}


class ClientGone(Exception):
    """The client closed the connection before its answer: there is no one to answer, and its
    work is stopped."""


class PortInUseError(ConfigError):
    """``rnnzoo serve``'s address is taken (another server?): one line, exit status 1."""
