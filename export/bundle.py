"""The bundle format and the base runtime: onnxruntime sessions over a verified bundle directory.

Task types subclass :class:`BundleRuntime` with their user call (``rnnzoo.tasks.*``);
``rnnzoo.export.runtime.load`` picks the subclass from the bundle's task. A bundle is a
directory: ``model.onnx`` (or ``encoder_model.onnx`` + ``decoder_model.onnx``), ``bundle.json``
(task, family, inputs/outputs, opset, validation result, versions, sha256 of every file) and
``assets/`` (tokenizer JSON, labels). The tokenizer is the same JSON tokenizer the Keras side
used, and inputs are post-padded, as the fused recurrent operators require.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo.errors import DataError, RnnzooError
from rnnzoo.io import read_json, verify_files

BUNDLE_FILE = "bundle.json"
BUNDLE_FORMAT = "rnnzoo.onnx_bundle.v1"
MODEL_FILE = "model.onnx"
ENCODER_FILE = "encoder_model.onnx"
DECODER_FILE = "decoder_model.onnx"


class BundleError(RnnzooError, ValueError):
    """A bundle directory is missing, malformed or was modified after export."""


def read_manifest(path: str | os.PathLike, verify: bool = True) -> dict:
    """Read ``bundle.json`` and (by default) verify the sha256 of every file it lists."""
    path = Path(path)
    manifest_path = path / BUNDLE_FILE
    manifest = read_json(manifest_path, BundleError, "expected a directory written by "
                         "rnnzoo.export.to_onnx / `rnnzoo export`")
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise BundleError(f"{manifest_path}: expected format {BUNDLE_FORMAT!r}, found {found!r}")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise BundleError(f"{manifest_path}: 'files' must map file names to sha256")
    if verify:
        verify_files(path, files, BUNDLE_FILE, BundleError, "re-export the bundle")
    return manifest


def session_options(intra_op_threads: int = 1, inter_op_threads: int = 1,
                    spinning: bool = False) -> Any:
    """One intra-op thread behaves on a shared machine. Spinning threads are off by default
    because they degrade badly when cores are shared; a decoding loop that owns its cores
    gains from ``intra_op_threads=2, spinning=True`` (workers stay awake between the
    back-to-back step calls instead of being woken for every node)."""
    import onnxruntime as ort

    if not isinstance(intra_op_threads, int) or intra_op_threads < 0:
        raise BundleError(f"intra_op_threads must be an integer >= 0 (0: one per core), "
                          f"got {intra_op_threads!r}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = intra_op_threads
    opts.inter_op_num_threads = inter_op_threads
    spin = "1" if spinning else "0"
    opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
    opts.add_session_config_entry("session.inter_op.allow_spinning", spin)
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return opts


class BundleRuntime:
    """Sessions for every graph of a bundle, plus input checks shared by the families."""

    def __init__(
        self,
        path: str | os.PathLike,
        providers: Sequence[str] | None = None,
        intra_op_threads: int = 1,
        inter_op_threads: int = 1,
        verify: bool = True,
        spinning: bool = False,
        graph_options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        self.manifest = read_manifest(self.path, verify=verify)
        available = ort.get_available_providers()
        providers = list(providers or ["CPUExecutionProvider"])
        missing = [p for p in providers if p not in available]
        if missing:
            raise BundleError(
                f"execution provider(s) {missing} not available in this onnxruntime build "
                f"(available: {available}); install onnxruntime-gpu for CUDAExecutionProvider"
            )
        graphs = self.manifest["graphs"]
        base = {"intra_op_threads": intra_op_threads, "inter_op_threads": inter_op_threads,
                "spinning": spinning}
        graph_options = dict(graph_options or {})
        for name, given in graph_options.items():
            if name not in graphs:
                raise BundleError(f"graph_options: no graph {name!r} in this bundle "
                                  f"(graphs: {', '.join(graphs)})")
            unknown = sorted(set(given) - set(base))
            if unknown:
                raise BundleError(f"graph_options[{name!r}]: unknown option(s) {unknown}; "
                                  f"expected {', '.join(base)}")
        self.sessions = {}
        for name, graph in graphs.items():
            opts = session_options(**{**base, **graph_options.get(name, {})})
            self.sessions[name] = ort.InferenceSession(
                str(self.path / graph["file"]), sess_options=opts, providers=providers
            )
        self.family = self.manifest["family"]
        self.entry = self.manifest["entry"]

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.entry!r} ({self.manifest.get('precision')}) "
            f"at {self.path}>"
        )

    def asset(self, name: str) -> Path:
        path = self.path / "assets" / name
        if not path.is_file():
            raise BundleError(f"{self.path}: missing assets/{name}")
        return path

    def input_names(self, graph: str) -> list[str]:
        return [i.name for i in self.sessions[graph].get_inputs()]

    def output_names(self, graph: str) -> list[str]:
        return [o.name for o in self.sessions[graph].get_outputs()]

    def run(self, graph: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one graph; returns its outputs by name."""
        sess = self.sessions[graph]
        names = [o.name for o in sess.get_outputs()]
        return dict(zip(names, sess.run(names, dict(feeds))))


def check_tokens(tokens: Any, vocab_size: int, where: str = "tokens") -> np.ndarray:
    """Validate a token batch: int32, [batch, time], non-empty, ids in range, post-padded."""
    if not isinstance(tokens, np.ndarray):
        raise DataError(f"{where}: expected a numpy array, got {type(tokens).__name__}")
    if tokens.dtype != np.int32:
        raise DataError(
            f"{where}: expected dtype int32, got {tokens.dtype}; "
            "use np.asarray(tokens, dtype=np.int32)"
        )
    if tokens.ndim != 2:
        raise DataError(f"{where}: expected rank 2 [batch, time], got shape {tokens.shape}")
    if tokens.shape[0] == 0:
        raise DataError(f"{where}: empty batch (shape {tokens.shape}); pass at least one row")
    if tokens.shape[1] == 0:
        raise DataError(f"{where}: zero time steps (shape {tokens.shape})")
    lo, hi = int(tokens.min()), int(tokens.max())
    if lo < 0 or hi >= vocab_size:
        bad = lo if lo < 0 else hi
        raise DataError(
            f"{where}: token id {bad} out of range [0, {vocab_size}); "
            "encode with the bundle's tokenizer (assets/tokenizer.json)"
        )
    from rnnzoo.data.tokenizer import check_post_padded

    check_post_padded(tokens, where)
    return tokens
