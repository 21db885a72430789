"""What a fused recurrent op computes, and how that travels from Keras tracing to the ONNX handler.

The tracing side (``_tracing.py``) emits one TensorFlow ``CudnnRNNV3`` op per recurrent layer.
When Keras emits that op itself (its cuDNN path) the op means exactly what cuDNN computes. When
rnnzoo emits it (SimpleRNN, GRU ``reset_after=False``, non-default activations, ...) the op name
carries a marker with the real cell equations, because ``CudnnRNNV3`` has no attribute for them:
``rnnzoo_fused-<cell>-lbr<0|1>-<act>.<act>[.<act>]-end``. Op names survive freezing, grappler
and function inlining (they only gain a scope prefix or a ``_N`` suffix), so the handler
(``_cudnn_handler.py``) finds the marker with a regular expression.

This module is pure Python (no TensorFlow, no tf2onnx) so both sides can share it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MARKER = "rnnzoo_fused"

#: Keras activation name -> (ONNX RNN activation name, alpha, beta). ``None``: no parameter.
#: Keras 3 ``hard_sigmoid`` is ``relu6(x + 3) / 6`` == ``HardSigmoid(alpha=1/6, beta=0.5)``.
ONNX_ACTIVATIONS: dict[str, tuple[str, float | None, float | None]] = {
    "tanh": ("Tanh", None, None),
    "sigmoid": ("Sigmoid", None, None),
    "relu": ("Relu", None, None),
    "hard_sigmoid": ("HardSigmoid", 1.0 / 6.0, 0.5),
    "linear": ("Affine", 1.0, 0.0),
    "softsign": ("Softsign", None, None),
    "softplus": ("Softplus", None, None),
    "elu": ("Elu", 1.0, None),
}

#: Number of gates of each cell type, and the ONNX operator that runs it.
GATES = {"lstm": 4, "gru": 3, "rnn": 1}
ONNX_OP = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}

#: ONNX defaults: LSTM (f, g, h), GRU (f, g), RNN (f). Writing them is optional.
DEFAULT_ACTIVATIONS = {
    "lstm": ("sigmoid", "tanh", "tanh"),
    "gru": ("sigmoid", "tanh"),
    "rnn": ("tanh",),
}

_SPEC_RE = re.compile(r"rnnzoo_fused-(lstm|gru|rnn)-lbr([01])-([a-z_.]+)-end")


@dataclass(frozen=True)
class CellSpec:
    """The equations of one fused recurrent op.

    ``activations`` follow ONNX order: LSTM (recurrent, cell, output), GRU (recurrent, cell),
    RNN (cell). ``linear_before_reset`` is only meaningful for GRU (Keras ``reset_after``).
    """

    cell: str
    activations: tuple[str, ...]
    linear_before_reset: bool = True

    def op_name(self) -> str:
        """The TensorFlow op name that carries this spec to the handler."""
        lbr = int(self.linear_before_reset)
        return f"{MARKER}-{self.cell}-lbr{lbr}-{'.'.join(self.activations)}-end"

    def onnx_activation_attrs(self) -> dict[str, list]:
        """ONNX ``activations``/``activation_alpha``/``activation_beta`` (empty if all default).

        Alpha and beta lists hold values only for the activations that take them, in order
        (that is how onnxruntime consumes them).
        """
        if self.activations == DEFAULT_ACTIVATIONS[self.cell]:
            return {}
        names, alphas, betas = [], [], []
        for act in self.activations:
            onnx_name, alpha, beta = ONNX_ACTIVATIONS[act]
            names.append(onnx_name)
            if alpha is not None:
                alphas.append(float(alpha))
            if beta is not None:
                betas.append(float(beta))
        attrs: dict[str, list] = {"activations": names}
        if alphas:
            attrs["activation_alpha"] = alphas
        if betas:
            attrs["activation_beta"] = betas
        return attrs


def parse_op_name(name: str) -> CellSpec | None:
    """The spec encoded in a TensorFlow op name by :meth:`CellSpec.op_name`, or ``None``."""
    m = _SPEC_RE.search(name)
    if m is None:
        return None
    cell, lbr, acts = m.group(1), m.group(2), tuple(m.group(3).split("."))
    n_act = len(DEFAULT_ACTIVATIONS[cell])
    if len(acts) != n_act or any(a not in ONNX_ACTIVATIONS for a in acts):
        return None
    return CellSpec(cell=cell, activations=acts, linear_before_reset=lbr == "1")
