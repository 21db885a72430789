"""The NADE frame distribution of RNN-NADE (Boulanger-Lewandowski et al. 2012) in numpy, TF-free.

A frame ``v`` (88 keys, 0/1) is modelled key by key, lowest key first, conditioned on the
recurrent state through two biases the one-step ``decoder`` graph emits per frame (its ``logits``
output is ``[b_v (88) | b_h (H)]``) and two weight matrices shared by every frame, ``W`` and
``V`` (``[88, H]``, read once from the bundle's ``nade`` graph)::

    a_k = b_h + sum_{j<k} v_j W_j      h_k = sigmoid(a_k)      z_k = b_v[k] + V_k . h_k
    P(v_k = 1 | v_<k, past) = sigmoid(z_k)

so the frame's log-likelihood is exact: the sum of 88 Bernoulli terms. Scoring runs in the
``model`` graph (the keys of the frame are fed as ``targets``); sampling runs here, one key at
a time, the same numpy code for the Keras model and the onnxruntime bundle, so a seed gives the
same music on both.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnzoo.apps.music_generation.data import NUM_KEYS
from rnnzoo.export.errors import BundleError

#: The bundle graph holding ``W`` and ``V`` (``keys [n] -> W, V [n, H]``).
NADE_FILE = "nade_model.onnx"


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def choose_keys(z: np.ndarray, u: np.ndarray, temperature: float, top_p: float) -> np.ndarray:
    """0/1 (int32) per key from logits ``z`` and uniforms ``u`` of the same shape: on when
    ``u < sigmoid(z / temperature)``; ``temperature=0`` keeps the keys with ``z > 0``. Per-key
    top-p: a key whose likelier outcome has probability >= ``top_p`` takes that outcome (the
    nucleus of a two-outcome distribution), the others are drawn as usual (``top_p=1``: off)."""
    z = np.asarray(z, dtype=np.float64)
    if temperature == 0:
        return (z > 0).astype(np.int32)
    p = _sigmoid(z / temperature)
    on = u < p
    if top_p < 1.0:
        sure = np.maximum(p, 1.0 - p) >= top_p
        on = np.where(sure, z > 0, on)
    return on.astype(np.int32)


def split_biases(logits: np.ndarray, num_keys: int) -> tuple[np.ndarray, np.ndarray]:
    """``(b_v [..., 88], b_h [..., H])`` from the decoder's ``logits`` ``[..., 88 + H]``."""
    logits = np.asarray(logits, dtype=np.float64)
    return logits[..., :num_keys], logits[..., num_keys:]


def conditionals(b_v: np.ndarray, b_h: np.ndarray, w: np.ndarray, v: np.ndarray,
                 keys: np.ndarray) -> np.ndarray:
    """Logits ``[..., 88]`` of each key given the keys below it in ``keys`` (``[..., 88]``,
    0/1): what the ``model`` graph computes in one pass (teacher forcing over the keys)."""
    keys = np.asarray(keys, dtype=np.float64)
    contrib = keys[..., :, None] * np.asarray(w, np.float64)
    a = np.cumsum(contrib, axis=-2) - contrib + np.asarray(b_h, np.float64)[..., None, :]
    return np.asarray(b_v, np.float64) + (_sigmoid(a) * np.asarray(v, np.float64)).sum(-1)


def sample(logits: np.ndarray, w: np.ndarray, v: np.ndarray, temperature: float, top_p: float,
           rng: np.random.Generator) -> np.ndarray:
    """One frame per row (int32 ``[B, 88]``) drawn key by key from the decoder's ``logits``
    ``[B, 88 + H]``. One uniform number per key is drawn up front at every temperature (the
    same random stream as the independent-sigmoid models).

    Exactly the key-by-key draw, done in a few vector steps: the hidden state changes only when
    a key turns on, so from key k every later key's logit under the current state is computed
    at once, every key is decided with its own uniform, and the draws up to the first key that
    turns on stand (they saw the right state); the state then takes that key and the rest is
    redrawn from the next key. About polyphony + 1 steps per frame instead of 88."""
    num_keys = w.shape[0]
    b_v, b_h = split_biases(logits, num_keys)
    u = rng.random(b_v.shape)
    w64, v64 = np.asarray(w, np.float64), np.asarray(v, np.float64)
    out = np.zeros(b_v.shape, np.int32)
    for row in range(b_v.shape[0]):
        a, k = b_h[row].copy(), 0
        while k < num_keys:
            z = b_v[row, k:] + v64[k:] @ _sigmoid(a)
            on = np.flatnonzero(choose_keys(z, u[row, k:], temperature, top_p))
            if not on.size:
                break
            k += int(on[0])
            out[row, k] = 1
            a += w64[k]
            k += 1
    return out


def greedy_probabilities(logits: np.ndarray, w: np.ndarray, v: np.ndarray) -> np.ndarray:
    """float32 ``[B, 88]``: P(key k on | keys below k as in the most likely key-by-key frame),
    what ``step`` reports for a NADE model (its keys are not independent, so there is no
    single vector of marginals to give without sampling)."""
    keys = sample(logits, w, v, 0.0, 1.0, np.random.default_rng(0))
    b_v, b_h = split_biases(logits, w.shape[0])
    return _sigmoid(conditionals(b_v, b_h, w, v, keys)).astype(np.float32)


def weights_from_graph(runner: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(W, V)`` float32 ``[88, H]`` from a bundle's ``nade`` graph (``keys -> W, V`` rows),
    run once for every key, its shapes checked."""
    out = runner.run("nade", {"keys": np.arange(NUM_KEYS, dtype=np.int32)})
    w, v = np.asarray(out["W"], np.float32), np.asarray(out["V"], np.float32)
    if w.ndim != 2 or w.shape != v.shape or w.shape[0] != NUM_KEYS:
        raise BundleError(f"nade graph: W and V must both be [{NUM_KEYS}, H], found "
                          f"{w.shape} and {v.shape}; re-export the bundle")
    return w, v
