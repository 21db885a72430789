"""SegRNN (Lin et al. 2023): a segment-recurrent forecaster for long horizons.

Per column (channel-independent, one set of weights for every column): subtract the window's
last value (the reference code's default normalisation, a RevIN without statistics), cut the
window into segments of ``seg_len`` rows, embed each (``Dense + ReLU``), run a GRU over the
segments, then decode every output segment in parallel (PMF): a position embedding and a
channel embedding start one step of the same GRU from the encoder's final state, and a linear
map reads ``seg_len`` values off it; the last value is added back. Few recurrent steps (96 rows
are 4 segments of 24) is what lets a GRU compete with Transformers on the Autoformer protocol
(look-back 96, horizons 96..720): the reference numbers are in ``PUBLISHED_AUTOFORMER``.

The layer is ``rnnzoo.families._segrnn_layers.SegmentRecurrence``. The window length is fixed
(a multiple of ``seg_len``): the exported graph takes exactly ``lookback`` rows, and the
forecast is not a function of a recurrent state fed row by row, so there is no ``step``
stream (``stream()`` raises ConfigError, as for every whole-window forecaster).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from rnnzoo.apps.forecasting.cli import INT8_TOLERANCE as FORECAST_CLI_INT8
from rnnzoo.apps.forecasting.data import DataConfig
from rnnzoo.apps.forecasting.inference import no_stream
from rnnzoo.apps.forecasting.model import ForecastingTask
from rnnzoo.config import rule
from rnnzoo.errors import ConfigError
from rnnzoo.export.bundle import MODEL_FILE
from rnnzoo.export.specs import GraphSpec, InputSpec
from rnnzoo.families.forecaster import synthetic_dataset

__all__ = ["DataConfig", "ModelConfig", "Task", "synthetic_dataset"]

#: int8 ships when it raises the evaluation MSE by at most this fraction (0.5%), the
#: forecasting application's rule (``rnnzoo.apps.forecasting.cli.INT8_TOLERANCE``).
INT8_MSE_TOLERANCE = FORECAST_CLI_INT8["relative"]


@dataclasses.dataclass
class ModelConfig:
    seg_len: int = rule(24, min=1)  # rows per segment (w); lookback must be a multiple
    units: int = rule(512, min=2)  # d: segment embedding and GRU width
    dropout: float = rule(0.5, min=0.0, max=1.0, max_exclusive=True)  # before the head
    channel_embedding: bool = True  # PMF input: [position | channel] (else position only)
    # The reference trains with MSE at look-back 96 (scripts/SegRNN/Lookback_96) and with
    # L1 ("--loss mae") in its look-back-720 scripts.
    loss: Literal["mse", "mae"] = "mse"


class Task(ForecastingTask):
    """A SegRNN forecaster; ``forecast(window)`` returns the next ``horizon`` steps."""

    streams = False

    def check_config(self) -> None:
        m, d = self.config.model, self.config.data
        if d.lookback % m.seg_len:
            raise ConfigError(f"{self.name}: lookback {d.lookback} is not a multiple of "
                              f"seg_len {m.seg_len}; use --set lookback="
                              f"{max(1, d.lookback // m.seg_len) * m.seg_len} or a seg_len "
                              f"that divides {d.lookback}")

    def build_model(self) -> Any:
        import keras

        from rnnzoo.families._segrnn_layers import SegmentRecurrence, TakeColumns
        from rnnzoo.layers.timeseries import AddReference, LastValueShift

        self.check_config()
        m, d = self.config.model, self.config.data
        window = keras.Input(shape=(d.lookback, self.num_inputs), dtype="float32",
                             name="window")
        x, ref = LastValueShift("last", name="shift")(window)
        y = SegmentRecurrence(m.seg_len, m.units, d.horizon, dropout=m.dropout,
                              channel_embedding=m.channel_embedding, name="segrnn")(x)
        if self.target_index != list(range(self.num_inputs)):
            y = TakeColumns(self.target_index, name="targets")(y)
        out = AddReference(self.target_index, name="unshift")(y, ref)
        out = keras.layers.Identity(name="forecast", dtype="float32")(out)
        return keras.Model(window, out, name=self.config.name)

    def loss(self) -> Any:
        import keras

        if self.config.model.loss == "mae":
            return keras.losses.MeanAbsoluteError()
        return keras.losses.MeanSquaredError()

    def metrics(self) -> list:
        return ["mae", "mse"]

    def _stream_graph(self) -> Any:
        raise ConfigError(no_stream(self.name) + "; SegRNN reads its window in segments and "
                          "decodes every output segment at once")

    def _graph_specs(self) -> list[GraphSpec]:
        """One graph over exactly ``lookback`` rows (the segments are fixed)."""
        window = InputSpec("window", "features", ("batch", self.lookback, self.num_inputs))
        return [GraphSpec("model", MODEL_FILE, self.model, [window], ["forecast"],
                          sizes=({"batch": 1}, {"batch": 8}, {"batch": 3}))]

    def _int8_rejection(self, comparison: Mapping[str, Any]) -> str | None:
        """int8 ships when it keeps the evaluation MSE (within 0.5%)."""
        a, b = comparison.get("mse_fp32"), comparison.get("mse_int8")
        if a is None or b is None:
            return "int8 is judged on the evaluation MSE; build it with eval data"
        if b > a * (1.0 + INT8_MSE_TOLERANCE):
            return (f"int8 raises the MSE by more than {INT8_MSE_TOLERANCE:.1%} "
                    f"({a:.4f} -> {b:.4f})")
        return None


# -- test support: the registry-generated tests build every entry with these ---------------------
TINY_OVERRIDES = {
    "model": {"units": 8, "seg_len": 4, "dropout": 0.0},
    "data": {"lookback": 16, "horizon": 6, "target": "OT", "features": "load",
             "protocol": "informer"},
    "training": {"epochs": 1, "batch_size": 32, "warmup_steps": 0, "early_stopping_patience": 0},
}
