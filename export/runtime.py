"""Run an rnnzoo ONNX bundle with onnxruntime and numpy only (no TensorFlow, no Keras).

    from rnnzoo.export import runtime
    clf = runtime.load("bundles/sst2")               # verifies sha256 of every file
    labels, probs = clf.predict(["a gorgeous film", "a tedious mess"])
    clf = runtime.load("bundles/sst2", expected_digest="3f1c...")  # pins the whole bundle

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
    CHECKSUMS_FILE,
    DECODER_FILE,
    ENCODER_FILE,
    MODEL_FILE,
    BundleDigestError,
    BundleError,
    BundleRuntime,
    bundle_digest,
    check_tokens,
    read_manifest,
    session_options,
)

from rnnzoo.errors import ConfigError

__all__ = ["BUNDLE_FILE", "BUNDLE_FORMAT", "CHECKSUMS_FILE", "DECODER_FILE", "ENCODER_FILE",
           "MODEL_FILE", "BundleDigestError", "BundleError", "BundleRuntime", "bundle_digest",
           "check_tokens", "load", "read_manifest", "session_options"]


def load(path: str | os.PathLike, *, expected_digest: str | None = None,
         **kwargs: Any) -> BundleRuntime:
    """Open a bundle with the runtime class of its task type.

    ``expected_digest`` pins the whole bundle (64 hex digits, as ``rnnzoo export`` prints it,
    the preset's ``metadata.json`` records it under ``onnx.<precision>.digest``, and
    ``sha256sum SHA256SUMS`` computes it; a ``sha256:`` prefix is accepted): the files are
    verified whatever ``verify`` says, and another bundle raises ``BundleDigestError`` (a
    ``BundleError``) before any graph is opened. The per-file checksums catch corruption and
    edits (``bundle.json`` included); only the pin catches a bundle replaced hashes and all.

    Keyword arguments: ``providers`` (e.g. ``["CUDAExecutionProvider", "CPUExecutionProvider"]``),
    ``intra_op_threads`` (default 1; ``"auto"``: one thread below 8 rows, every granted core
    from there), ``inter_op_threads`` (> 1: independent nodes run in parallel), ``spinning``
    (default off; see ``session_options``), ``graph_options`` (the same three per graph, e.g. a
    translator's per-token ``{"decoder": {"intra_op_threads": 2, "spinning": True}}``),
    ``verify`` (sha256, default on). The loaded bundle's ``digest`` and ``stream_spec`` (which
    inputs are recurrent state) are attributes.
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
    return cls(path, expected_digest=expected_digest, **kwargs)
