"""Recurrent forecaster: a recurrent encoder over the look-back window, then either a direct
multi-horizon head (every step ahead at once from the last state) or a seq2seq decoder with
attention over the encoded window (as LSTMa in the Informer tables: Bahdanau et al. 2015).

The decoder is non-autoregressive: it runs over ``horizon`` learned query vectors, starting
from the encoder's final state, and attends over every encoder output at each step. That keeps
one exported graph with fused recurrent operators (no step loop) and no exposure bias.
``normalize: last`` makes the network forecast the change from the window's last observation
(added back in the graph), which is what carries a forecaster past the persistence baseline on
the strongly autocorrelated ETT series.

Data, metrics, ``forecast``, export and runtime come from the ``forecasting`` task type.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rnnzoo.apps.forecasting.data import DataConfig
from rnnzoo.apps.forecasting.model import ForecastingTask
from rnnzoo.config import rule

__all__ = ["DataConfig", "ModelConfig", "Task"]


@dataclasses.dataclass
class ModelConfig:
    cell: Literal["simple", "lstm", "gru"] = "lstm"
    units: int = rule(64, min=1)
    num_layers: int = rule(1, min=1)
    dropout: float = rule(0.0, min=0.0, max=1.0, max_exclusive=True)
    decoder: Literal["direct", "seq2seq"] = "direct"
    attention: Literal["additive", "multiplicative"] = "additive"  # seq2seq only
    attention_units: int = rule(64, min=1)
    hidden_units: int = rule(0, min=0)  # direct head: a dense layer before the output (0: none)
    normalize: Literal["none", "last", "mean"] = "last"


class Task(ForecastingTask):
    """A recurrent forecaster. ``forecast(window)`` returns the next ``horizon`` steps."""

    def build_model(self) -> Any:
        import keras

        from rnnzoo.layers import RecurrentStack, SequenceAttention
        from rnnzoo.layers.timeseries import AddReference, HorizonQueries, LastValueShift, OnesMask

        m, d = self.config.model, self.config.data
        n_in, n_out = self.num_inputs, self.num_targets
        window = keras.Input(shape=(None, n_in), dtype="float32", name="window")
        x, ref = window, None
        if m.normalize != "none":
            x, ref = LastValueShift(m.normalize, name="shift")(window)
        seq2seq = m.decoder == "seq2seq"
        # a streaming forecaster (see stream_graph) returns the encoder's state as well
        encoded = RecurrentStack.from_model_config(m, return_sequences=seq2seq,
                                                   return_state=seq2seq or self.streams,
                                                   name="encoder")(x)
        if seq2seq:
            enc_seq, states = encoded
            queries = HorizonQueries(d.horizon, m.units, name="queries")(window)
            dec = RecurrentStack.from_model_config(m, return_sequences=True,
                                                   name="decoder")(queries, initial_state=states)
            context, _ = SequenceAttention(m.attention_units, score=m.attention,
                                           name="attention")(dec, enc_seq, OnesMask()(enc_seq))
            h = keras.layers.Concatenate(name="combine")([dec, context])
            h = keras.layers.Dense(m.units, activation="tanh", name="attentional")(h)
            if m.dropout:
                h = keras.layers.Dropout(m.dropout, name="dropout")(h)
            out = keras.layers.Dense(n_out, dtype="float32", name="forecast_steps")(h)
        else:
            h = encoded[0] if self.streams else encoded
            if m.dropout:
                h = keras.layers.Dropout(m.dropout, name="dropout")(h)
            if m.hidden_units:
                h = keras.layers.Dense(m.hidden_units, activation="relu", name="hidden")(h)
            out = keras.layers.Dense(d.horizon * n_out, dtype="float32", name="forecast_flat")(h)
            out = keras.layers.Reshape((d.horizon, n_out), name="forecast_steps")(out)
        if ref is not None:
            out = AddReference(self.target_index, name="unshift")(out, ref)
        out = keras.layers.Identity(name="forecast", dtype="float32")(out)
        return keras.Model(window, out, name=self.config.name)

    @property
    def streams(self) -> bool:
        """Whether the forecast is a function of the encoder's state alone: no per-window
        normalisation (the rows are z-scored with the training split's statistics) and the
        direct head. Then a series can be fed one observation at a time."""
        m = self.config.model
        return m.normalize == "none" and m.decoder == "direct"

    def stream_graph(self) -> tuple[Any, list[str]] | None:
        """With ``streams``: the encoder from given states over the rows, then the head."""
        if not self.streams:
            return None
        model = self.model
        cached = getattr(self, "_stream", None)
        if cached is None or cached[0] is not model:
            import keras

            m = self.config.model
            encoder = model.get_layer("encoder")
            window = keras.Input((None, self.num_inputs), dtype="float32", name="window")
            states = [keras.Input((m.units,), dtype="float32", name=f"state_{i}")
                      for i in range(encoder.states_per_layer * m.num_layers)]
            h, new = encoder(window, initial_state=states)
            names = {layer.name for layer in model.layers}
            for name in ("hidden", "forecast_flat", "forecast_steps", "forecast"):
                if name in names:  # dropout is inert at inference
                    h = model.get_layer(name)(h)
            graph = keras.Model([window, *states], [h, *new], name="forecaster_step")
            self._stream = cached = (model, graph, len(states))
        return cached[1], ["forecast", *[f"new_state_{i}" for i in range(cached[2])]]


# -- test support: the registry-generated tests build every entry with these ---------------------
TINY_OVERRIDES = {
    "model": {"units": 8, "attention_units": 8},
    "data": {"lookback": 16, "horizon": 4, "target": "OT", "features": ""},
    "training": {"epochs": 1, "batch_size": 32, "warmup_steps": 0, "early_stopping_patience": 0},
}


def synthetic_dataset(directory: str | Path, n: int = 600, seed: int = 0) -> Path:
    """A learnable hourly CSV series (``date,load,OT``): OT is a daily sine plus a slower
    wave and a little noise, ``load`` a noisy lagged copy; a tiny model beats persistence."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    ot = np.sin(2 * np.pi * t / 24) + 0.5 * np.sin(2 * np.pi * t / 61) + 0.05 * rng.normal(
        size=n)
    load = np.roll(ot, 3) + 0.1 * rng.normal(size=n)
    path = Path(directory) / "synthetic_series.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    start = dt.datetime(2020, 1, 1)
    lines = ["date,load,OT"] + [
        f"{(start + dt.timedelta(hours=int(i))).isoformat(sep=' ')},{load[i]:.5f},{ot[i]:.5f}"
        for i in t]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
