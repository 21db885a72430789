"""Samplers over hand-made numpy step functions: a fixed Markov chain (``logits = table[token]``)
and a step whose state carries the prefix, a counter and per-row constants, so that tiling and
reordering in beam search are checked against brute-force enumeration."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest

from rnnzoo.engines.beam import BeamSampler
from rnnzoo.engines.decoding import GenerationResult, generate
from rnnzoo.engines.sampling import TopKSampler, get_sampler, list_samplers, log_softmax

END = 1


def markov_step(table: np.ndarray):
    """A step whose next-token logits depend only on the input token (state passed through)."""

    def step(tokens, state):
        assert tokens.dtype == np.int32
        return table[tokens].astype(np.float32), state

    return step


def random_table(seed: int, vocab: int = 6, end_bias: float = 0.0) -> np.ndarray:
    table = np.random.default_rng(seed).normal(scale=2.0, size=(vocab, vocab))
    table[:, END] += end_bias
    return table


def reference_greedy(table: np.ndarray, start: int, max_length: int) -> tuple[list[int], float]:
    tokens, score, tok = [], 0.0, start
    for _ in range(max_length):
        logp = log_softmax(table[tok].astype(np.float32))
        tok = int(np.argmax(logp))
        tokens.append(tok)
        score += logp[tok]
        if tok == END:
            break
    return tokens, score


# A step with real state: the prefix so far, a step counter, per-row constants (like encoder
# outputs) and an attention-like array to record. Logits depend on the whole prefix, so a beam
# whose state is not reordered with it produces different (wrong) scores.

PREFIX_VOCAB = 4
PREFIX_MAX = 4


def prefix_logits(prefix: list[int], const: np.ndarray) -> np.ndarray:
    h = const[0] + sum((i + 1) * 0.917 * (tok + 1) for i, tok in enumerate(prefix))
    return 2.5 * np.sin(h * (np.arange(PREFIX_VOCAB) + 1) * 0.73 + const[1])


def prefix_state(consts: np.ndarray) -> dict[str, np.ndarray]:
    n = consts.shape[0]
    return {
        "prefix": np.full((n, PREFIX_MAX + 1), -1, dtype=np.int32),
        "t": np.zeros(n, dtype=np.int32),
        "const": consts.astype(np.float64),
        "memory": np.broadcast_to(consts[:, :1, None], (n, 5, 3)).copy(),  # [n, S, H]
    }


def prefix_step(tokens, state):
    n = tokens.shape[0]
    assert all(v.shape[0] == n for v in state.values())
    # Constants must have been tiled consistently with each other.
    np.testing.assert_array_equal(state["memory"][:, 0, 0], state["const"][:, 0])
    prefix = state["prefix"].copy()
    t = state["t"]
    prefix[np.arange(n), t] = tokens
    logits = np.stack(
        [prefix_logits(list(prefix[i, : t[i] + 1]), state["const"][i]) for i in range(n)]
    )
    attention = np.stack([t + 1, tokens, state["const"][:, 0]], axis=1).astype(np.float32)
    new = dict(state, prefix=prefix, t=t + 1, attention=attention)
    return logits.astype(np.float32), new


def brute_force(logits_fn, vocab: int, max_length: int, alpha: float) -> tuple[list[int], float]:
    """Best sequence over all finished ones (<= max_length) and unfinished ones (== max_length),
    scored as sum(log p) / len ** alpha: the objective beam search approximates."""
    best, best_score = None, -np.inf
    for length in range(1, max_length + 1):
        for seq in itertools.product(range(vocab), repeat=length):
            if END in seq[:-1]:
                continue
            if seq[-1] != END and length < max_length:
                continue
            total = sum(log_softmax(logits_fn(list(seq[:i])))[tok] for i, tok in enumerate(seq))
            score = total / length**alpha
            if score > best_score:
                best, best_score = list(seq), score
    return best, best_score


CONSTS = np.array([[0.3, 0.1], [1.7, -0.4], [-0.8, 2.0]])


# ---------------------------------------------------------------------------------------------
# greedy
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_greedy_follows_argmax_path(seed: int) -> None:
    table = random_table(seed, end_bias=1.0)
    start = np.array([0, 2, 3, 4, 5])
    result = generate(markov_step(table), start, {}, max_length=8, end_token=END)
    assert isinstance(result, GenerationResult)
    assert result.tokens.dtype == np.int32
    for i, s in enumerate(start):
        expected, score = reference_greedy(table, int(s), 8)
        n = result.lengths[i]
        assert list(result.tokens[i, :n]) == expected
        assert result.finished[i] == (expected[-1] == END)
        np.testing.assert_allclose(result.log_probs[i], score, rtol=1e-6)
        np.testing.assert_allclose(result.scores[i], score, rtol=1e-6)
        assert np.all(result.tokens[i, n:] == 0)  # padding after the end


def test_greedy_stops_when_all_rows_finished() -> None:
    table = np.full((4, 4), -5.0)
    table[0, 2] = 5.0  # start -> 2
    table[2, 3] = 5.0  # 2 -> 3
    table[3, END] = 5.0  # 3 -> end
    table[END, END] = 5.0
    result = generate(markov_step(table), np.array([0, 2, 3]), {}, max_length=20, end_token=END)
    assert result.steps == 3
    np.testing.assert_array_equal(result.tokens, [[2, 3, END], [3, END, 0], [END, 0, 0]])
    np.testing.assert_array_equal(result.lengths, [3, 2, 1])
    assert result.finished.all()
    assert result.sequences() == [[2, 3, END], [3, END], [END]]
    assert result.sequences(include_end=False) == [[2, 3], [3], []]


def test_greedy_batched_equals_per_row() -> None:
    table = random_table(11, vocab=7, end_bias=0.5)
    start = np.array([0, 3, 6, 2])
    batched = generate(markov_step(table), start, {}, max_length=10, end_token=END)
    for i, s in enumerate(start):
        single = generate(markov_step(table), np.array([s]), {}, max_length=10, end_token=END)
        n = single.lengths[0]
        assert batched.lengths[i] == n
        np.testing.assert_array_equal(batched.tokens[i, :n], single.tokens[0, :n])
        np.testing.assert_allclose(batched.scores[i], single.scores[0])


def test_greedy_unfinished_rows_hit_max_length() -> None:
    table = np.zeros((3, 3))
    table[:, 2] = 3.0  # never ends
    result = generate(markov_step(table), np.array([0, 1]), {}, max_length=4, end_token=END)
    assert result.steps == 4
    assert result.tokens.shape == (2, 4)
    assert not result.finished.any()
    np.testing.assert_array_equal(result.lengths, [4, 4])


def test_greedy_records_state_per_step_and_zeroes_after_end() -> None:
    consts = CONSTS
    result = generate(prefix_step, np.array([0, 2, 3]), prefix_state(consts), max_length=4,
                      end_token=END, record=("attention", "prefix"))
    att = result.recorded["attention"]
    assert att.shape == (3, result.tokens.shape[1], 3)
    for i in range(3):
        n = result.lengths[i]
        inputs = [int(x) for x in [(0, 2, 3)[i]] + list(result.tokens[i, : n - 1])]
        for s in range(n):
            np.testing.assert_allclose(att[i, s], [s + 1, inputs[s], consts[i, 0]], rtol=1e-6)
            assert list(result.recorded["prefix"][i, s, : s + 1]) == inputs[: s + 1]
        assert np.all(att[i, n:] == 0)


# ---------------------------------------------------------------------------------------------
# beam search
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_beam_width_one_equals_greedy(seed: int) -> None:
    table = random_table(seed, end_bias=0.5)
    start = np.array([0, 2, 4])
    greedy = generate(markov_step(table), start, {}, max_length=7, end_token=END)
    beam = generate(markov_step(table), start, {}, max_length=7, end_token=END,
                    sampler="beam", width=1)
    np.testing.assert_array_equal(beam.tokens, greedy.tokens)
    np.testing.assert_array_equal(beam.lengths, greedy.lengths)
    np.testing.assert_array_equal(beam.finished, greedy.finished)
    np.testing.assert_allclose(beam.log_probs, greedy.log_probs, rtol=1e-9)
    np.testing.assert_allclose(beam.scores, greedy.log_probs / greedy.lengths, rtol=1e-9)


def crafted_table() -> np.ndarray:
    """Greedy takes 2 (p=0.6) and then has only poor continuations; 3 (p=0.4) then ends with
    p=0.95, which is the better sequence."""
    probs = np.full((4, 4), 1e-3)
    probs[0] = [1e-3, 1e-3, 0.6, 0.4]
    probs[2] = [1e-3, 0.34, 0.33, 0.33]
    probs[3] = [1e-3, 0.95, 0.025, 0.025]
    probs[END] = [1e-3, 0.997, 1e-3, 1e-3]
    return np.log(probs / probs.sum(axis=1, keepdims=True))


def test_beam_beats_greedy_and_matches_brute_force() -> None:
    table = crafted_table()
    step = markov_step(table)
    greedy = generate(step, np.array([0]), {}, max_length=4, end_token=END)
    best, best_score = brute_force(lambda prefix: table[([0] + prefix)[-1]], 4, 4, alpha=0.0)
    assert best == [3, END]
    assert greedy.sequences() != [best]
    for early_stop in (True, False):
        beam = generate(step, np.array([0]), {}, max_length=4, end_token=END, sampler="beam",
                        width=2, length_penalty=0.0, early_stop=early_stop)
        assert beam.sequences() == [best]
        np.testing.assert_allclose(beam.scores[0], best_score, rtol=1e-6)
        assert beam.log_probs[0] > greedy.log_probs[0]


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0, 2.0, -0.5])
@pytest.mark.parametrize("early_stop", [True, False])
def test_exhaustive_beam_is_globally_best_with_state(alpha: float, early_stop: bool) -> None:
    # width 128 holds every live prefix (at most 3**4) and every finite candidate (<= 4 * 27), so
    # beam search is exact; a wrong tiling or reordering of the state breaks the agreement.
    start = np.array([0, 2, 3])
    result = generate(prefix_step, start, prefix_state(CONSTS), max_length=PREFIX_MAX,
                      end_token=END, sampler="beam", width=128, length_penalty=alpha,
                      early_stop=early_stop)
    for i in range(3):
        best, best_score = brute_force(
            lambda prefix, i=i: prefix_logits([int(start[i])] + prefix, CONSTS[i]),
            PREFIX_VOCAB, PREFIX_MAX, alpha,
        )
        assert result.sequences()[i] == best
        np.testing.assert_allclose(result.scores[i], best_score, rtol=1e-5)
        assert result.finished[i] == (best[-1] == END)


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_state_and_records_follow_backpointers(alpha: float) -> None:
    start = np.array([0, 2, 3])
    result = generate(prefix_step, start, prefix_state(CONSTS), max_length=PREFIX_MAX,
                      end_token=END, sampler="beam", width=3, length_penalty=alpha,
                      early_stop=False, record=("prefix", "attention"))
    prefix, att = result.recorded["prefix"], result.recorded["attention"]
    assert prefix.shape == (3, result.tokens.shape[1], PREFIX_MAX + 1)
    for i in range(3):
        n = result.lengths[i]
        inputs = [int(start[i])] + [int(x) for x in result.tokens[i, : n - 1]]
        # The state that produced token s saw exactly the returned tokens before it.
        for s in range(n):
            assert list(prefix[i, s, : s + 1]) == inputs[: s + 1]
            assert np.all(prefix[i, s, s + 1 :] == -1)
            np.testing.assert_allclose(att[i, s], [s + 1, inputs[s], CONSTS[i, 0]], rtol=1e-6)
        assert np.all(att[i, n:] == 0)
        # The score is the model's log-prob of the returned tokens under the true prefix.
        total = sum(
            log_softmax(prefix_logits(inputs[: s + 1], CONSTS[i]))[result.tokens[i, s]]
            for s in range(n)
        )
        np.testing.assert_allclose(result.log_probs[i], total, rtol=1e-5)
        np.testing.assert_allclose(result.scores[i], total / n**alpha, rtol=1e-5)


def test_beam_batched_equals_per_row() -> None:
    start = np.array([0, 2, 3])
    kwargs = dict(max_length=PREFIX_MAX, end_token=END, sampler="beam", width=3)
    batched = generate(prefix_step, start, prefix_state(CONSTS), **kwargs)
    for i in range(3):
        single = generate(prefix_step, start[i : i + 1], prefix_state(CONSTS[i : i + 1]), **kwargs)
        assert single.sequences()[0] == batched.sequences()[i]
        np.testing.assert_allclose(single.scores[0], batched.scores[i])


def test_beam_skips_reordering_only_arrays_never_updated() -> None:
    # Passed-through arrays (encoder outputs) are not reordered while they are still the tiled
    # copies; one the step updated once differs across beams and must follow them afterwards:
    # ``lag`` is a copy of the sequence taken at step 1, then passed through (the same object).
    vocab, length = 7, 8
    weights = np.arange(1, length + 1) * 0.61

    def step(tokens, state):
        seq, t = state["seq"].copy(), int(state["t"][0])
        seq[:, t] = tokens
        new = dict(state, seq=seq, t=state["t"] + 1)
        if t == 1:
            new["lag"] = seq.copy()
        elif t > 1:  # every beam still carries its own first two tokens
            np.testing.assert_array_equal(state["lag"][:, :2], seq[:, :2])
        logits = 3 * np.sin(np.outer(seq @ weights + state["memory"][:, 0], np.arange(vocab)))
        return logits.astype(np.float32), new

    n = 3
    state = {"seq": np.zeros((n, length), np.int64), "t": np.zeros(n, np.int64),
             "lag": np.zeros((n, length), np.int64), "memory": np.arange(n, dtype=float)[:, None]}
    out = generate(step, np.array([2, 3, 4]), state, max_length=length, end_token=END,
                   sampler="beam", width=4, early_stop=False)
    assert out.lengths.max() > 3  # the checks above ran on later steps


def test_beam_does_not_mutate_caller_state() -> None:
    state = prefix_state(CONSTS)
    before = {k: v.copy() for k, v in state.items()}
    generate(prefix_step, np.array([0, 2, 3]), state, max_length=3, end_token=END,
             sampler="beam", width=2)
    assert state.keys() == before.keys()
    for key in state:
        np.testing.assert_array_equal(state[key], before[key])


def test_beam_num_return_sorted_and_distinct() -> None:
    table = random_table(3, vocab=6, end_bias=1.0)
    start = np.array([0, 4])
    top = generate(markov_step(table), start, {}, max_length=6, end_token=END, sampler="beam",
                   width=4, num_return=3, early_stop=False)
    assert top.num_return == 3
    assert top.tokens.shape[0] == 6 and top.scores.shape == (6,)
    one = generate(markov_step(table), start, {}, max_length=6, end_token=END, sampler="beam",
                   width=4, early_stop=False)
    seqs = top.sequences()
    for i in range(2):
        rows = slice(3 * i, 3 * i + 3)
        assert np.all(np.diff(top.scores[rows]) <= 0)
        assert len({tuple(s) for s in seqs[rows]}) == 3
        assert seqs[3 * i] == one.sequences()[i]


def test_beam_early_stop_semantics() -> None:
    # The end token is very likely from everywhere.
    table = random_table(5, vocab=5, end_bias=6.0)
    step = markov_step(table)
    kwargs = dict(max_length=12, end_token=END, sampler="beam", width=3)
    eager = generate(step, np.array([0]), {}, early_stop=True, **kwargs)
    assert eager.steps < 12 and eager.finished[0]
    # With alpha = 0 nothing live can beat a finished hypothesis scoring about log(0.99).
    exact = generate(step, np.array([0]), {}, early_stop=False, length_penalty=0.0, **kwargs)
    assert exact.steps < 12
    assert exact.sequences() == [[END]]
    # With alpha > 0 the bound uses max_length, which is looser: never fewer steps.
    loose = generate(step, np.array([0]), {}, early_stop=False, length_penalty=1.0, **kwargs)
    assert loose.steps >= exact.steps


def test_beam_exact_stop_uses_the_longest_length_bound() -> None:
    # Ending at once scores log(0.5); the 2-chain starts poorly (log 0.135) but, averaged over
    # max_length tokens, wins. An exact stop must not give up on it after the first steps.
    probs = np.array([
        [0.065, 0.5, 0.135, 0.3],
        [0.001, 0.997, 0.001, 0.001],
        [0.005, 0.09, 0.9, 0.005],
        [0.1, 0.5, 0.1, 0.3],
    ])
    table = np.log(probs)
    best, best_score = brute_force(lambda prefix: table[([0] + prefix)[-1]], 4, 6, alpha=1.0)
    assert best == [2] * 6
    result = generate(markov_step(table), np.array([0]), {}, max_length=6, end_token=END,
                      sampler="beam", width=2, length_penalty=1.0, early_stop=False)
    assert result.sequences() == [best] and not result.finished[0]
    np.testing.assert_allclose(result.scores[0], best_score)
    # early_stop=True stops once `width` hypotheses have finished, here with a worse one.
    eager = generate(markov_step(table), np.array([0]), {}, max_length=6, end_token=END,
                     sampler="beam", width=2, length_penalty=1.0, early_stop=True)
    assert eager.steps < 6 and eager.scores[0] < best_score


def test_beam_tiny_vocab_fills_missing_hypotheses() -> None:
    table = np.zeros((2, 2))
    result = generate(markov_step(table), np.array([0]), {}, max_length=1, end_token=END,
                      sampler="beam", width=3, num_return=3)
    assert result.sequences()[:2] in ([[END], [0]], [[0], [END]])
    assert result.lengths[2] == 0 and result.scores[2] == -np.inf


# ---------------------------------------------------------------------------------------------
# stochastic samplers
# ---------------------------------------------------------------------------------------------


def one_step_draws(probs: np.ndarray, sampler: str, n: int = 20000, **kwargs) -> np.ndarray:
    """n independent first tokens from a single distribution (one batched step)."""
    table = np.tile(np.log(probs), (len(probs), 1))
    result = generate(markov_step(table), np.zeros(n, dtype=np.int32), {}, max_length=1,
                      end_token=END, sampler=sampler, seed=0, **kwargs)
    return result.tokens[:, 0]


PROBS = np.array([0.02, 0.03, 0.35, 0.25, 0.15, 0.1, 0.06, 0.04])


@pytest.mark.parametrize("sampler, kwargs", [
    ("top_k", {"k": 1}),
    ("top_p", {"p": 1e-6}),
    ("temperature", {"temperature": 1e-3}),
    ("top_k", {"k": 4, "temperature": 1e-3}),
])
def test_degenerate_stochastic_samplers_equal_greedy(sampler: str, kwargs: dict) -> None:
    table = random_table(7, vocab=8, end_bias=0.5)
    start = np.arange(8)
    greedy = generate(markov_step(table), start, {}, max_length=9, end_token=END)
    for seed in range(3):
        other = generate(markov_step(table), start, {}, max_length=9, end_token=END,
                         sampler=sampler, seed=seed, **kwargs)
        np.testing.assert_array_equal(other.tokens, greedy.tokens)
        np.testing.assert_allclose(other.log_probs, greedy.log_probs)


def test_top_k_never_leaves_the_k_best() -> None:
    draws = one_step_draws(PROBS, "top_k", k=3)
    allowed = set(np.argsort(-PROBS)[:3])
    assert set(draws) == allowed
    expected = PROBS[sorted(allowed)] / PROBS[sorted(allowed)].sum()
    freq = np.bincount(draws, minlength=len(PROBS))[sorted(allowed)] / len(draws)
    np.testing.assert_allclose(freq, expected, atol=0.02)


@pytest.mark.parametrize("p, nucleus", [(0.3, {2}), (0.5, {2, 3}), (0.7, {2, 3, 4}),
                                        (1.0, set(range(8)))])
def test_top_p_never_leaves_the_nucleus(p: float, nucleus: set) -> None:
    draws = one_step_draws(PROBS, "top_p", p=p)
    assert set(draws) <= nucleus
    if len(nucleus) <= 3:  # all members of a small nucleus show up
        assert set(draws) == nucleus
        idx = sorted(nucleus)
        freq = np.bincount(draws, minlength=len(PROBS))[idx] / len(draws)
        np.testing.assert_allclose(freq, PROBS[idx] / PROBS[idx].sum(), atol=0.02)


def test_top_p_applies_temperature_before_the_cut() -> None:
    # Temperature 2 flattens PROBS, so a 0.5 nucleus grows from {2, 3} to {2, 3, 4}.
    tempered = np.sqrt(PROBS) / np.sqrt(PROBS).sum()
    order = np.argsort(-tempered)
    mass_before = np.cumsum(tempered[order]) - tempered[order]
    nucleus = sorted(order[mass_before < 0.5])
    assert nucleus == [2, 3, 4]
    draws = one_step_draws(PROBS, "top_p", p=0.5, temperature=2.0)
    assert sorted(set(draws)) == nucleus
    freq = np.bincount(draws, minlength=len(PROBS))[nucleus] / len(draws)
    np.testing.assert_allclose(freq, tempered[nucleus] / tempered[nucleus].sum(), atol=0.02)


def test_temperature_sampling_matches_distribution() -> None:
    draws = one_step_draws(PROBS, "temperature", temperature=1.0)
    freq = np.bincount(draws, minlength=len(PROBS)) / len(draws)
    np.testing.assert_allclose(freq, PROBS, atol=0.015)
    # temperature 2 flattens: p ** (1/2), renormalized
    hot = one_step_draws(PROBS, "temperature", temperature=2.0)
    flat = np.sqrt(PROBS) / np.sqrt(PROBS).sum()
    np.testing.assert_allclose(np.bincount(hot, minlength=8) / len(hot), flat, atol=0.015)


@pytest.mark.parametrize("sampler", ["temperature", "top_k", "top_p"])
def test_seed_reproducibility(sampler: str) -> None:
    table = random_table(2, vocab=8) * 0.3  # flat enough that sampling varies
    start = np.zeros(40, dtype=np.int32)

    def run(seed):
        return generate(markov_step(table), start, {}, max_length=6, end_token=END,
                        sampler=sampler, seed=seed).tokens

    np.testing.assert_array_equal(run(123), run(123))
    assert not np.array_equal(run(123), run(124))


def test_stochastic_scores_are_model_log_probs() -> None:
    table = random_table(4, vocab=6, end_bias=0.5)
    result = generate(markov_step(table), np.array([0, 3]), {}, max_length=5, end_token=END,
                      sampler="top_p", p=0.9, temperature=0.7, seed=1)
    for i, start in enumerate([0, 3]):
        inputs = [start] + list(result.tokens[i, : result.lengths[i] - 1])
        total = sum(log_softmax(table[a].astype(np.float32))[b]
                    for a, b in zip(inputs, result.tokens[i, : result.lengths[i]]))
        np.testing.assert_allclose(result.log_probs[i], total, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# lookup, validation, numerics, imports
# ---------------------------------------------------------------------------------------------


def test_get_sampler_by_name_and_instance() -> None:
    assert list_samplers() == ["beam", "greedy", "temperature", "top_k", "top_p"]
    sampler = get_sampler("top_k", k=3, temperature=0.5)
    assert isinstance(sampler, TopKSampler)
    assert sampler.get_config() == {"k": 3, "temperature": 0.5}
    assert get_sampler(sampler) is sampler
    assert "TopKSampler(k=3" in repr(sampler)
    beam = get_sampler("beam")
    assert isinstance(beam, BeamSampler)
    assert (beam.width, beam.length_penalty, beam.early_stop) == (5, 1.0, True)


@pytest.mark.parametrize("name, suggestion", [("top-k", "top_k"), ("beem", "beam"),
                                              ("gredy", "greedy"), ("topp", "top_p")])
def test_unknown_sampler_suggests_close_match(name: str, suggestion: str) -> None:
    with pytest.raises(ValueError, match=f"did you mean '{suggestion}'"):
        get_sampler(name)
    with pytest.raises(ValueError, match="unknown sampler"):
        generate(markov_step(np.zeros((3, 3))), np.array([0]), {}, 3, END, sampler=name)


@pytest.mark.parametrize("name, kwargs, pattern", [
    ("top_k", {"k": 0}, r"k must be an integer >= 1"),
    ("top_k", {"k": 2.5}, r"k must be an integer"),
    ("top_p", {"p": 0.0}, r"p must be in \(0, 1\]"),
    ("top_p", {"p": 1.5}, r"p must be in \(0, 1\]"),
    ("temperature", {"temperature": 0.0}, r"temperature must be > 0"),
    ("top_k", {"temperature": -1.0}, r"temperature must be > 0"),
    ("top_p", {"temperature": float("nan")}, r"temperature must be > 0"),
    ("beam", {"width": 0}, r"width must be an integer >= 1"),
    ("beam", {"width": 2, "num_return": 3}, r"num_return must be .*<= width \(2\)"),
    ("beam", {"length_penalty": float("inf")}, r"length_penalty must be finite"),
    ("beam", {"k": 3}, r"sampler 'beam' takes width, length_penalty, early_stop, num_return"),
    ("greedy", {"temperature": 0.5}, r"sampler 'greedy' takes no parameters"),
])
def test_invalid_sampler_params(name: str, kwargs: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        get_sampler(name, **kwargs)


def test_instance_with_kwargs_is_rejected() -> None:
    with pytest.raises(ValueError, match="either a name"):
        get_sampler(get_sampler("greedy"), k=3)


def test_invalid_generate_inputs() -> None:
    step = markov_step(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="max_length"):
        generate(step, np.array([0]), {}, max_length=0, end_token=END)
    with pytest.raises(ValueError, match=r"start_tokens must be a non-empty 1-D"):
        generate(step, np.array([[0]]), {}, max_length=2, end_token=END)
    with pytest.raises(ValueError, match=r"state\['h'\] has shape \(3, 4\).*batch \(2\)"):
        generate(step, np.array([0, 1]), {"h": np.zeros((3, 4))}, max_length=2, end_token=END)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        generate(step, np.array([0]), {}, max_length=2, end_token=7)
    with pytest.raises(ValueError, match=r"cannot record 'attention'.*\['h'\]"):
        generate(step, np.array([0]), {"h": np.zeros((1, 2))}, max_length=2, end_token=END,
                 record=("attention",))

    def nan_step(tokens, state):
        return np.full((tokens.shape[0], 3), np.nan, dtype=np.float32), state

    with pytest.raises(ValueError, match="NaN logits at step 0"):
        generate(nan_step, np.array([0]), {}, max_length=2, end_token=END)


def test_log_softmax_is_stable() -> None:
    logits = np.array([[1e4, 0.0, -1e4], [-1e30, -1e30, -1e30]], dtype=np.float32)
    out = log_softmax(logits)
    assert out.dtype == np.float64
    assert np.isfinite(out).all()
    np.testing.assert_allclose(np.exp(out).sum(axis=-1), 1.0)
    np.testing.assert_allclose(out[1], np.log(1 / 3))
    masked = log_softmax(np.array([[0.0, -np.inf], [-np.inf, -np.inf]]))
    np.testing.assert_allclose(masked[0], [0.0, -np.inf])
    assert np.all(masked[1] == -np.inf)


def test_import_does_not_pull_tensorflow_or_keras() -> None:
    code = (
        "import sys, rnnzoo.engines.decoding, rnnzoo.engines.beam, rnnzoo.engines.ctc; "
        "bad = [m for m in ('tensorflow', 'keras', 'onnxruntime') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- wide vocabularies: the probed top-k must equal a full partition -------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_probed_top_k_is_exact_on_wide_rows(dtype) -> None:
    from rnnzoo.engines import sampling

    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 40000)).astype(dtype)
    x[1, 10000:] = -np.inf  # like beam slots that are not alive yet
    x[2, ::7] = x[2, 0]  # many ties
    x[3, 123] = 50.0  # one peaked row: most of the sample is far below the top
    for k in (1, 5, 10, 32):
        idx = sampling._top_sorted(x, k)
        assert sampling._top_sorted_probed(x, k) is not None  # the fast path ran
        want = -np.sort(-x, axis=1)[:, :k]
        np.testing.assert_array_equal(np.take_along_axis(x, idx, axis=1), want)
        assert all(len(set(row)) == k for row in idx.tolist())
    x[0, :] = -np.inf
    assert sampling._top_sorted_probed(x, 3) is None  # no finite bound: full path
    assert sampling._top_sorted(x, 3).shape == (4, 3)


def test_wide_vocabulary_beam_and_top_k_equal_the_full_partition(monkeypatch) -> None:
    from rnnzoo.engines import sampling

    vocab = 3000
    rng = np.random.default_rng(1)
    emb, out = rng.normal(size=(vocab, 16)), rng.normal(scale=1.5, size=(16, vocab))
    out[:, END] += 1.0

    def step(tokens, state):
        h = np.tanh(state["h"] + emb[tokens])
        return (h @ out).astype(np.float32), {"h": h}

    start, state = np.array([2, 3, 4], np.int32), {"h": rng.normal(size=(3, 16))}

    def decode():
        beam = generate(step, start, state, max_length=12, end_token=END, sampler="beam",
                        width=5, early_stop=False)
        topk = generate(step, start, state, max_length=12, end_token=END, sampler="top_k",
                        k=20, seed=0)
        return beam, topk

    fast = decode()
    monkeypatch.setattr(sampling, "_PROBE", 10**9)  # disables the probed path
    full = decode()
    for a, b in zip(fast, full):
        np.testing.assert_array_equal(a.tokens, b.tokens)
        np.testing.assert_array_equal(a.scores, b.scores)
