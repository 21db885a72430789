"""Gradient diagnostics through time, for any zoo model: see vanishing and exploding gradients.

Two entry points, both generic over families (they find the recurrent layers of any Keras model,
nested in stacks, ``Bidirectional`` wrappers or decoders):

* during training (``diagnose_every: N`` in the recipe, ``rnnzoo train --diagnose``): every N
  optimizer steps, the global gradient norm and the norm per layer of the step's gradients,
  how often global-norm clipping fired and by how much, and the temporal profile on a fixed
  probe batch; written to ``RUN/diagnostics.json`` and plotted to ``RUN/diagnostics.png``.
* after training (``rnnzoo diagnose``, :func:`diagnose`): the temporal profile, gate saturation
  (LSTM/GRU), the spectral radius and singular values of every recurrent matrix, and the
  effective memory length; plain data, plus PNG plots and a text summary.

The temporal profile is ``||dL/dh_t||`` for every step t of every recurrent layer: the *total*
derivative of the loss with respect to the hidden state, through all later steps. It is measured
exactly by adding a zero perturbation ``e_t`` to the state each step produces (the cell's
``call`` is wrapped for the duration of one eager forward pass) and taking ``dL/de_t`` with a
gradient tape; the model's weights and outputs are untouched. For a linear RNN
``h_t = W h_{t-1} + U x_t`` with the loss on ``h_T`` this is ``(W^T)^(T-t) dL/dh_T``.

Nothing here imports TensorFlow at module level.

The package, by role: ``measure`` (finding recurrent layers, the temporal profile, memory length,
spectra, gate saturation), ``report`` (:func:`diagnose` and its summary), ``callback`` (during
training) and ``plots``. Everything public is re-exported here.
"""

from __future__ import annotations

from rnnzoo.diagnostics.callback import training_callback
from rnnzoo.diagnostics.measure import (
    DIAGNOSTICS_FILE,
    DIAGNOSTICS_PLOT,
    GATES,
    MEMORY_FLOOR,
    SATURATION,
    cell_kind,
    gate_activations,
    gate_saturation,
    layer_norms,
    memory_length,
    probe_batch,
    recurrent_layers,
    recurrent_matrices,
    spectrum,
    temporal_profile,
)
from rnnzoo.diagnostics.plots import plot_profiles, plot_training, write_report
from rnnzoo.diagnostics.report import diagnose, summarize

__all__ = [
    "DIAGNOSTICS_FILE", "DIAGNOSTICS_PLOT", "GATES", "MEMORY_FLOOR", "SATURATION", "cell_kind",
    "diagnose", "gate_activations", "gate_saturation", "layer_norms", "memory_length",
    "plot_profiles", "plot_training", "probe_batch", "recurrent_layers", "recurrent_matrices",
    "spectrum", "summarize", "temporal_profile", "training_callback", "write_report",
]
