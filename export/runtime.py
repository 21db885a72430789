"""Run an rnnzoo ONNX bundle with onnxruntime and numpy only (no TensorFlow, no Keras).

    from rnnzoo.export import runtime
    clf = runtime.load("bundles/sst2")               # verifies sha256 of every file
    labels, probs = clf.predict(["a gorgeous film", "a tedious mess"])

``load`` opens a bundle with the runtime class of its task type (``predict`` for classifiers,
``translate`` for translators, ...): the same user call, with the same arguments and results, as
the Keras model the bundle was exported from.
"""

from __future__ import annotations

import os
from typing import Any

from rnnzoo.export.bundle import (
    BUNDLE_FILE,
    BUNDLE_FORMAT,
    DECODER_FILE,
    ENCODER_FILE,
    MODEL_FILE,
    BundleError,
    BundleRuntime,
    check_tokens,
    read_manifest,
    session_options,
)

from rnnzoo.errors import ConfigError

__all__ = ["BUNDLE_FILE", "BUNDLE_FORMAT", "DECODER_FILE", "ENCODER_FILE", "MODEL_FILE",
           "BundleError", "BundleRuntime", "check_tokens", "load", "read_manifest",
           "session_options"]


def load(path: str | os.PathLike, **kwargs: Any) -> BundleRuntime:
    """Open a bundle with the runtime class of its task type.

    Keyword arguments: ``providers`` (e.g. ``["CUDAExecutionProvider", "CPUExecutionProvider"]``),
    ``intra_op_threads`` (default 1; ``"auto"``: one thread below 8 rows, every granted core
    from there), ``inter_op_threads`` (> 1: independent nodes run in parallel), ``spinning``
    (default off; see ``session_options``), ``graph_options`` (the same three per graph, e.g. a
    translator's per-token ``{"decoder": {"intra_op_threads": 2, "spinning": True}}``),
    ``verify`` (sha256, default on).
    """
    from rnnzoo.apps import runtime_class

    manifest = read_manifest(path, verify=False)
    task = manifest.get("task")
    try:
        cls = runtime_class(task) if isinstance(task, str) else None
    except ConfigError:
        cls = None
    if cls is None:
        raise BundleError(f"{path}: no runtime for task {task!r} in this version of rnnzoo")
    return cls(path, **kwargs)
