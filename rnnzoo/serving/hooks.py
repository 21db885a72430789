"""What every served request goes through before it is queued: the task-type hooks (a runtime's
verb, options and demo, with their defaults), the limits a request is checked against, and the
mapping of runtime errors to client errors (HTTP 4xx) that name the problem."""

from __future__ import annotations

import inspect
import re
import tempfile
from collections.abc import Mapping
from typing import Any

from rnnzoo import limits
from rnnzoo.errors import RnnzooError, short_repr
from rnnzoo.serving.config import ServeError
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
    fn = getattr(runtime, task_verb(runtime).replace("-", "_"))
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
    fn = getattr(runtime, task_verb(runtime).replace("-", "_"))
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
    """A typed rnnzoo error raised by a user call on bad input, as a 4xx (None: not the
    client's fault): a limit as 413 (an input too large) or 422 (too much work asked), naming
    the limit and how to raise it; any other as 400."""
    from rnnzoo.export.bundle import BundleError

    if isinstance(exc, limits.LimitError):
        return limit_error(exc)
    if isinstance(exc, RnnzooError) and not isinstance(exc, BundleError):
        return ServeError(400, "invalid_input", hide_temporary_paths(str(exc)))
    return None


_TEMPORARY = re.compile(re.escape(tempfile.gettempdir().rstrip("/\\")) + r"[/\\][^\s:,;'\"]+")


def hide_temporary_paths(message: str) -> str:
    """A message for a client without the server's temporary files (an upload written to a
    temporary file for a reader is named in its errors)."""
    return _TEMPORARY.sub("the uploaded file", message)


# Limits on the work a request asks for (a length to decode, beams, steps): 422. Every other
# limit bounds the size of an input: 413 (Payload Too Large).
WORK_LIMITS = frozenset({"max_decode_length", "max_beam_width", "max_generation_steps",
                         "request_timeout_s"})


def limit_error(exc: limits.LimitError) -> ServeError:
    """A :class:`rnnzoo.limits.LimitError` as the HTTP error it is (see ``WORK_LIMITS``)."""
    status = 422 if exc.limit in WORK_LIMITS else 413
    return ServeError(status, "limit_exceeded", hide_temporary_paths(str(exc)),
                      {"limit": exc.limit, "maximum": exc.maximum})


# -- limits checked before a request is queued -------------------------------------------------

# Request fields (beside the instances, or inside an instance object) that ask for work, and
# the limit each is checked against. Every task names them so: translate/caption max_length
# and beam, speech beam_width, generate steps.
FIELD_LIMITS = {"max_length": "max_decode_length", "beam": "max_beam_width",
                "beam_width": "max_beam_width", "beam_size": "max_beam_width",
                "steps": "max_generation_steps"}
# Fields holding one text input (a generator's prompt, a text inside an instance object).
TEXT_FIELDS = ("prompt", "text", "sentence", "source")


# Keyword arguments of the user calls that are the server's to choose, never a request's: how
# it batches, whether it streams or writes progress lines to its own stderr, the shape of what
# the call returns. Refused for every model (a **kwargs call would take them).
RESERVED_OPTIONS = frozenset({"batch_size", "progress", "stream", "return_attention",
                              "on_text", "include_primer", "num_samples"})


def check_fields(fields: Mapping[str, Any], where: str) -> None:
    """``LimitError`` for a work field over its limit or a text field over
    ``max_text_chars``; a 400 for a ``seed`` that is not a seed (numpy's generators take an
    integer >= 0)."""
    seed = fields.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                             or not 0 <= seed < 2 ** 63):
        raise ServeError(400, "invalid_input", f"{where}seed: expected an integer from 0 to "
                         f"2**63 - 1 (or null for a random one), found {short_repr(seed)}")
    for key, name in FIELD_LIMITS.items():
        value = fields.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            limits.check(name, value, f"{where}{key}")
    for key in TEXT_FIELDS:
        value = fields.get(key)
        if isinstance(value, str):
            limits.check("max_text_chars", len(value), f"{where}{key} (characters)")


def check_request_limits(instances: list, options: Mapping[str, Any],
                         text_instances: bool) -> None:
    """The limits of ``rnnzoo.limits`` a request can be checked against before any work: the
    number of instances, the work its fields ask for, the length of its texts (string
    instances when the model reads texts). Raises ``LimitError``."""
    limits.check("max_batch_size", len(instances), "instances")
    if options:
        check_fields(options, "")
    cap = limits.current().max_text_chars
    for i, item in enumerate(instances):
        if isinstance(item, str):
            if text_instances and len(item) > cap:
                limits.check("max_text_chars", len(item), f"instances[{i}] (characters)")
        elif isinstance(item, Mapping):
            check_fields(item, f"instances[{i}].")
