"""The bundle format and the base runtime: onnxruntime sessions over a verified bundle directory.

Task types subclass :class:`BundleRuntime` with their user call
(``rnnzoo/apps/<task>/inference.py``);
``rnnzoo.export.runtime.load`` picks the subclass from the bundle's task. A bundle is a
directory: ``model.onnx`` (or ``encoder_model.onnx`` + ``decoder_model.onnx``), ``bundle.json``
(task, family, inputs/outputs, opset, validation result, versions, sha256 of every file) and
``assets/`` (tokenizer JSON, labels) and ``SHA256SUMS`` (the sha256 of every file,
``bundle.json`` included; its own sha256 is the bundle digest: ``rnnzoo.export.integrity``).
``bundle.json``'s ``stream`` object says which graph inputs are recurrent state and how to carry
them (``rnnzoo.export.streamspec``). The tokenizer is the same JSON tokenizer the Keras side
used, and inputs are post-padded, as the fused recurrent operators require.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rnnzoo.export.errors import BundleDigestError, BundleError
from rnnzoo.export.integrity import (
    CHECKSUMS_FILE,
    check_pinned,
    digest_of,
    normalise_digest,
    read_checksums,
    write_checksums,
)
from rnnzoo.export.streamspec import check_stream

from rnnzoo.errors import ConfigError, DataError, short_repr
from rnnzoo.io import (
    atomic_write_text,
    read_json,
    resolve_member,
    sha256_file,
    unlisted_files,
    verify_files,
)

__all__ = ["BUNDLE_FILE", "BUNDLE_FORMAT", "CHECKSUMS_FILE", "BundleDigestError", "BundleError",
           "BundleRuntime", "bundle_digest", "read_manifest", "write_manifest"]

BUNDLE_FILE = "bundle.json"
BUNDLE_FORMAT = "rnnzoo.onnx_bundle.v1"
MODEL_FILE = "model.onnx"
ENCODER_FILE = "encoder_model.onnx"
DECODER_FILE = "decoder_model.onnx"


_MANIFEST_STRINGS = ("task", "family", "entry")


def read_manifest(path: str | os.PathLike, verify: bool = True,
                  expected_digest: str | None = None) -> dict:
    """Read ``bundle.json``, check its structure and (by default) every file of the bundle.

    Always: the manifest's file names are plain relative paths inside the bundle (no ``..``,
    no absolute path, no symbolic link), every graph file is one of them, and its ``stream``
    description matches the graphs. With ``verify``: every listed file has its sha256, the
    bundle holds no file that is not listed, and ``SHA256SUMS`` (which ``bundle.json`` names
    under ``checksums``; bundles from before it have none) covers ``bundle.json`` too, so an
    edited manifest is refused. ``expected_digest`` (implies ``verify``) pins the whole bundle:
    another digest raises :class:`BundleDigestError`."""
    manifest, _ = _read_and_verify(path, verify, expected_digest)
    return manifest


def bundle_digest(path: str | os.PathLike) -> str:
    """The digest of a bundle directory after verifying every file: the sha256 of its
    ``SHA256SUMS`` listing (computed the same way for a bundle from before that file)."""
    return _read_and_verify(path, True, None)[1]


def _read_and_verify(path: Any, verify: bool, expected_digest: Any) -> tuple[dict, str | None]:
    if not isinstance(path, (str, os.PathLike)):
        raise BundleError(f"expected a bundle directory path, found {type(path).__name__}")
    pinned = None if expected_digest is None else normalise_digest(expected_digest)
    path = Path(path)
    manifest_path = path / BUNDLE_FILE
    manifest = read_json(manifest_path, BundleError, "expected a directory written by "
                         "rnnzoo.export.to_onnx / `rnnzoo export`")
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise BundleError(f"{manifest_path}: expected format {BUNDLE_FORMAT!r}, found "
                          f"{_short(found)}")
    for key in _MANIFEST_STRINGS:
        if not isinstance(manifest.get(key), str) or not manifest[key]:
            raise BundleError(f"{manifest_path}: {key!r} must be a non-empty string, found "
                              f"{_short(manifest.get(key))}; re-export the bundle")
    if not isinstance(manifest.get("preprocessing", {}), dict):
        raise BundleError(f"{manifest_path}: 'preprocessing' must be a mapping; re-export the "
                          "bundle")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise BundleError(f"{manifest_path}: 'files' must map file names to sha256")
    for rel in files:
        resolve_member(path, rel, BundleError, BUNDLE_FILE)
        if rel in (BUNDLE_FILE, CHECKSUMS_FILE):
            raise BundleError(f"{manifest_path}: 'files' may not list {rel} (it covers the "
                              "other files); re-export the bundle")
    graphs = manifest.get("graphs")
    if not isinstance(graphs, dict) or not graphs:
        raise BundleError(f"{manifest_path}: 'graphs' must map graph names to their files; "
                          "re-export the bundle")
    for name, graph in graphs.items():
        file = graph.get("file") if isinstance(graph, dict) else None
        if not isinstance(file, str) or file not in files:
            raise BundleError(f"{manifest_path}: graph {_short(name)} names file "
                              f"{_short(file)}, which 'files' does not list (so it cannot be "
                              "verified); re-export the bundle")
    checksums = manifest.get("checksums")
    if checksums not in (None, CHECKSUMS_FILE):
        raise BundleError(f"{manifest_path}: 'checksums' must be {CHECKSUMS_FILE!r}, found "
                          f"{_short(checksums)}; re-export the bundle")
    if "stream" in manifest:
        check_stream(manifest, str(manifest_path))
    if not (verify or pinned):
        return manifest, None
    fix = "re-export the bundle"
    has_sums = checksums is not None or (path / CHECKSUMS_FILE).exists() \
        or (path / CHECKSUMS_FILE).is_symlink()
    if has_sums:
        sums = read_checksums(path)
        want = {**files, BUNDLE_FILE: sums.get(BUNDLE_FILE)}
        if set(sums) != set(want):
            odd = sorted(set(sums) ^ set(want))[0]
            raise BundleError(f"{path}: {CHECKSUMS_FILE} and {BUNDLE_FILE} list different "
                              f"files ({odd} is in one only); {fix}")
        verify_files(path, sums, CHECKSUMS_FILE, BundleError, fix)
        for rel, digest in files.items():  # the same bytes were hashed: the listings agree
            if sums[rel] != digest:
                raise BundleError(f"{manifest_path}: the sha256 of {rel} differs from "
                                  f"{CHECKSUMS_FILE}'s; {fix}")
    else:  # a bundle from before SHA256SUMS: bundle.json is hashed, not checked
        sums = {**verify_files(path, files, BUNDLE_FILE, BundleError, fix),
                BUNDLE_FILE: sha256_file(manifest_path)}
    extra = unlisted_files(path, [*files, BUNDLE_FILE, CHECKSUMS_FILE])
    if extra:
        raise BundleError(f"{path}: {extra[0]} is not listed in {BUNDLE_FILE}, so it cannot "
                          "be verified; remove it, or re-export the bundle")
    digest = digest_of(sums)
    if pinned is not None:
        check_pinned(path, pinned, digest)
    return manifest, digest


def write_manifest(directory: str | os.PathLike, manifest: dict) -> str:
    """Write ``bundle.json`` (its ``files`` set to the sha256 of every other file of
    ``directory``) and then ``SHA256SUMS`` (every file, ``bundle.json`` included); return the
    bundle digest. Everything that writes or rewrites a bundle's files ends with this."""
    directory = Path(directory)
    files = {}
    for file in sorted(directory.rglob("*")):
        rel = file.relative_to(directory).as_posix()
        if file.is_file() and rel not in (BUNDLE_FILE, CHECKSUMS_FILE):
            files[rel] = sha256_file(file)
    manifest["files"] = files
    manifest["checksums"] = CHECKSUMS_FILE
    text = json.dumps(manifest, indent=2) + "\n"
    atomic_write_text(directory / BUNDLE_FILE, text)
    return write_checksums(directory, {**files, BUNDLE_FILE: sha256_file(directory /
                                                                         BUNDLE_FILE)})


