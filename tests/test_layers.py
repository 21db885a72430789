"""The shared recurrent building blocks: every cell x direction x depth, masks, states, config."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest

from rnnzoo.layers import MaskedGlobalPooling1D, RecurrentStack

CASES = list(itertools.product(["simple", "lstm", "gru"], [False, True], [1, 2]))


@pytest.mark.parametrize("cell, bidirectional, num_layers", CASES)
def test_recurrent_stack_shapes_masks_and_config(cell, bidirectional, num_layers):
    stack = RecurrentStack(6, cell=cell, bidirectional=bidirectional, num_layers=num_layers,
                           dropout=0.1, return_sequences=True, name="stack")
    x = np.random.default_rng(0).normal(size=(3, 5, 4)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], bool)
    out = stack(x, mask=mask).numpy()
    assert out.shape == (3, 5, 12 if bidirectional else 6)
    # masked steps do not influence valid ones: change the padded inputs, same valid outputs
    x2 = x.copy()
    x2[1, 2:] = 9.0
    out2 = stack(x2, mask=mask).numpy()
    np.testing.assert_allclose(out[1, :2], out2[1, :2], atol=1e-6)

    clone = RecurrentStack.from_config(stack.get_config())
    clone(x, mask=mask)
    clone.set_weights(stack.get_weights())
    np.testing.assert_allclose(clone(x, mask=mask).numpy(), out, atol=1e-6)


@pytest.mark.parametrize("cell", ["simple", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_return_state_and_initial_state(cell, bidirectional):
    stack = RecurrentStack(4, cell=cell, bidirectional=bidirectional, num_layers=2,
                           return_sequences=False, return_state=True)
    x = np.random.default_rng(0).normal(size=(2, 3, 5)).astype("float32")
    last, states = stack(x)
    per_layer = (2 if cell == "lstm" else 1) * (2 if bidirectional else 1)
    assert len(states) == 2 * per_layer
    assert all(tuple(s.shape) == (2, 4) for s in states)
    # running the sequence in two halves with carried state equals running it whole
    seq = RecurrentStack(4, cell=cell, num_layers=2, return_sequences=True, return_state=True)
    full, _ = seq(x)
    first, mid = seq(x[:, :2])
    second, _ = seq(x[:, 2:], initial_state=mid)
    np.testing.assert_allclose(full.numpy()[:, 2:], second.numpy(), atol=1e-5)
    np.testing.assert_allclose(full.numpy()[:, :2], first.numpy(), atol=1e-6)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="cell must be one of"):
        RecurrentStack(4, cell="lstmm")
    with pytest.raises(ValueError, match="merge_mode must be one of"):
        RecurrentStack(4, merge_mode="avg")


def test_masked_pooling_ignores_padding():
    x = np.array([[[1.0], [5.0], [100.0]], [[-2.0], [-100.0], [-100.0]]], "float32")
    mask = np.array([[1, 1, 0], [1, 0, 0]], bool)
    np.testing.assert_allclose(MaskedGlobalPooling1D("max")(x, mask=mask).numpy(), [[5.0], [-2.0]])
    np.testing.assert_allclose(MaskedGlobalPooling1D("mean")(x, mask=mask).numpy(),
                               [[3.0], [-2.0]])
    layer = MaskedGlobalPooling1D.from_config(MaskedGlobalPooling1D("mean").get_config())
    assert layer.mode == "mean"
    assert isinstance(layer, keras.layers.Layer)


@pytest.mark.parametrize("cell,bidirectional", [("lstm", False), ("gru", True)])
def test_weight_dropout_drops_recurrent_weights_only_while_training(cell, bidirectional):
    import tensorflow as tf

    x = np.tile(np.random.default_rng(0).normal(size=(1, 12, 3)).astype("float32"), (4, 1, 1))
    # 16 units: with 8, a GRU candidate column of the recurrent matrix is sometimes dropped
    # whole (2**-8), and then its reset gate's input weights get an exact zero gradient too.
    stack = RecurrentStack(16, cell=cell, bidirectional=bidirectional, weight_dropout=0.5)
    plain = RecurrentStack(16, cell=cell, bidirectional=bidirectional)
    stack(x), plain(x)
    plain.set_weights(stack.get_weights())
    assert len(stack.weights) == len(plain.weights)  # no extra weights to save or export
    # Inference (and so the exported graph) is the stack without weight drop.
    np.testing.assert_array_equal(np.asarray(stack(x, training=False)), np.asarray(plain(x)))
    a, b = np.asarray(stack(x, training=True)), np.asarray(stack(x, training=True))
    assert np.abs(a - np.asarray(plain(x))).max() > 1e-3 and np.abs(a - b).max() > 1e-3
    np.testing.assert_array_equal(a, np.broadcast_to(a[:1], a.shape))  # one mask per batch
    rnns = [stack.rnns[0].forward_layer, stack.rnns[0].backward_layer] if bidirectional else [
        stack.rnns[0]]
    cells = [r.cell for r in rnns]
    assert all(isinstance(c.recurrent_kernel, keras.Variable) for c in cells)  # put back

    @tf.function(autograph=False)
    def grads(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(stack(x, training=True) ** 2)
        return tape.gradient(loss, [v for c in cells for v in (c.kernel, c.recurrent_kernel)])

    for i in range(0, 2 * len(cells), 2):
        g = [t.numpy() for t in grads(x)]
        # DropConnect: about half the recurrent entries get no gradient, the input kernel all.
        assert 0.3 < (g[i + 1] == 0).mean() < 0.7 and (g[i] == 0).mean() == 0
    config = stack.get_config()
    assert config["weight_dropout"] == 0.5
    assert RecurrentStack.from_config(config).weight_dropout == 0.5
    del config["weight_dropout"]  # a stack saved before the option: none
    assert RecurrentStack.from_config(config).weight_dropout == 0.0
    with pytest.raises(ValueError, match="weight_dropout"):
        RecurrentStack(8, weight_dropout=1.0)
