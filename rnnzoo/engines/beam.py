"""Beam search over a step function, batched, with an onnxruntime per-step selection.

``BeamSampler`` is the one sampler that overrides the decoding loop: the ``batch * width`` beams
step together and every state array follows its beam. Its selection of each row's best
candidates runs in ``beam_select.onnx`` (shipped in the ``rnnzoo`` package, built by
``export/select_graph.py``) for vocabulary-wide rows, in numpy otherwise.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo.engines.base import (
    GenerationResult,
    Sampler,
    _check_int,
    _check_logits,
    _check_number,
    _gathered_log_probs,
    _log_norm,
    _pad_recorded,
    _recorded_value,
)

__all__ = ["BeamSampler"]

_BLOCK = 64  # entries per block of a row in ``_top_rows``


def _top_rows(x: np.ndarray, k: int) -> np.ndarray:
    """Indices [n, k] of the ``k`` largest entries of each row of ``x`` [n, v], in no order.

    Exact, in three short passes for wide rows: the maximum of every block of 64 entries, the
    ``k`` blocks with the largest maxima (each of the row's ``k`` largest entries lies in a block
    whose maximum is at least the k-th largest value, and at most ``k`` blocks have one), then a
    partition of those ``k * 64`` entries (plus the ragged tail). Several times cheaper than
    ``argpartition`` over the row, which is what beam search paid per beam per step.
    """
    n, v = x.shape
    if k >= v:
        return np.broadcast_to(np.arange(v), (n, v))
    nb = v // _BLOCK
    if nb < 4 * k:
        return np.argpartition(x, v - k, axis=1)[:, v - k:]
    cut = nb * _BLOCK
    blocks = x[:, :cut].reshape(n, nb, _BLOCK)
    best = np.argpartition(blocks.max(axis=2), nb - k, axis=1)[:, nb - k:]  # [n, k] blocks
    rows = np.arange(n)[:, None]
    idx = (best[:, :, None] * _BLOCK + np.arange(_BLOCK)).reshape(n, k * _BLOCK)
    if cut < v:
        idx = np.concatenate([idx, np.broadcast_to(np.arange(cut, v), (n, v - cut))], axis=1)
    vals = x[rows, idx]
    pos = np.argpartition(vals, vals.shape[1] - k, axis=1)[:, vals.shape[1] - k:]
    return idx[rows, pos]


_SELECT_MIN_VOCAB = 1024  # rows this wide are selected by onnxruntime (``_top_log_probs``)
_SELECT_BLOCK = 64  # block width of ``beam_select.onnx`` (8,000 = 125 x 64; else -inf padding)
_SELECT_GRAPH = Path(__file__).parents[1] / "beam_select.onnx"  # rnnzoo/beam_select.onnx
_SELECT_OUTPUTS = ["top_values", "top", "max", "sum_exp"]


@functools.lru_cache(maxsize=1)
def _select_session() -> Any:
    """The one-thread onnxruntime session of ``beam_select.onnx``, or None without onnxruntime."""
    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover - onnxruntime is a core dependency
        return None
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(_SELECT_GRAPH), options, providers=["CPUExecutionProvider"])


def _top_log_probs(logits: np.ndarray, k: int, step_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` best tokens [n, k] (in no order) and their log-probabilities (float64).

    For vocabulary-wide float32 rows one onnxruntime call (``beam_select.onnx``: block maxima,
    two small ``TopK``, a block-wise ``exp`` sum) replaces several numpy passes, which at batch
    1 cost as much as the decoder step itself. Its
    ``exp`` runs and is summed per block in float32, so log-probabilities agree with
    ``log_softmax`` to about 2e-7 (a float32 ulp of the logits), not bit for bit; the tokens are
    those of a stable full sort. Rows with a non-finite maximum or normaliser (NaN, all -inf)
    take the numpy path, which reports or handles them.
    """
    n, v = logits.shape
    blocks = -(-v // _SELECT_BLOCK)
    session = _select_session() if v >= _SELECT_MIN_VOCAB and k <= blocks else None
    if session is not None and logits.dtype == np.float32:
        if v % _SELECT_BLOCK:
            padded = np.full((n, blocks * _SELECT_BLOCK), -np.inf, dtype=np.float32)
            padded[:, :v] = logits
            logits3 = padded.reshape(n, blocks, _SELECT_BLOCK)
        else:
            logits3 = np.ascontiguousarray(logits).reshape(n, blocks, _SELECT_BLOCK)
        values, top, m, z = session.run(_SELECT_OUTPUTS, {"logits": logits3,
                                                          "k": np.array([k], dtype=np.int64)})
        if np.isfinite(m).all() and np.isfinite(z).all():  # every sum_exp >= 1: no dead rows
            return top, (values.astype(np.float64) - m.astype(np.float64)) - np.log(z)
    m, lse = _log_norm(logits, step_index)
    top = _top_rows(logits, k)
    return top, _gathered_log_probs(logits, top, m, lse)


@dataclass
class _Hyp:
    """A beam-search hypothesis, stored as a backpointer (history is rebuilt once, at the end)."""

    row: int  # input row (batch index)
    score: float  # log_prob / length ** length_penalty
    log_prob: float
    length: int
    prefix_step: int  # step after which the prefix's last token was chosen (-1: empty prefix)
    prefix_slot: int  # beam slot of the prefix at prefix_step
    last_token: int | None  # end_token for finished hypotheses, None otherwise
    last_rec: dict[str, np.ndarray] | None


class BeamSampler(Sampler):
    """Beam search, batched: the ``batch * width`` beams step together as one flat batch.

    Semantics:

    * Start: every state array is tiled ``width`` times (``np.repeat(axis=0)``) and only beam 0
      of each row is alive (the others score ``-inf``), so the first step does not fill the beam
      with ``width`` copies of the same hypothesis.
    * Each step scores every (beam, token) candidate by its summed log-probability. A candidate
      that emits ``end_token`` and ranks in the top ``width`` of all candidates becomes a finished
      hypothesis of its row; the ``width`` best other candidates become the next beams, and every
      state array is reordered along axis 0 to follow them, except arrays the step has returned
      unchanged (the same object) since the start: they are still equal across a row's beams.
    * Length penalty (the simple form, as in Hugging Face ``length_penalty``, *not* GNMT's
      ``((5 + len) / 6) ** alpha``): ``score = log_prob / len ** length_penalty`` where ``len``
      counts the generated tokens including the end token. ``1.0`` (default) ranks by mean
      log-probability per token, ``0.0`` by the raw sum (which favours short outputs), larger
      values favour longer outputs.
    * Stopping, per row: with ``early_stop=True`` a row stops once ``width`` hypotheses have
      finished (Hugging Face ``early_stopping=True``): fast, but a longer hypothesis still in the
      beam could have scored better. With ``early_stop=False`` a row stops only when no live beam
      can still beat its ``num_return``-th best finished hypothesis: log-probabilities only
      decrease, so the bound for a live beam is its log-prob divided by the most favourable
      future length penalty (``max_length`` when ``length_penalty > 0``, the next length
      otherwise); this is exact for the beam (Hugging Face ``early_stopping="never"``). At most
      ``width`` finished hypotheses are kept per row. The whole search stops when every row has.
    * At ``max_length``, rows that have not stopped also offer their live beams (without an end
      token, ``finished=False``) as hypotheses, ranked with the same penalty, as Hugging Face does.
    * The ``num_return`` best hypotheses per row are returned (``num_return <= width``); a row
      with fewer hypotheses (tiny vocabularies) is filled with empty ones scoring ``-inf``.
      Recorded arrays follow the backpointers, so they belong to the returned hypothesis.
    """

    name = "beam"
    deterministic = True

    def __init__(
        self,
        width: int = 5,
        length_penalty: float = 1.0,
        early_stop: bool = True,
        num_return: int = 1,
    ) -> None:
        self.width = _check_int("width", width, 1, " (1 = greedy)")
        self.length_penalty = _check_number(
            "length_penalty", length_penalty, "finite (score = log_prob / len ** length_penalty)",
            lambda v: True,
        )
        if not isinstance(early_stop, (bool, np.bool_)):
            raise ValueError(f"early_stop must be True or False, got {early_stop!r}")
        self.early_stop = bool(early_stop)
        self.num_return = _check_int("num_return", num_return, 1, f" and <= width ({width})")
        if self.num_return > self.width:
            raise ValueError(
                f"num_return must be an integer >= 1 and <= width ({width}), got {num_return!r}"
            )

    def _penalty(self, length: int) -> float:
        return float(length) ** self.length_penalty

    def _run(self, step, start, state, max_length, end_token, rng, record, pad_token):
        batch, width, alpha = start.shape[0], self.width, self.length_penalty
        n = batch * width
        state = {key: np.repeat(value, width, axis=0) for key, value in state.items()}
        tiled = set(state)  # keys still holding these tiled arrays
        tokens_in = np.repeat(start, width).astype(np.int32)
        beam_scores = np.full((batch, width), -np.inf)
        beam_scores[:, 0] = 0.0
        done = np.zeros(batch, dtype=bool)
        finished: list[list[_Hyp]] = [[] for _ in range(batch)]
        tok_hist: list[np.ndarray] = []  # [batch, width] token chosen for each new slot
        par_hist: list[np.ndarray] = []  # [batch, width] slot it extends
        rec_hist: dict[str, list[np.ndarray]] = {key: [] for key in record}
        rows = np.arange(batch)[:, None]
        beam_base = None
        steps = 0
        for t in range(max_length):
            logits, new_state = step(tokens_in, state)
            steps += 1
            logits = _check_logits(logits, n, t, end_token)
            vocab = logits.shape[1]
            if beam_base is None:
                beam_base = np.arange(width)[:, None] * vocab
            for key, value in new_state.items():
                if np.shape(value)[:1] != (n,):
                    raise ValueError(
                        f"step returned state[{key!r}] of shape {np.shape(value)}; beam search "
                        f"needs batch * width ({n}) as axis 0 to reorder it"
                    )
            rec_now = {key: _recorded_value(new_state, key) for key in record}

            # Selection in three small passes instead of scoring all width x vocab candidates:
            # within a beam the ranking by log-probability is the ranking by logit, so each
            # beam's best k tokens (k = 2 * width, from the float32 logits) hold every candidate
            # of the row's best 2 * width; only those k get a log-probability (from one
            # normaliser pass, ``_top_log_probs``) plus their beam's score. At most one
            # end-token candidate per beam, so the best 2 * width hold the best `width` that do
            # not end: one selection serves finished and live hypotheses.
            k = min(2 * width, vocab)
            tok_k, logp_k = _top_log_probs(logits, k, t)
            cand = beam_scores.reshape(n, 1) + logp_k
            cand = cand.reshape(batch, width * k)
            flat = (beam_base + tok_k.reshape(batch, width, k)).reshape(batch, width * k)
            order = np.lexsort((flat, -cand), axis=-1)[:, : min(2 * width, width * k)]
            top = flat[rows, order]  # best first; ties: the lower beam, then the lower token
            top_vals_all = cand[rows, order]
            is_end = top % vocab == end_token

            # Finished hypotheses: end-token candidates ranked in the top `width` of their row.
            top_all, top_vals = top[:, :width], top_vals_all[:, :width]
            ends = is_end[:, :width] & np.isfinite(top_vals) & ~done[:, None]
            for b, r in zip(*np.nonzero(ends)):
                slot = int(top_all[b, r] // vocab)
                raw = float(top_vals[b, r])
                self._add(finished[b], _Hyp(
                    row=int(b), score=raw / self._penalty(t + 1), log_prob=raw, length=t + 1,
                    prefix_step=t - 1, prefix_slot=slot, last_token=end_token,
                    last_rec={key: rec_now[key][b * width + slot].copy() for key in record},
                ))

            # Live beams: the best `width` candidates that do not end (in rank order; an end
            # candidate only fills in when a tiny vocabulary leaves too few, and scores -inf).
            pick = np.argsort(is_end, axis=1, kind="stable")[:, :width]
            top_live = top[rows, pick]
            beam_scores = np.where(is_end[rows, pick], -np.inf, top_vals_all[rows, pick])
            src = (top_live // vocab).astype(np.int64)
            tok = (top_live % vocab).astype(np.int32)
            flat_src = (rows * width + src).reshape(-1)
            # Arrays the step has passed through unchanged since the start (encoder outputs,
            # masks) are still the tiled copies, equal across a row's beams: not reordered.
            tiled = {key for key in tiled if new_state.get(key) is state[key]}
            state = {key: value if key in tiled else np.asarray(value)[flat_src]
                     for key, value in new_state.items()}
            tok_hist.append(tok)
            par_hist.append(src)
            for key in record:
                value = rec_now[key][flat_src]
                rec_hist[key].append(value.reshape((batch, width) + value.shape[1:]))

            tokens_in = tok.reshape(-1).copy()
            for b in np.nonzero(~done)[0]:
                if self._row_done(finished[b], beam_scores[b], t, max_length, alpha):
                    done[b] = True
                    beam_scores[b] = -np.inf  # its candidates can no longer win or finish
                    tokens_in[b * width : (b + 1) * width] = end_token
            if done.all():
                break

        pools = [list(hyps) for hyps in finished]
        for b in np.nonzero(~done)[0]:  # only possible when all max_length steps ran
            for slot in range(width):
                raw = float(beam_scores[b, slot])
                if np.isfinite(raw):
                    pools[b].append(_Hyp(
                        row=int(b), score=raw / self._penalty(steps), log_prob=raw, length=steps,
                        prefix_step=steps - 1, prefix_slot=slot, last_token=None, last_rec=None,
                    ))
        return self._collect(pools, tok_hist, par_hist, rec_hist, record, steps, pad_token)

    def _add(self, hyps: list[_Hyp], hyp: _Hyp) -> None:
        """Keep the ``width`` best finished hypotheses of a row, best first (stable on ties)."""
        hyps.append(hyp)
        hyps.sort(key=lambda h: -h.score)
        del hyps[self.width:]

    def _row_done(
        self, hyps: list[_Hyp], scores: np.ndarray, t: int, max_length: int, alpha: float
    ) -> bool:
        best_live = float(scores.max())
        if not np.isfinite(best_live):
            return True  # nothing left alive (tiny vocabulary or all -inf logits)
        if self.early_stop:
            return len(hyps) >= self.width
        if len(hyps) < self.num_return or t + 1 >= max_length:
            return False
        # Log-probs only decrease; the most favourable penalty is the longest length if alpha > 0.
        future_len = max_length if alpha > 0 else t + 2
        return best_live / self._penalty(future_len) <= hyps[self.num_return - 1].score

    def _collect(self, pools, tok_hist, par_hist, rec_hist, record, steps, pad_token):
        seqs: list[list[int]] = []
        recs: dict[str, list[list[np.ndarray]]] = {key: [] for key in record}
        scores, log_probs, fin = [], [], []
        for b, pool in enumerate(pools):
            pool = sorted(pool, key=lambda h: -h.score)[: self.num_return]
            while len(pool) < self.num_return:
                pool.append(_Hyp(b, -np.inf, -np.inf, 0, -1, 0, None, None))
            for hyp in pool:
                tokens, hyp_rec = self._backtrack(hyp, tok_hist, par_hist, rec_hist, record)
                seqs.append(tokens)
                for key in record:
                    recs[key].append(hyp_rec[key])
                scores.append(hyp.score)
                log_probs.append(hyp.log_prob)
                fin.append(hyp.last_token is not None)
        length = max(len(s) for s in seqs)
        out = np.full((len(seqs), length), pad_token, dtype=np.int32)
        for i, s in enumerate(seqs):
            out[i, : len(s)] = s
        recorded = {
            key: _pad_recorded(recs[key], length, rec_hist[key][0][0, 0]) for key in record
        }
        return GenerationResult(
            tokens=out,
            lengths=np.array([len(s) for s in seqs], dtype=np.int32),
            scores=np.array(scores, dtype=np.float64),
            log_probs=np.array(log_probs, dtype=np.float64),
            finished=np.array(fin, dtype=bool),
            recorded=recorded,
            steps=steps,
            num_return=self.num_return,
        )

    @staticmethod
    def _backtrack(hyp, tok_hist, par_hist, rec_hist, record):
        """Follow backpointers from the hypothesis' prefix slot back to the first step."""
        tokens: list[int] = []
        recs: dict[str, list[np.ndarray]] = {key: [] for key in record}
        if hyp.length == 0:
            return tokens, recs
        b = hyp.row
        slot = hyp.prefix_slot
        for s in range(hyp.prefix_step, -1, -1):
            tokens.append(int(tok_hist[s][b, slot]))
            for key in record:
                recs[key].append(rec_hist[key][s][b, slot])
            slot = int(par_hist[s][b, slot])
        tokens.reverse()
        for key in record:
            recs[key].reverse()
        if hyp.last_token is not None:
            tokens.append(hyp.last_token)
            for key in record:
                recs[key].append(hyp.last_rec[key])
        return tokens, recs
