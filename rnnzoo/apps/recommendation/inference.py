"""Recommendation inference: ``recommend``, ``evaluate`` and the per-interaction stream, written
once over both backends, and the onnxruntime model (``RUNTIME_CLASS``). TF-free.

Two graphs: ``model`` (``items [B, T]`` model indices and the states ``state_<i>`` ->
``logits [B, V]`` after the last item and ``new_state_<i>``) reads a history at once, and
``decoder`` (one step: ``item [B]`` and the states -> ``logits``, ``new_state_<i>``) carries one
user's state from interaction to interaction. ``recommend`` reads the last ``max_length`` items
of a history from the zero state (as training windows are read); a stream carries its state over
every item fed to it, so the two agree while a history is at most ``max_length`` long.

Scores are the model's softmax over the items that may be recommended (seen items and the
padding index removed); an empty history gets the most popular training items (cold start).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from rnnzoo import limits
from rnnzoo.apps.recommendation.data import (
    ASSET_FILE,
    MISS,
    ItemCatalog,
    ranking_metrics,
    read_history,
    sampled_rank,
)
from rnnzoo.engines.primed import BundleStates, PrimedGenerator
from rnnzoo.engines.sampling import log_softmax
from rnnzoo.errors import DataError, short_repr
from rnnzoo.export.bundle import BundleError, BundleRuntime
from rnnzoo.io import read_json
from rnnzoo.progress import model_label, reporting

DEFAULT_K = 10
EVAL_BATCH = 256  # histories per ``model`` call when scoring many users
SAMPLED_NEGATIVES = 100  # the legacy protocol (SASRec 2018)
#: Keys of the Python state a stream carries beside the graph's ``state_<i>``: the items seen
#: so far (filtered out) and the logits after the last one (what ``step`` ranks).
SEEN, LOGITS = "seen", "logits"


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise DataError(f"k: expected an integer >= 1 (how many items to recommend), found "
                        f"{short_repr(k)}")
    return int(k)


def _check_flag(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise DataError(f"{name}: expected True or False, found {short_repr(value)}")
    return bool(value)


def _is_batch(history: Any) -> bool:
    return isinstance(history, (list, tuple)) and bool(history) and all(
        isinstance(h, (list, tuple, np.ndarray)) for h in history)


def popularity_metrics(catalog: ItemCatalog, histories: Sequence[Sequence[int]],
                       targets: Sequence[int]) -> dict[str, float]:
    """The popularity ranker on the same protocol (full ranking, seen items filtered): every
    user gets the most interacted training items, ties broken by catalogue order. The floor a
    sequential model must beat clearly."""
    base = catalog.popularity() - np.arange(catalog.size) * 1e-6
    ranks = []
    for history, target in zip(histories, targets):
        scores = base.copy()
        scores[0] = -np.inf
        scores[catalog.known(history)] = -np.inf
        t = catalog.index.get(int(target), 0)
        ranks.append(MISS if t == 0 else int(np.count_nonzero(scores > scores[t])))
    return ranking_metrics(ranks)


class _Recommender(PrimedGenerator):
    """``recommend``, ``evaluate`` and the stream over the ``model`` and ``decoder`` graphs."""

    preprocessor: ItemCatalog

    @property
    def max_length(self) -> int:
        """The most recent interactions ``recommend`` reads (training windows' length)."""
        return int(self._max_length())

    def _max_length(self) -> int:
        return int(self.config.data.max_length)  # type: ignore[attr-defined]

    # -- scoring ------------------------------------------------------------------------------
    def _logits_after(self, rows: Sequence[np.ndarray], progress: Any = None) -> np.ndarray:
        """float64 logits ``[N, V]`` after each row of model indices (its last ``max_length``),
        read from the zero state through the ``model`` graph, rows of equal length together."""
        runner = self._runner()
        cut = [np.asarray(r[-self.max_length:], np.int32) for r in rows]
        out = None
        lengths = np.array([len(r) for r in cut])
        for length in np.unique(lengths):
            idx = np.flatnonzero(lengths == length)
            for s in range(0, len(idx), EVAL_BATCH):
                part = idx[s:s + EVAL_BATCH]
                items = np.stack([cut[i] for i in part]).astype(np.int32)
                got = runner.run("model", {"items": items, **self._zero_state(len(part))})
                logits = got["logits"]
                if out is None:
                    out = np.empty((len(rows), logits.shape[1]), np.float64)
                out[part] = logits
                if progress is not None:
                    progress.update(len(part))
        return out

    def _allowed(self, logits: np.ndarray, seen: Sequence[np.ndarray] | None) -> np.ndarray:
        """``logits`` with the padding index, indices past the catalogue and (when given) each
        row's seen items set to ``-inf``: what may be recommended."""
        out = np.array(logits, np.float64)
        out[:, 0] = -np.inf
        out[:, self.preprocessor.size:] = -np.inf
        if seen is not None:
            rows = np.repeat(np.arange(len(seen)), [len(s) for s in seen])
            cols = np.concatenate([np.asarray(s, np.int64) for s in seen]) if len(seen) else []
            out[rows, np.asarray(cols, np.int64)] = -np.inf
        return out

    def _top(self, logits: np.ndarray, k: int, skipped: list[int]) -> dict:
        """The top ``k`` of one row of allowed logits: ids, titles, softmax scores."""
        logp = log_softmax(logits[None])[0]
        k = min(k, int(np.count_nonzero(np.isfinite(logp))))
        # the k best (argpartition: a step ranks thousands of items), then in order
        part = np.argpartition(-logp, k - 1)[:k] if 0 < k < len(logp) else \
            np.flatnonzero(np.isfinite(logp))[:k]
        best = part[np.argsort(-logp[part], kind="stable")]
        cat = self.preprocessor
        items = [cat.item(int(i)) for i in best]
        return {"items": items, "titles": [cat.title(i) for i in items],
                "scores": [float(np.exp(logp[i])) for i in best], "skipped": skipped}

    def _cold_logits(self, batch: int) -> np.ndarray:
        """Logits of the popularity ranker (an empty history): log of the training counts."""
        pop = self.preprocessor.popularity()
        with np.errstate(divide="ignore"):
            row = np.log(pop)
        width = self._output_width()
        row = np.concatenate([row, np.full(max(0, width - len(row)), -np.inf)])[:width]
        return np.repeat(row[None], batch, axis=0)

    def _output_width(self) -> int:
        return int(self.config.model.num_items) + 1  # type: ignore[attr-defined]

    def recommend(self, history: Any, k: int = DEFAULT_K, exclude_seen: bool = True
                  ) -> dict | list[dict]:
        """The ``k`` items most likely to come next after ``history`` (item ids, oldest first:
        a list, ``"2858,1196,260"`` or a file of ids), as ``{"items", "titles", "scores",
        "skipped"}``: item ids, their titles (None where unknown), the model's probability of
        each among the items it may recommend, and the history's ids outside the catalogue
        (not read). ``exclude_seen`` leaves out the history's items. A list of histories gives
        a list of results; an empty history gets the most popular items."""
        self.require_fitted()
        k = _check_k(k)
        exclude_seen = _check_flag(exclude_seen, "exclude_seen")
        batch = _is_batch(history)
        if batch:
            limits.check("max_batch_size", len(history), "histories")
        histories = [read_history(h, f"history[{i}]") for i, h in enumerate(history)] \
            if batch else [read_history(history)]
        cat = self.preprocessor
        rows = [cat.known(h) for h in histories]
        skipped = [[i for i in h if i not in cat.index] for h in histories]
        logits = self._cold_logits(len(rows))
        filled = [i for i, r in enumerate(rows) if len(r)]
        if filled:
            logits[filled] = self._logits_after([rows[i] for i in filled])
        allowed = self._allowed(logits, rows if exclude_seen else None)
        out = [self._top(allowed[i], k, skipped[i]) for i in range(len(rows))]
        return out if batch else out[0]

    def evaluate(self, histories: Any, references: Any, progress: bool = False,
                 sampled: bool = True, seed: int = 0) -> dict:
        """Leave-one-out ranking metrics: each reference item ranked after its history against
        every item of the catalogue, the history's items filtered out (full ranking): HR@10,
        NDCG@10, MRR@20, Recall@20. A reference outside the catalogue counts as a miss
        (``unknown_targets``). ``sampled``: also the legacy protocol (rank among 100 negatives
        drawn uniformly from the items the user has not seen, ``np.random.default_rng(seed)``),
        as ``sampled100_hr@10`` and ``sampled100_ndcg@10``; inflated, for old tables only."""
        self.require_fitted()
        if not isinstance(histories, Sequence) or isinstance(histories, str):
            raise DataError(f"histories: expected a list of item-id lists, found "
                            f"{short_repr(histories)}")
        targets = list(references) if isinstance(references, (Sequence, np.ndarray)) else None
        if targets is None or len(targets) != len(histories):
            raise DataError(f"references: expected one next item per history "
                            f"({len(histories)}), found {short_repr(references)}")
        if not histories:
            raise DataError("evaluate: no histories to score")
        cat = self.preprocessor
        rows = [cat.known(read_history(h, f"histories[{i}]")) for i, h in enumerate(histories)]
        tgt = cat.encode(read_history(targets, "references"))
        n = len(rows)
        ranks = np.full(n, MISS, np.int64)
        legacy = np.full(n, MISS, np.int64)
        rng = np.random.default_rng(seed)
        filled = np.flatnonzero([len(r) > 0 for r in rows])
        with reporting(progress, model_label(self, "evaluate"), n, "users") as bar:
            logits = self._cold_logits(n)
            if len(filled):
                logits[filled] = self._logits_after([rows[i] for i in filled], bar)
            bar.update(n - len(filled))
            for s in range(0, n, EVAL_BATCH):
                part = range(s, min(n, s + EVAL_BATCH))
                scores = self._allowed(logits[s:s + len(part)], [rows[i] for i in part])
                for j, i in enumerate(part):
                    if tgt[i] == 0:
                        continue
                    value = scores[j, tgt[i]]
                    if np.isfinite(value):
                        ranks[i] = int(np.count_nonzero(scores[j] > value))
                    if sampled:
                        legacy[i] = sampled_rank(scores[j], int(tgt[i]), rows[i], cat.size,
                                                 rng, SAMPLED_NEGATIVES)
        out: dict[str, Any] = ranking_metrics(ranks)
        if sampled:
            legacy_metrics = ranking_metrics(legacy)
            out["sampled100_hr@10"] = legacy_metrics["hr@10"]
            out["sampled100_ndcg@10"] = legacy_metrics["ndcg@10"]
        out.update(users=n, unknown_targets=int(np.count_nonzero(tgt == 0)))
        return out

    # -- streaming ----------------------------------------------------------------------------
    def initial_state(self, batch: int = 1) -> dict[str, np.ndarray]:
        """A new user: the zero recurrent state, nothing seen, and the popularity ranker's
        logits (what a stream recommends before its first interaction)."""
        self.require_fitted()
        state = dict(self._zero_state(batch))
        state[SEEN] = np.zeros((batch, self._output_width()), bool)
        state[LOGITS] = self._cold_logits(batch).astype(np.float32)
        return state

    def step(self, x: Any, state: dict[str, np.ndarray], k: int = DEFAULT_K,
             exclude_seen: bool = True) -> tuple[dict | list[dict], dict[str, np.ndarray]]:
        """Feed interactions from ``state`` (from ``initial_state``) and rank again: ``x`` is an
        item id or a list of them (batch 1; a list is fed in order), or int ids ``[B]`` (one
        per user of a batch). Returns the new top-``k`` (``recommend``'s result; a list for a
        batch) and the state after them. Items outside the catalogue are skipped (listed in
        ``skipped``); the state carries every item fed, beyond ``max_length``."""
        k = _check_k(k)
        exclude_seen = _check_flag(exclude_seen, "exclude_seen")
        batch_rows = state[SEEN].shape[0] if isinstance(state, Mapping) and SEEN in state \
            else None
        if batch_rows is None:
            raise DataError("step: state must come from initial_state() or a previous step")
        if isinstance(x, np.ndarray) and x.ndim == 1 and batch_rows > 1:
            feed = [read_history([int(v)], f"x[{i}]") for i, v in enumerate(x.tolist())]
            if len(feed) != batch_rows:
                raise DataError(f"step: {len(feed)} items for a state of {batch_rows} users")
        else:
            if batch_rows != 1:
                raise DataError(f"step: give one item per user (int ids [{batch_rows}]) for a "
                                "batch state")
            one = [x] if isinstance(x, (int, np.integer)) and not isinstance(x, bool) else x
            feed = [read_history(one, "x")]
        cat = self.preprocessor
        graph = {n: v for n, v in state.items() if n not in (SEEN, LOGITS)}
        seen = np.array(state[SEEN], bool)
        logits = np.array(state[LOGITS], np.float32)
        skipped = [[i for i in f if i not in cat.index] for f in feed]
        known = [cat.known(f) for f in feed]
        if batch_rows == 1:
            ids = known[0]
            if len(ids) == 1:
                logits, graph = self._decoder_step()(ids, graph)
            elif len(ids) > 1:
                out = self._runner().run("model", {"items": ids[None].astype(np.int32), **graph})
                logits, graph = out["logits"], {n: out[f"new_{n}"] for n in graph}
            seen[0, ids] = True
        else:
            ids = np.array([r[0] if len(r) else 0 for r in known], np.int32)
            moved = ids > 0
            if moved.any():
                new_logits, new_graph = self._decoder_step()(ids, graph)
                logits = np.where(moved[:, None], new_logits, logits)
                graph = {n: np.where(moved[:, None], new_graph[n], v) for n, v in graph.items()}
                seen[np.flatnonzero(moved), ids[moved]] = True
        state = {**graph, SEEN: seen, LOGITS: np.asarray(logits, np.float32)}
        masks = [np.flatnonzero(row) for row in seen] if exclude_seen else None
        allowed = self._allowed(state[LOGITS], masks)
        results = [self._top(allowed[i], k, skipped[i]) for i in range(batch_rows)]
        return (results[0] if batch_rows == 1 else results), state

    def stream(self, batch: int = 1, k: int = DEFAULT_K, exclude_seen: bool = True) -> Any:
        """A :class:`rnnzoo.engines.stream.Stream` for ``batch`` new users: ``s.step(item)``
        updates the state by one interaction (without re-reading the history) and returns the
        new top-``k``."""
        from rnnzoo.engines.stream import Stream

        k = _check_k(k)
        exclude_seen = _check_flag(exclude_seen, "exclude_seen")
        return Stream(lambda x, s: self.step(x, s, k=k, exclude_seen=exclude_seen),
                      self.initial_state(batch))


class RecommenderRuntime(BundleStates, _Recommender, BundleRuntime):
    """``recommend(history, k)``, ``evaluate(histories, next_items)`` and ``stream()`` for a
    recommendation bundle with onnxruntime and numpy only: the same graphs and ranking as the
    Keras model."""

    def __init__(self, path: str | os.PathLike, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        asset = self.asset(ASSET_FILE)
        self.preprocessor = ItemCatalog.from_dict(
            read_json(asset, BundleError, "re-export the bundle"), str(asset), BundleError)
        self.name = self.entry

    def _max_length(self) -> int:
        return self.setting("max_length")

    def _output_width(self) -> int:
        return self.setting("num_items") + 1

    def require_fitted(self) -> None:
        """A bundle is always trained."""

    # -- rnnzoo serve (rnnzoo.serving) ------------------------------------------------------------
    serve_options: ClassVar[dict[str, Any]] = {"k": DEFAULT_K, "exclude_seen": True}
    serve_demo: ClassVar[dict[str, Any]] = {
        "input": "json", "options": {"k": DEFAULT_K},
        "example": {"history": [2858, 1196, 260]}}

    def _served_history(self, item: Any, where: str) -> Any:
        if isinstance(item, Mapping):
            unknown = sorted(set(item) - {"history"})
            if unknown or "history" not in item:
                raise DataError(f"{where}: expected {{\"history\": [item ids]}} or a list of "
                                f"item ids, found {short_repr(item)}")
            item = item["history"]
        if not isinstance(item, (list, str)):
            raise DataError(f"{where}: expected a list of item ids, found {short_repr(item)}")
        if isinstance(item, str) and not item.replace(",", " ").replace(" ", "").isdigit() \
                and item.strip():
            raise DataError(f"{where}: expected item ids such as \"2858,1196,260\", found "
                            f"{short_repr(item)}")
        return read_history(item, where)

    def serve_predict(self, instances: list, options: Mapping[str, Any]) -> list:
        """One ``recommend`` result per instance: ``{"history": [ids]}`` or a list of ids."""
        histories = [self._served_history(item, f"instances[{i}]")
                     for i, item in enumerate(instances)]
        k = options.get("k", DEFAULT_K)
        exclude = options.get("exclude_seen", True)
        if not histories:
            return []
        if len(histories) == 1:
            return [self.recommend(histories[0], k=k, exclude_seen=exclude)]
        return self.recommend([list(h) for h in histories], k=k, exclude_seen=exclude)

    def serve_stream(self, instance: Any, options: Mapping[str, Any], emit: Any) -> dict:
        """``:stream``: one event per interaction of the history, ``{"item", "items",
        "scores"}`` (the top-k after it, as a stream's ``step`` gives it), then the final
        recommendation (what ``:predict`` answers)."""
        history = self._served_history(instance, "instances[0]")
        k = options.get("k", DEFAULT_K)
        exclude = options.get("exclude_seen", True)
        s = self.stream(k=k, exclude_seen=exclude)
        for item in history[-self.max_length:]:
            top = s.step(item)
            emit({"item": item, "items": top["items"], "scores": top["scores"]})
        return self.recommend(history, k=k, exclude_seen=exclude)


RUNTIME_CLASS = RecommenderRuntime