def _short(value: Any, limit: int = 60) -> str:
    return short_repr(value, limit)


def _check_threads(name: str, value: Any, allow_auto: bool = False) -> int | str:
    if allow_auto and value == AUTO:
        return value
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        hint = ', or "auto" (1 thread for small batches, every granted core from ' \
            f'{AUTO_MIN_BATCH} rows)' if allow_auto else ""
        raise BundleError(f"{name} must be an integer >= 0 (0: one per core){hint}, got "
                          f"{value!r}")
    return value


AUTO = "auto"
# With intra_op_threads="auto", a call whose first input has at least this many rows runs on
# every granted core; smaller ones on one thread (benchmarks/bench_inference.py measures where
# two threads start to pay: waking a second thread costs more than it saves on a small batch).
AUTO_MIN_BATCH = 8


def granted_cores() -> int:
    """The cores this process may run on (its CPU affinity, which container and batch-system
    limits set), not the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def session_options(intra_op_threads: int = 1, inter_op_threads: int = 1,
                    spinning: bool = False) -> Any:
    """One intra-op thread behaves on a shared machine. Spinning threads are off by default
    because they degrade badly when cores are shared; a decoding loop that owns its cores
    gains from ``intra_op_threads=2, spinning=True`` (workers stay awake between the
    back-to-back step calls instead of being woken for every node). ``inter_op_threads`` > 1
    switches to parallel execution (0: one per core), where independent nodes run at once."""
    import onnxruntime as ort

    _check_threads("intra_op_threads", intra_op_threads)
    _check_threads("inter_op_threads", inter_op_threads)
    if not isinstance(spinning, bool):
        raise BundleError(f"spinning must be True or False, got {spinning!r}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = intra_op_threads
    opts.inter_op_num_threads = inter_op_threads
    spin = "1" if spinning else "0"
    opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
    opts.add_session_config_entry("session.inter_op.allow_spinning", spin)
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if inter_op_threads != 1:
        # onnxruntime only uses inter-op threads in parallel execution mode: then independent
        # nodes, e.g. the two directions of a bidirectional layer, run at the same time.
        opts.execution_mode = ort.ExecutionMode.ORT_PARALLEL
    return opts


def _check_providers(providers: Any, available: list[str]) -> list[str]:
    """``providers`` as a list of available execution provider names, or ``BundleError``."""
    if providers is None:
        return ["CPUExecutionProvider"]
    if isinstance(providers, str) or not isinstance(providers, (list, tuple)) or not all(
            isinstance(p, str) and p for p in providers):
        raise BundleError(f"providers: expected a list of execution provider names such as "
                          f"['CPUExecutionProvider'], found {_short(providers)}")
    if not providers:
        return ["CPUExecutionProvider"]
    missing = [p for p in providers if p not in available]
    if missing:
        raise BundleError(
            f"execution provider(s) {missing} not available in this onnxruntime build "
            f"(available: {available}); install onnxruntime-gpu for CUDAExecutionProvider"
        )
    return list(providers)


def _is_onnxruntime_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("onnxruntime")


_ORT_TYPES = {"tensor(int32)": np.int32, "tensor(int64)": np.int64, "tensor(float)": np.float32,
              "tensor(double)": np.float64, "tensor(bool)": np.bool_}


class BundleRuntime:
    """Sessions for every graph of a bundle, plus input checks shared by the families."""

    def __init__(
        self,
        path: str | os.PathLike,
        providers: Sequence[str] | None = None,
        intra_op_threads: int | str = 1,
        inter_op_threads: int = 1,
        verify: bool = True,
        spinning: bool = False,
        graph_options: Mapping[str, Mapping[str, Any]] | None = None,
        expected_digest: str | None = None,
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        self.manifest, self._digest = _read_and_verify(self.path, verify, expected_digest)
        providers = _check_providers(providers, ort.get_available_providers())
        graphs = self.manifest["graphs"]
        base = {"intra_op_threads": intra_op_threads, "inter_op_threads": inter_op_threads,
                "spinning": spinning}
        _check_threads("intra_op_threads", intra_op_threads, allow_auto=True)
        if graph_options is not None and not isinstance(graph_options, Mapping):
            raise BundleError(f"graph_options: expected a mapping of graph name to options, "
                              f"found {_short(graph_options)}")
        graph_options = dict(graph_options or {})
        for name, given in graph_options.items():
            if name not in graphs:
                raise BundleError(f"graph_options: no graph {name!r} in this bundle "
                                  f"(graphs: {', '.join(graphs)})")
            if not isinstance(given, Mapping):
                raise BundleError(f"graph_options[{name!r}]: expected a mapping of options, "
                                  f"found {_short(given)}")
            unknown = sorted(set(given) - set(base))
            if unknown:
                raise BundleError(f"graph_options[{name!r}]: unknown option(s) {unknown}; "
                                  f"expected {', '.join(base)}")
        self.sessions = {}
        # intra_op_threads="auto": self.sessions run small batches on one thread; a second
        # session on every granted core is opened the first time a graph gets a batch of
        # AUTO_MIN_BATCH rows or more (so batch-1 use never pays for it).
        self._wide: dict[str, Any] = {}
        self._wide_lock = threading.Lock()
        self._output_names: dict[str, list[str]] = {}
        self._wide_options: dict[str, dict] = {}
        self._providers = providers
        for name, graph in graphs.items():
            options = {**base, **graph_options.get(name, {})}
            _check_threads(f"graph_options[{name!r}].intra_op_threads",
                           options["intra_op_threads"], allow_auto=True)
            if options["intra_op_threads"] == AUTO:
                cores = granted_cores()
                options["intra_op_threads"] = 1
                if cores > 1:
                    self._wide_options[name] = {**options, "intra_op_threads": cores}
            self.sessions[name] = self._open(graph["file"], options)
        self.family = self.manifest["family"]
        self.entry = self.manifest["entry"]
        self._stream = check_stream(self.manifest, str(self.path / BUNDLE_FILE))
        for name, spec in self._stream.items():  # the manifest against the graphs themselves
            ins, outs = set(self.input_names(name)), set(self.output_names(name))
            missing = [s["input"] for s in spec["state"] if s["input"] not in ins] + [
                s["output"] for s in spec["state"] if s["output"] not in outs]
            if missing:
                raise BundleError(f"{self.path / BUNDLE_FILE}: stream.graphs.{name} names "
                                  f"{missing[0]!r}, which graph {name!r} does not have; "
                                  "re-export the bundle")

    @property
    def digest(self) -> str:
        """The bundle digest (sha256 of ``SHA256SUMS``): what ``rnnzoo export`` prints and
        ``expected_digest`` pins. Known without extra reads when the bundle was verified at
        load; otherwise every file is verified now."""
        if self._digest is None:
            self._digest = bundle_digest(self.path)
        return self._digest

    @property
    def stream_spec(self) -> dict[str, dict]:
        """The graphs that carry recurrent state, from ``bundle.json``'s ``stream`` (checked
        against the graphs at load; derived from the inputs and outputs for a bundle exported
        before it existed): per graph, ``state`` (input, output, dtype, shape, initial),
        ``inputs``, ``outputs`` and the task's facts (``start``, ``symbols``). A copy."""
        import copy

        return copy.deepcopy(self._stream)

    def _open(self, rel: str, options: Mapping[str, Any]) -> Any:
        import onnxruntime as ort

        file = resolve_member(self.path, rel, BundleError, BUNDLE_FILE)
        try:
            return ort.InferenceSession(str(file), sess_options=session_options(**options),
                                        providers=self._providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own classes
            if not _is_onnxruntime_error(exc):
                raise
            raise BundleError(f"{file}: onnxruntime cannot load it "
                              f"({' '.join(str(exc).split())[:300]}); re-export the "
                              "bundle") from None

    def session_for(self, graph: str, rows: int) -> Any:
        """The session that runs ``graph`` on a batch of ``rows``: with ``"auto"`` threads, the
        one-thread session below ``AUTO_MIN_BATCH`` rows and the all-cores one from there."""
        sess = self._graph(graph)
        if rows < AUTO_MIN_BATCH or graph not in self._wide_options:
            return sess
        wide = self._wide.get(graph)
        if wide is None:
            with self._wide_lock:  # a server's threads may ask at once: open it once
                wide = self._wide.get(graph)
                if wide is None:
                    wide = self._wide[graph] = self._open(
                        self.manifest["graphs"][graph]["file"], self._wide_options[graph])
        return wide

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.entry!r} ({self.manifest.get('precision')}) "
            f"at {self.path}>"
        )

    def asset(self, name: str) -> Path:
        """The path of ``assets/<name>``, which ``bundle.json`` must list (and, when the bundle
        was verified, its sha256 matched): an unlisted file is never opened."""
        rel = f"assets/{name}" if isinstance(name, str) else name
        if not isinstance(name, str) or rel not in self.manifest["files"]:
            raise BundleError(f"{self.path}: {_short(rel)} is not listed in {BUNDLE_FILE} "
                              "(missing from the bundle); re-export the bundle")
        path = resolve_member(self.path, rel, BundleError, BUNDLE_FILE)
        if not path.is_file():
            raise BundleError(f"{self.path}: missing {rel}")
        return path

    def setting(self, key: str, default: Any = None) -> int:
        """A positive integer of the manifest's ``preprocessing`` (``max_length``,
        ``vocab_size``, ...), or ``BundleError`` naming it."""
        value = self.manifest.get("preprocessing", {}).get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise BundleError(f"{self.path / BUNDLE_FILE}: preprocessing.{key} must be an "
                              f"integer >= 1, found {_short(value)}; re-export the bundle")
        return value

    def _graph(self, graph: Any) -> Any:
        if not isinstance(graph, str) or graph not in self.sessions:
            raise DataError(f"no graph {_short(graph)} in this bundle (graphs: "
                            f"{', '.join(self.sessions)})")
        return self.sessions[graph]

    def input_names(self, graph: str) -> list[str]:
        return [i.name for i in self._graph(graph).get_inputs()]

    def output_names(self, graph: str) -> list[str]:
        return [o.name for o in self._graph(graph).get_outputs()]

    def _check_feeds(self, graph: str, feeds: Any) -> dict[str, np.ndarray]:
        """Feed names, array types, dtypes and ranks against the graph's inputs."""
        sess = self._graph(graph)
        inputs = {i.name: i for i in sess.get_inputs()}
        if not isinstance(feeds, Mapping):
            raise DataError(f"{graph}: feeds must map input names to arrays, found "
                            f"{type(feeds).__name__}; inputs: {', '.join(inputs)}")
        missing = [n for n in inputs if n not in feeds]
        unknown = [str(n) for n in feeds if n not in inputs]
        if missing or unknown:
            parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
                [f"unknown {', '.join(_short(n, 40) for n in unknown)}"] if unknown else [])
            raise DataError(f"{graph}: wrong feed names ({'; '.join(parts)}); this graph's "
                            f"inputs are {', '.join(inputs)}")
        checked = {}
        for name, spec in inputs.items():
            value = feeds[name]
            if not isinstance(value, np.ndarray):
                raise DataError(f"{graph}: input {name!r} must be a numpy array, found "
                                f"{type(value).__name__}")
            want = _ORT_TYPES.get(spec.type)
            if want is not None and value.dtype != want:
                raise DataError(f"{graph}: input {name!r} must have dtype "
                                f"{np.dtype(want).name}, found {value.dtype}")
            if len(spec.shape) != value.ndim:
                raise DataError(f"{graph}: input {name!r} must have rank {len(spec.shape)} "
                                f"({spec.shape}), found shape {value.shape}")
            checked[name] = value
        return checked

    def run(self, graph: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one graph; returns its outputs by name. Wrong names, dtypes or ranks, and
        anything onnxruntime rejects, raise ``DataError`` naming the graph and input."""
        return self.run_unchecked(graph, self._check_feeds(graph, feeds))

    def run_unchecked(self, graph: str, feeds: Mapping[str, np.ndarray]
                      ) -> dict[str, np.ndarray]:
        """``run`` without the per-call checks of names, dtypes and ranks, for a decoding loop
        that feeds a graph the arrays it and the encoder returned (``graph_step`` of
        ``rnnzoo.engines.decoding`` checks the first step through ``run``): at batch 1 the checks
        cost about a tenth of a decoder step. onnxruntime's own rejections still raise
        ``DataError``."""
        first = next(iter(feeds.values()), None)
        sess = self.session_for(graph, first.shape[0] if first is not None and first.ndim
                                else 1)
        names = self._output_names.get(graph)
        if names is None:
            names = self._output_names[graph] = [o.name for o in sess.get_outputs()]
        try:
            return dict(zip(names, sess.run(names, feeds)))
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own classes
            if not _is_onnxruntime_error(exc):
                raise
            raise DataError(f"{graph}: onnxruntime rejected the inputs: "
                            f"{' '.join(str(exc).split())[:300]}") from None


def check_count(name: str, value: Any, what: str = "") -> int:
    """An integer argument >= 1 (a batch size, a length), or ``ConfigError`` naming it: a
    ``batch_size=-1`` must not return zeros."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)) \
            or value < 1:
        hint = f" ({what})" if what else ""
        raise ConfigError(f"{name}: expected an integer >= 1{hint}, found {_short(value)}")
    return int(value)


def as_texts(texts: Any, where: str, allow_empty: bool = False) -> list[str]:
    """A string or a list of strings as a list, or ``DataError``: bytes, numbers, ``None`` or
    a bare iterator are refused with what was found."""
    if isinstance(texts, str):
        return [texts]
    if isinstance(texts, (bytes, bytearray)) or not isinstance(texts, (Sequence, np.ndarray)):
        raise DataError(f"{where}: expected a string or a list of strings, found "
                        f"{type(texts).__name__} (results come back in the order given, so "
                        "an unordered set or a mapping is refused)")
    texts = list(texts)
    if not texts and not allow_empty:
        raise DataError(f"{where}: empty list of texts")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise DataError(f"{where}: expected strings, found {type(text).__name__} at "
                            f"position {i}")
    return texts


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
