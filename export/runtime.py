"""Run an rnnzoo ONNX bundle with onnxruntime and numpy only (no TensorFlow, no Keras).

    from rnnzoo.export import runtime
    clf = runtime.load("bundles/sst2")               # verifies sha256 of every file
    labels, probs = clf.predict(["a gorgeous film", "a tedious mess"])

A bundle is a directory: ``model.onnx`` (or ``encoder_model.onnx`` + ``decoder_model.onnx``),
``bundle.json`` (family, inputs/outputs, opset, validation result, versions, sha256 of every file)
and ``assets/`` (tokenizer JSON, labels). The tokenizer is the same JSON tokenizer the Keras side
used, and inputs are post-padded, as the fused recurrent operators require.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from rnnzoo.data.tokenizer import WordTokenizer
from rnnzoo.errors import DataError, RnnzooError
from rnnzoo.io import read_json, verify_files

BUNDLE_FILE = "bundle.json"
BUNDLE_FORMAT = "rnnzoo.onnx_bundle.v1"
MODEL_FILE = "model.onnx"
ENCODER_FILE = "encoder_model.onnx"
DECODER_FILE = "decoder_model.onnx"


class BundleError(RnnzooError, ValueError):
    """A bundle directory is missing, malformed or was modified after export."""


class Prediction(NamedTuple):
    labels: list[str]
    probs: np.ndarray


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

    def run(self, graph: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one graph; returns its outputs by name."""
        sess = self.sessions[graph]
        names = [o.name for o in sess.get_outputs()]
        return dict(zip(names, sess.run(names, feeds)))


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


class TextClassifierRuntime(BundleRuntime):
    """``predict(texts)`` for a sentiment/text-classification bundle."""

    def __init__(self, path: str | os.PathLike, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self.tokenizer = WordTokenizer.load(self.asset("tokenizer.json"))
        self.label_names = json.loads(self.asset("labels.json").read_text(encoding="utf-8"))
        pre = self.manifest.get("preprocessing", {})
        self.max_length = int(pre.get("max_length", 100))
        self.vocab_size = int(pre.get("vocab_size", self.tokenizer.vocab_size))

    def predict_tokens(self, tokens: np.ndarray) -> np.ndarray:
        """Probabilities for a post-padded int32 token batch [batch, time]."""
        check_tokens(tokens, self.vocab_size)
        return self.run("model", {"tokens": tokens})["probs"]

    def predict_proba(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not texts:
            raise DataError("predict: empty list of texts")
        seqs = [self.tokenizer.encode(t)[: self.max_length] or [1] for t in texts]
        # Group by length: the fused LSTM does not skip padded steps.
        order = np.argsort([len(s) for s in seqs], kind="stable")
        out = np.zeros((len(texts), len(self.label_names)), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            batch = np.zeros((len(idx), max(len(seqs[i]) for i in idx)), dtype=np.int32)
            for row, i in enumerate(idx):
                batch[row, : len(seqs[i])] = seqs[i]
            out[idx] = self.predict_tokens(batch)
        return out

    def predict(self, texts: Sequence[str], batch_size: int = 32) -> Prediction:
        """Labels and probabilities for raw strings."""
        probs = self.predict_proba(texts, batch_size=batch_size)
        return Prediction([self.label_names[i] for i in probs.argmax(axis=1)], probs)

    def evaluate(self, texts: Sequence[str], labels: Sequence[int]) -> dict:
        from rnnzoo.metrics import classification_report

        probs = self.predict_proba(texts)
        return classification_report(labels, probs.argmax(axis=1).tolist(), self.label_names)


class TranslatorRuntime(BundleRuntime):
    """``translate(texts, beam=5)`` for a translator bundle: ``encoder_model.onnx`` once per
    batch, ``decoder_model.onnx`` once per generated token, driven by the same samplers
    (``rnnzoo.generation``) as the Keras model."""

    def __init__(self, path: str | os.PathLike, **kwargs: Any) -> None:
        from rnnzoo.families.translator import TranslatorPreprocessor

        super().__init__(path, **kwargs)
        pre = self.manifest["preprocessing"]
        self.preprocessor = TranslatorPreprocessor(
            WordTokenizer.load(self.asset("source_tokenizer.json")),
            WordTokenizer.load(self.asset("target_tokenizer.json")),
            bool(pre["lowercase"]), int(pre["max_length"]))
        self.state_names = list(pre["state_names"])
        self.attention = bool(pre["attention"])
        self.src_vocab_size = int(pre["src_vocab_size"])

    def engine(self) -> tuple[Any, Any]:
        """(encode, step) over numpy arrays, the contract of ``rnnzoo.generation``."""
        names = self.state_names

        def encode(tokens: np.ndarray) -> dict:
            check_tokens(tokens, self.src_vocab_size, "source")
            outs = self.run("encoder", {"source": tokens})
            state = {n: outs[n] for n in names}
            if self.attention:
                state["encoder_outputs"] = outs["encoder_outputs"]
                state["encoder_keys"] = outs["encoder_keys"]
                state["source_mask"] = (tokens != 0).astype(np.float32)
            return state

        def step(tokens_t: np.ndarray, state: dict) -> tuple[np.ndarray, dict]:
            feeds = {"token": tokens_t.astype(np.int32), **{n: state[n] for n in names}}
            if self.attention:
                for k in ("encoder_outputs", "encoder_keys", "source_mask"):
                    feeds[k] = state[k]
            outs = self.run("decoder", feeds)
            new = dict(state)
            new.update({n: outs[f"new_{n}"] for n in names})
            if self.attention:
                new["attention"] = outs["attention"]
            return outs["logits"], new

        return encode, step

    def translate(self, texts: Sequence[str] | str, beam: int | None = None,
                  sampler: str | None = None, max_length: int | None = None,
                  batch_size: int = 64, return_attention: bool = False,
                  seed: int | None = None, **sampler_kwargs: Any) -> Any:
        """Translate strings (same arguments and results as the Keras model's ``translate``)."""
        from rnnzoo.families.translator import translate_with

        encode, step = self.engine()
        return translate_with(encode, step, self.preprocessor, texts, beam=beam,
                              sampler=sampler,
                              max_length=max_length or self.preprocessor.max_length + 10,
                              batch_size=batch_size, return_attention=return_attention,
                              seed=seed, **sampler_kwargs)


RUNTIMES = {"sentiment": TextClassifierRuntime, "translator": TranslatorRuntime}


def load(path: str | os.PathLike, **kwargs: Any) -> BundleRuntime:
    """Open a bundle with the runtime class of its family.

    Keyword arguments: ``providers`` (e.g. ``["CUDAExecutionProvider", "CPUExecutionProvider"]``),
    ``intra_op_threads`` (default 1), ``inter_op_threads``, ``spinning`` (default off; see
    ``session_options``), ``graph_options`` (the same three per graph, e.g. a translator's
    per-token ``{"decoder": {"intra_op_threads": 2, "spinning": True}}``), ``verify`` (sha256,
    default on).
    """
    manifest = read_manifest(path, verify=False)
    family = manifest.get("family")
    if family not in RUNTIMES:
        raise BundleError(
            f"{path}: no runtime for family {family!r} (known: {', '.join(sorted(RUNTIMES))})"
        )
    return RUNTIMES[family](path, **kwargs)
