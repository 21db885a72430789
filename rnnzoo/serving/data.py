"""Plain JSON data in and out of the server: request bodies, predictions split per instance."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from rnnzoo.serving.config import ServeError

try:  # the serve extra brings orjson: 3-10x faster JSON than the standard library
    import orjson as _orjson
except ImportError:  # pragma: no cover - the standard library is the fallback
    _orjson = None


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
