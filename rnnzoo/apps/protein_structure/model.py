"""The Keras side of protein secondary structure (``TASK_CLASS``): the residue alphabet asset,
training data (long chains cut for training only, batches of similar length), the residue-mean
loss with the training Q8, the export graph and the int8 gate. A family
(``rnnzoo.families.protein``) adds ``build_model``. TensorFlow and Keras are imported inside
functions only."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo.apps._classification import compare_on_data, int8_rule
from rnnzoo.apps.protein_structure import cli
from rnnzoo.apps.protein_structure.data import (
    Q8,
    VOCAB_SIZE,
    ProteinData,
    ProteinPreprocessor,
    load_protein,
)
from rnnzoo.apps.protein_structure.inference import _StructurePredictor
from rnnzoo.config import EntryConfig
from rnnzoo.data.batching import pad_rows
from rnnzoo.errors import DataError, RunDirError
from rnnzoo.export.specs import GraphSpec, InputSpec, random_tokens
from rnnzoo.io import atomic_write_text
from rnnzoo.task import Task


class ProteinStructureTask(_StructurePredictor, Task):
    """Keras side of a residue tagger; a family adds ``build_model`` (input ``residues``
    [batch, time] int32, 0 = padding; output Q8 scores [batch, time, 8] with no Keras mask)."""

    task_type = "protein-structure"
    metric_directions = {"loss": "min", "q8": "max", "q3": "max", "macro_f1": "max"}
    head_layers = ("logits",)

    def new_preprocessor(self) -> ProteinPreprocessor:
        return ProteinPreprocessor()

    def save_assets(self, directory: Path) -> None:
        atomic_write_text(directory / "protein.json", self.preprocessor.to_json())

    @classmethod
    def load_preprocessor(cls, config: EntryConfig, directory: Path) -> ProteinPreprocessor:
        return ProteinPreprocessor.load(directory / "protein.json", RunDirError,
                                        "the run or preset is incomplete; save it again")

    def dummy_batch(self, batch_size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        lengths = np.full(batch_size, 13)
        lengths[1 if batch_size > 1 else 0] = 1
        residues = random_tokens(rng, lengths, 13, VOCAB_SIZE)
        targets = rng.integers(1, len(Q8) + 1, size=residues.shape).astype(np.int32)
        targets[residues == 0] = 0
        return residues, targets

    # -- training -------------------------------------------------------------------------------
    def load_data(self, path: str | os.PathLike, seed: int) -> ProteinData:
        return load_protein(path, self.config.data, seed)

    def limit_data(self, data: ProteinData, limit: int, seed: int = 0) -> ProteinData:
        """At most ``limit`` chains per split, a seeded sample kept in file order."""
        return data.limited(limit, seed)

    def adapt(self, data: ProteinData) -> None:
        """Nothing to fit (one fixed alphabet and label set); the training chains must be
        labelled."""
        if data.chains("train").labels is None:
            raise DataError(f"{data.description}: training needs DSSP labels (a CSV with "
                            "'expected', or a <name>.dssp file beside the FASTA file)")

    def _encoded(self, data: ProteinData, split: str, cut: int | None
                 ) -> tuple[list[list[int]], list[list[int]]]:
        seqs, labels = data.split(split)
        pre = self.preprocessor
        return ([pre.encode(s)[:cut] for s in seqs],
                [[k + 1 for k in pre.label_ids(q)][:cut] for q in labels])

    def datasets(self, data: ProteinData, batch_size: int, seed: int, bucketing: bool,
                 fixed_length: bool) -> tuple[Any, Any, int]:
        x, y = self._encoded(data, "train", self.config.data.max_length)
        dev = None
        if data.num_dev:  # whole chains: the dev Q8 is the evaluation's
            dx, dy = self._encoded(data, "dev", None)
            dev = self._dataset(dx, dy, batch_size, None, bucketing)
        return self._dataset(x, y, batch_size, seed, bucketing), dev, -(-len(x) // batch_size)

    def _dataset(self, x: list, y: list, batch_size: int, seed: int | None,
                 bucketing: bool) -> Any:
        """Batches of ``(residues, targets)``; with a seed reshuffled every epoch, chains of
        similar length batched together (pools of 50 batches sorted by length), which is most
        of the speed: a batch runs as many recurrent steps as its longest chain. Without a
        seed (dev): sorted by length."""
        import tensorflow as tf

        state = {"epoch": 0}
        n = len(x)

        def batches() -> Any:
            if seed is None:
                order = np.argsort([len(s) for s in x], kind="stable")
            else:
                rng = np.random.default_rng([seed, state["epoch"]])
                state["epoch"] += 1
                order = rng.permutation(n)
                if bucketing:
                    pool = 50 * batch_size
                    order = np.concatenate([sorted(order[i: i + pool], key=lambda k: len(x[k]))
                                            for i in range(0, n, pool)]).astype(np.int64)
            groups = [order[i: i + batch_size] for i in range(0, n, batch_size)]
            if seed is not None:
                rng.shuffle(groups)
            for idx in groups:
                yield pad_rows([x[i] for i in idx]), pad_rows([y[i] for i in idx])

        spec = (tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.int32))
        ds = tf.data.Dataset.from_generator(batches, output_signature=spec)
        return ds.apply(tf.data.experimental.assert_cardinality(-(-n // batch_size))).prefetch(2)

    def loss(self) -> Any:
        from rnnzoo.layers.protein import ResidueCrossEntropy

        return ResidueCrossEntropy(q3_weight=getattr(self.config.model, "q3_weight", 0.0))

    def metrics(self) -> list:
        from rnnzoo.layers.protein import ResidueAccuracy

        return [ResidueAccuracy(name="q8")]  # over the epoch's residues: the dev Q8

    # -- inference ---------------------------------------------------------------------------
    def _scores_of(self, residues: np.ndarray) -> np.ndarray:
        return self.keras_graphs().run("model", {"residues": residues})["logits"]

    # -- export ---------------------------------------------------------------------------------
    def _graph_specs(self) -> list[GraphSpec]:
        inputs = [InputSpec("residues", "tokens", ("batch", "time"), "int32", VOCAB_SIZE)]
        return [GraphSpec("model", "model.onnx", self.model, inputs, ["logits"],
                          sequence_outputs={"logits": "residues"})]

    def _export_preprocessing(self) -> dict:
        return {"protein": "assets/protein.json", "padding": "post", "pad_id": 0,
                "vocab_size": VOCAB_SIZE, "outputs": "Q8 scores (softmax -> probabilities)"}

    def _compare_runtimes(self, reference: Any, candidate: Any, eval_data: Any = None) -> dict:
        """How much int8 changes the Q8 states: agreement on the example chains, and the dev
        Q8 of both when ``eval_data`` is given."""
        inputs = cli.example_inputs()
        a = "".join(r.q8 for r in reference.predict_structure(inputs))
        b = "".join(r.q8 for r in candidate.predict_structure(inputs))
        same = sum(x == y for x, y in zip(a, b)) / len(a)
        out: dict[str, Any] = {"q8_agreement": same}
        summary = f"Q8 agreement {same:.1%} on {len(a)} example residues"
        if eval_data is not None:
            found = compare_on_data(self, reference, candidate, eval_data, ["q8"])
            out.update({"eval_data": found["description"], "q8_fp32": found["fp32"],
                        "q8_int8": found["int8"],
                        "metric_difference": found["int8"] - found["fp32"]})
            summary += f"; q8 fp32 {found['fp32']:.4f} -> int8 {found['int8']:.4f}"
        out["summary"] = summary
        return out

    def _int8_rejection(self, comparison: Mapping[str, Any]) -> str | None:
        """int8 ships when it loses at most half a point of Q8 on the evaluation data;
        without data, when it changes at most 2% of the example residues' states."""
        return int8_rule(comparison, "metric_difference",
                         "int8 loses more than 0.5 points of Q8", "q8_agreement", 0.98,
                         "int8 changes more than 2% of the example residues' Q8 states")


TASK_CLASS = ProteinStructureTask
