"""Running the server: uvicorn in one process, or N worker processes that rebuild the app from
the environment."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from typing import Any

from rnnzoo.errors import ConfigError
from rnnzoo.serving.app import create_app
from rnnzoo.serving.config import ServeConfig, require_serve_extra
from rnnzoo.serving.loading import load_models

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
