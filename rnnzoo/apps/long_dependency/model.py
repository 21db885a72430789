"""Task type ``long-dependency``: the classic synthetic memory problems of the RNN literature.

Two problems, in the setups of Bai, Kolter & Koltun (2018, "An empirical evaluation of generic
convolutional and recurrent networks for sequence modeling"), generated deterministically from a
seed for any length ``T``:

* ``adding``: ``T`` steps of two features, a value drawn from U(0, 1) and a marker that is 1 at
  exactly two random steps; the target is the sum of the two marked values. A model that always
  predicts 1 scores MSE 1/6 = 0.1667 (the variance of the sum), so anything clearly below that
  has carried two numbers over up to ``T`` steps.
* ``copy``: ten digits from 1..8, ``T - 1`` blanks (0), then the marker 9 for eleven steps; the
  target is blank everywhere except the last ten steps, which repeat the ten digits. A model
  with no memory scores a cross-entropy of ``10 ln 8 / (T + 20)`` averaged over all ``T + 20``
  steps (Bai et al.'s baseline), and recalls 1 digit in 8.

Data is a spec, not a file of arrays (``adding:T=200`` on the command line, or a JSON file with
the same keys), or an ``.npz`` file with ``x_train``, ``y_train``, ``x_dev``, ``y_dev``. User call
(Keras and runtime alike): ``solve(x)`` (alias ``predict``; adding: sums ``[n]``; copy: digits
``[n, T+20]``) and ``evaluate(x, references)``; CLI verb ``rnnzoo solve``. One exported graph:
float ``x [batch, time, features]`` -> ``y``.
"""

from __future__ import annotations

import abc
import argparse
import dataclasses
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rnnzoo.config import EntryConfig
from rnnzoo.errors import ConfigError, DataError, RunDirError, short_repr
from rnnzoo.export.bundle import MODEL_FILE, BundleError, BundleRuntime, check_count
from rnnzoo.export.specs import GraphSpec, InputSpec
from rnnzoo.io import atomic_write_text, read_json
from rnnzoo.task import Task

PROBLEMS = ("adding", "copy")
COPY_DIGITS = 10  # digits to remember (Bai et al.: 10)
COPY_CLASSES = 10  # 0 blank, 1..8 digits, 9 marker
FEATURES = {"adding": 2, "copy": COPY_CLASSES}
ASSET_FILE = "problem.json"
ADDING_BASELINE = 1.0 / 6.0  # MSE of always predicting 1 (the variance of U(0,1) + U(0,1))

# Bai, Kolter & Koltun 2018, Table 1 (adding: test MSE at T=600; copy: test loss at T=1000).
PUBLISHED = {
    ("adding", 600): {"LSTM": 0.164, "GRU": 5.3e-5, "vanilla RNN": 0.177, "TCN": 5.8e-5},
    ("copy", 1000): {"LSTM": 0.0204, "GRU": 0.0197, "TCN": 3.5e-5},
}
PUBLISHED_SOURCE = "Bai, Kolter & Koltun 2018, Table 1"


def copy_baseline(length: int) -> float:
    """Cross-entropy per step of a memoryless copy model: ``10 ln 8 / (T + 20)``."""
    return COPY_DIGITS * math.log(8) / (length + 2 * COPY_DIGITS)


# -- generators (numpy only: the runtime uses them for its examples) ---------------------------
def adding_problem(n: int, length: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``x [n, T, 2]`` float32 (values, markers), ``y [n, 1]`` float32: the sum of the two
    marked values (positions uniform over the whole sequence, as in Bai et al.'s code)."""
    rng = np.random.default_rng(seed)
    if length < 2:
        raise DataError(f"adding problem: T must be >= 2 (two marked steps), found {length}")
    values = rng.random((n, length), dtype=np.float32)
    keys = rng.random((n, length))
    first_two = np.argsort(keys, axis=1)[:, :2]  # two distinct positions per row
    markers = np.zeros((n, length), np.float32)
    np.put_along_axis(markers, first_two, 1.0, axis=1)
    y = np.take_along_axis(values, first_two, axis=1).sum(1, keepdims=True)
    return np.stack([values, markers], axis=-1), y.astype(np.float32)


def copy_memory(n: int, length: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``x [n, T+20]`` int8 digits, ``y [n, T+20]`` int8: ten digits, ``T - 1`` blanks, eleven
    markers; the target repeats the digits over the last ten steps (Bai et al.'s setup)."""
    rng = np.random.default_rng(seed)
    if length < 1:
        raise DataError(f"copy memory: T must be >= 1, found {length}")
    digits = rng.integers(1, 9, size=(n, COPY_DIGITS))
    total = length + 2 * COPY_DIGITS
    x = np.zeros((n, total), np.int8)
    y = np.zeros((n, total), np.int8)
    x[:, :COPY_DIGITS] = digits
    x[:, COPY_DIGITS + length - 1:] = 9
    y[:, -COPY_DIGITS:] = digits
    return x, y


GENERATORS = {"adding": adding_problem, "copy": copy_memory}


def features(problem: str, x: Any, where: str = "x") -> np.ndarray:
    """Raw inputs as the model's float32 ``[n, time, features]``: adding inputs are already
    that; copy digits ``[n, time]`` are one-hot encoded."""
    if isinstance(x, list):
        try:
            x = np.asarray(x)
        except ValueError:
            raise DataError(f"{where}: rows of different lengths; pass a rectangular array") \
                from None
    if not isinstance(x, np.ndarray):
        raise DataError(f"{where}: expected a numpy array, found {type(x).__name__}")
    if x.size == 0:
        raise DataError(f"{where}: empty input (shape {x.shape})")
    if problem == "adding":
        if x.ndim != 3 or x.shape[2] != 2:
            raise DataError(f"{where}: the adding problem takes [n, time, 2] (value, marker), "
                            f"found shape {x.shape}")
        if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all():
            raise DataError(f"{where}: expected finite numbers")
        return x.astype(np.float32)
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.integer):
        raise DataError(f"{where}: copy memory takes integer digits [n, time], found shape "
                        f"{x.shape} dtype {x.dtype}")
    if x.min() < 0 or x.max() >= COPY_CLASSES:
        raise DataError(f"{where}: copy digits must be in [0, {COPY_CLASSES}), found "
                        f"{int(x.min())}..{int(x.max())}")
    return np.eye(COPY_CLASSES, dtype=np.float32)[x.astype(np.int64)]


# -- data ------------------------------------------------------------------------------------
@dataclasses.dataclass
class DataConfig:
    problem: Literal["adding", "copy"] = "adding"


@dataclasses.dataclass
class LongDependencyData:
    problem: str
    length: int  # T (copy sequences are T + 20 steps long)
    x_train: np.ndarray
    y_train: np.ndarray
    x_dev: np.ndarray
    y_dev: np.ndarray
    description: str

    @property
    def num_train(self) -> int:
        return len(self.x_train)

    @property
    def num_dev(self) -> int:
        return len(self.x_dev)

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name == "train":
            return self.x_train, self.y_train
        if name in ("dev", "test"):  # generated: the dev split is a fresh held-out draw
            return self.x_dev, self.y_dev
        if name == "all":
            return (np.concatenate([self.x_train, self.x_dev]),
                    np.concatenate([self.y_train, self.y_dev]))
        raise ConfigError(f"split {name!r}: long-dependency data has the splits dev (also "
                          "'test'), train and all")


SPEC_KEYS = {"problem": str, "T": int, "train": int, "dev": int, "seed": int}
SPEC_DEFAULTS = {"T": 200, "train": 20000, "dev": 1000, "seed": 0}
_SPEC = re.compile(r"^(adding|copy)(?::(.*))?$")


def parse_spec(text: str) -> dict[str, Any]:
    """``adding:T=200,train=20000,dev=1000,seed=0`` -> a spec dict (defaults filled in)."""
    found = _SPEC.match(text.strip())
    if not found:
        raise DataError(f"data {text!r}: expected a spec such as adding:T=200 or "
                        "copy:T=100,train=10000 (problems: adding, copy), a JSON spec file or "
                        "an .npz file")
    spec: dict[str, Any] = {"problem": found.group(1)}
    for part in filter(None, (found.group(2) or "").split(",")):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in SPEC_KEYS or key == "problem":
            raise DataError(f"data {text!r}: {part!r} is not KEY=VALUE with KEY one of T, train, "
                            "dev, seed")
        try:
            spec[key] = int(value)
        except ValueError:
            raise DataError(f"data {text!r}: {key}={value!r} is not an integer") from None
    return check_spec(spec, f"data {text!r}")


def check_spec(spec: Any, where: str) -> dict[str, Any]:
    """A spec dict with every key checked and defaults filled in."""
    if not isinstance(spec, dict):
        raise DataError(f"{where}: expected a JSON object with problem, T, train, dev, seed")
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise DataError(f"{where}: unknown key(s) {unknown}; valid keys: "
                        f"{', '.join(SPEC_KEYS)}")
    out = {**SPEC_DEFAULTS, **spec}
    if out.get("problem") not in PROBLEMS:
        raise DataError(f"{where}: problem must be one of {', '.join(PROBLEMS)}, found "
                        f"{short_repr(out.get('problem'))}")
    lows = {"T": 2 if out["problem"] == "adding" else 1, "train": 1, "dev": 0, "seed": 0}
    for key, low in lows.items():
        value = out[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise DataError(f"{where}: {key} must be an integer >= {low}, found "
                            f"{short_repr(value)}")
    if out["seed"] >= 2**31:
        raise DataError(f"{where}: seed must be < 2**31, found {out['seed']}")
    return out


def generate(spec: dict[str, Any]) -> LongDependencyData:
    """The splits of a spec: train from ``seed``, dev from ``seed + 1`` (disjoint draws)."""
    gen = GENERATORS[spec["problem"]]
    x_train, y_train = gen(spec["train"], spec["T"], spec["seed"])
    x_dev, y_dev = gen(spec["dev"], spec["T"], spec["seed"] + 1)
    desc = (f"{spec['problem']} T={spec['T']} ({spec['train']} train / {spec['dev']} dev, "
            f"seed {spec['seed']})")
    return LongDependencyData(spec["problem"], spec["T"], x_train, y_train, x_dev, y_dev, desc)


def load_npz(path: Path) -> LongDependencyData:
    """Arrays saved by the user: ``x_train``, ``y_train``, ``x_dev``, ``y_dev`` (dev may be
    empty); the problem is read from their shapes (float [n, T, 2] -> adding, int [n, T] ->
    copy). Never unpickles."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({short_repr(exc, 120)})") from None
    missing = [k for k in ("x_train", "y_train") if k not in arrays]
    if missing:
        raise DataError(f"{path}: missing array(s) {', '.join(missing)}; expected x_train, "
                        "y_train, x_dev, y_dev")
    x = arrays["x_train"]
    problem = "adding" if x.ndim == 3 else "copy"
    features(problem, x, f"{path}: x_train")
    x_dev = arrays.get("x_dev", x[:0])
    y_dev = arrays.get("y_dev", arrays["y_train"][:0])
    for name, (a, b) in {"train": (x, arrays["y_train"]), "dev": (x_dev, y_dev)}.items():
        if len(a) != len(b):
            raise DataError(f"{path}: x_{name} has {len(a)} rows but y_{name} {len(b)}")
    length = x.shape[1] if problem == "adding" else x.shape[1] - 2 * COPY_DIGITS
    return LongDependencyData(problem, int(length), x, arrays["y_train"], x_dev, y_dev,
                              f"{path.name} ({problem}, {len(x)} train / {len(x_dev)} dev)")


def load_long_dependency(source: str | os.PathLike) -> LongDependencyData:
    """A spec string (``adding:T=200``), a JSON spec file or an ``.npz`` file."""
    path = Path(source)
    if path.suffix == ".npz" and path.is_file():
        return load_npz(path)
    if path.suffix == ".json":
        if not path.is_file():
            raise DataError(f"{path}: no such file")
        return generate(check_spec(read_json(path, DataError, "expected a JSON spec"), str(path)))
    if path.exists():
        raise DataError(f"{path}: expected a spec (adding:T=200), a .json spec file or an .npz "
                        "file")
    return generate(parse_spec(str(source)))


class LongDependencyPreprocessor:
    """Knows the problem (the input encoding and the output head follow from it)."""

    is_fitted = True

    def __init__(self, problem: str) -> None:
        self.problem = problem

    def __call__(self, x: Any) -> np.ndarray:
        return features(self.problem, x)


# -- the user call, once for Keras and the runtime --------------------------------------------
class _Solver(abc.ABC):
    preprocessor: LongDependencyPreprocessor

    @abc.abstractmethod
    def _outputs(self, feats: np.ndarray) -> np.ndarray:
        """The model's raw output for float features ``[n, time, features]``."""

    @property
    def problem(self) -> str:
        return self.preprocessor.problem

    def predict_raw(self, x: Any, batch_size: int = 256) -> np.ndarray:
        """Model outputs: adding ``[n, 1]`` sums; copy ``[n, time, 10]`` probabilities."""
        feats = features(self.problem, x)
        batch_size = check_count("batch_size", batch_size)
        parts = [np.asarray(self._outputs(feats[i:i + batch_size]), np.float32)
                 for i in range(0, len(feats), batch_size)]
        return np.concatenate(parts)

    def solve(self, x: Any, batch_size: int = 256) -> np.ndarray:
        """The user call (``rnnzoo solve``). Adding: the predicted sums ``[n]``; copy: the
        predicted digit at every step ``[n, T+20]``."""
        out = self.predict_raw(x, batch_size)
        return out[:, 0] if self.problem == "adding" else out.argmax(-1).astype(np.int32)

    def predict(self, x: Any, batch_size: int = 256) -> np.ndarray:
        """The same as :meth:`solve`."""
        return self.solve(x, batch_size)

    def evaluate(self, x: Any, y: Any, batch_size: int = 256) -> dict[str, Any]:
        """The problem's metrics against references in the form ``predict`` returns them
        (adding: sums ``[n]``; copy: digits ``[n, T+20]``): see :meth:`score`."""
        return self.score(x, y, batch_size)

    def score(self, x: Any, y: Any, batch_size: int = 256) -> dict[str, Any]:
        """The problem's loss against targets ``y``, with its memoryless baseline."""
        out = self.predict_raw(x, batch_size)
        y = np.asarray(y)
        if len(y) != len(out):
            raise DataError(f"score: {len(out)} inputs but {len(y)} targets")
        n = len(out)
        if self.problem == "adding":
            mse = float(np.mean((out[:, 0] - y.reshape(n)) ** 2))
            length = out.shape[0] and np.asarray(x).shape[1]
            return {"problem": "adding", "T": int(length), "examples": n, "mse": mse,
                    "loss": mse, "baseline": ADDING_BASELINE}
        probs = np.clip(out, 1e-12, 1.0)
        y = y.astype(np.int64)
        nll = -np.log(np.take_along_axis(probs, y[..., None], -1)[..., 0])
        pred = out.argmax(-1)
        tail = slice(-COPY_DIGITS, None)
        length = out.shape[1] - 2 * COPY_DIGITS
        return {"problem": "copy", "T": int(length), "examples": n, "loss": float(nll.mean()),
                "recall_accuracy": float((pred[:, tail] == y[:, tail]).mean()),
                "baseline": copy_baseline(length)}


def _published(report: dict) -> dict:
    return PUBLISHED.get((report["problem"], report["T"]), {})


def format_score(report: dict) -> str:
    """One headline line (and the published numbers when T matches Bai et al.'s)."""
    if report["problem"] == "adding":
        line = (f"adding T={report['T']}: MSE {report['mse']:.4g} (predict-1 baseline "
                f"{report['baseline']:.4f}; {report['examples']} sequences)")
    else:
        line = (f"copy T={report['T']}: loss {report['loss']:.4g} per step (memoryless "
                f"baseline {report['baseline']:.4g}), digits recalled "
                f"{report['recall_accuracy']:.1%} ({report['examples']} sequences)")
    published = _published(report)
    if published:
        table = " · ".join(f"{k} {v:g}" for k, v in published.items())
        line += f"\n  published ({PUBLISHED_SOURCE}): {table}"
    return line


class LongDependencyTask(_Solver, Task):
    """Keras side of a long-dependency model; a family adds ``build_model``."""

    task_type = "long-dependency"
    verb = "solve"
    metric_directions = {"loss": "min", "mse": "min", "accuracy": "max"}

    @property
    def num_features(self) -> int:
        return FEATURES[self.config.data.problem]

    def new_preprocessor(self) -> LongDependencyPreprocessor:
        return LongDependencyPreprocessor(self.config.data.problem)

    def save_assets(self, directory: Path) -> None:
        atomic_write_text(directory / ASSET_FILE, json.dumps(
            {"problem": self.preprocessor.problem}) + "\n")

    @classmethod
    def load_preprocessor(cls, config: EntryConfig, directory: Path) -> LongDependencyPreprocessor:
        path = directory / ASSET_FILE
        info = read_json(path, RunDirError, "re-train or re-save the model")
        if not isinstance(info, dict) or info.get("problem") != config.data.problem:
            raise RunDirError(f"{path}: expected problem {config.data.problem!r} (the config's), "
                              f"found {short_repr(info)}")
        return LongDependencyPreprocessor(config.data.problem)

    def dummy_batch(self, batch_size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        problem = self.config.data.problem
        x, y = GENERATORS[problem](batch_size, 9, seed)
        x = features(problem, x)
        if batch_size > 1:  # post-padded: row 1 keeps its first two steps (zero frames after)
            x[1, 2:] = 0.0
        return x, (y if problem == "adding" else y.astype(np.int32))

    # -- training -------------------------------------------------------------------------------
    def load_data(self, path: str | os.PathLike, seed: int) -> LongDependencyData:
        return load_long_dependency(path)

    def adapt(self, data: LongDependencyData) -> None:
        if data.problem != self.config.data.problem:
            raise DataError(f"{data.description}: a {data.problem} dataset, but {self.name!r} is "
                            f"configured for problem={self.config.data.problem}; pass --set "
                            f"problem={data.problem}")

    def limit_data(self, data: LongDependencyData, limit: int, seed: int = 0
                   ) -> LongDependencyData:
        """At most ``limit`` sequences per split (a seeded sample, in order)."""
        rng = np.random.default_rng(seed)

        def cut(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            if len(x) <= limit:
                return x, y
            keep = np.sort(rng.choice(len(x), limit, replace=False))
            return x[keep], y[keep]

        (xt, yt), (xd, yd) = cut(data.x_train, data.y_train), cut(data.x_dev, data.y_dev)
        return dataclasses.replace(data, x_train=xt, y_train=yt, x_dev=xd, y_dev=yd,
                                   description=f"{data.description} (at most {limit} per split)")

    def datasets(self, data: LongDependencyData, batch_size: int, seed: int, bucketing: bool,
                 fixed_length: bool) -> tuple[Any, Any, int]:
        import tensorflow as tf

        problem = data.problem

        def make(x: np.ndarray, y: np.ndarray, shuffle: bool) -> Any:
            y = y.astype(np.float32 if problem == "adding" else np.int32)
            ds = tf.data.Dataset.from_tensor_slices((x, y))
            if shuffle:
                ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
            ds = ds.batch(batch_size)
            if problem == "copy":  # digits stay int8 in memory; one-hot per batch
                ds = ds.map(lambda a, b: (tf.one_hot(tf.cast(a, tf.int32), COPY_CLASSES), b))
            options = tf.data.Options()
            options.autotune.enabled = False
            options.deterministic = True
            return ds.prefetch(2).with_options(options)

        dev = make(data.x_dev, data.y_dev, False) if data.num_dev else None
        return (make(data.x_train, data.y_train, True), dev,
                math.ceil(data.num_train / batch_size))

    def loss(self) -> Any:
        import keras

        if self.config.data.problem == "adding":
            return keras.losses.MeanSquaredError()
        return keras.losses.SparseCategoricalCrossentropy()

    def metrics(self) -> list:
        return [] if self.config.data.problem == "adding" else ["accuracy"]

    # -- inference and evaluation ---------------------------------------------------------------
    def _outputs(self, feats: np.ndarray) -> np.ndarray:
        return self.keras_graphs().run("model", {"x": feats})["y"]

    def evaluate_data(self, data: LongDependencyData, split: str = "dev",
                      limit: int | None = None, **options: Any) -> dict:
        self.adapt(data)
        x, y = data.split(split)
        x, y = x[:limit], y[:limit]
        if not len(x):
            raise DataError(f"{data.description}: the {split} split is empty")
        report = self.score(x, y)
        report.update(split=split, data=data.description, published=_published(report))
        return report

    def format_report(self, report: dict) -> str:
        return format_score(report)

    # -- export ---------------------------------------------------------------------------------
    def graph_specs(self) -> list[GraphSpec]:
        x = InputSpec("x", "features", ("batch", "time", self.num_features))
        return [GraphSpec("model", MODEL_FILE, self.model, [x], ["y"])]

    def export_preprocessing(self) -> dict:
        return {"problem": self.config.data.problem, "features": self.num_features}

    def compare_runtimes(self, reference: Any, candidate: Any, eval_data: Any = None) -> dict:
        """How much int8 changes the outputs on generated inputs (T=50), and the problem's loss
        on ``eval_data``'s dev split when given."""
        x, y = GENERATORS[self.problem](64, 50, 7)
        drift = float(np.abs(reference.predict_raw(x) - candidate.predict_raw(x)).max())
        out: dict[str, Any] = {"max_output_drift": drift}
        summary = f"max output drift {drift:.4g} on 64 generated sequences"
        if eval_data is not None:
            data = self.load_data(eval_data, self.config.training.seed)
            xd, yd = data.split("dev")
            a, b = reference.score(xd, yd), candidate.score(xd, yd)
            out.update(loss_fp32=a["loss"], loss_int8=b["loss"])
            summary += f"; loss fp32 {a['loss']:.4g} -> int8 {b['loss']:.4g}"
        out["summary"] = summary
        return out

    @classmethod
    def example_inputs(cls) -> list:
        return [{"count": 3, "T": 12, "seed": 0}, {"count": 2, "T": 5, "seed": 1}]

    @classmethod
    def example_outputs(cls, model: Any, inputs: list) -> Any:
        out = []
        for item in inputs:
            x, _ = GENERATORS[model.problem](item["count"], item["T"], item["seed"])
            raw = model.predict_raw(x)
            out.append({"predict": model.predict(x).tolist(),
                        "raw": np.round(raw, 5).reshape(len(raw), -1)[:, :12].tolist()})
        return out

    # -- command line ---------------------------------------------------------------------------
    @classmethod
    def add_verb_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--count", type=int, default=5,
                            help="generated sequences to solve (default 5)")
        parser.add_argument("--length", type=int, default=None, metavar="T",
                            help="their length T (default 200)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--file", help="an .npy file of inputs instead (adding: float "
                            "[n, T, 2]; copy: int digits [n, T+20])")
        parser.add_argument("--json", action="store_true", help="one JSON object per line")

    @classmethod
    def run_verb(cls, model: Any, args: argparse.Namespace) -> int:
        length = args.length if args.length is not None else 200
        count = check_count("--count", args.count)
        check_count("--length", length)
        if args.file:
            try:
                x = np.load(args.file, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise DataError(f"--file {args.file}: not a readable .npy array "
                                f"({short_repr(exc, 120)})") from None
            y = None
        else:
            x, y = GENERATORS[model.problem](count, length, args.seed)
        pred = model.predict(x)
        for i, p in enumerate(pred):
            target = None if y is None else y[i]
            if model.problem == "adding":
                row = {"prediction": round(float(p), 5)}
                if target is not None:
                    row["target"] = round(float(target[0]), 5)
            else:
                row = {"recalled": p[-COPY_DIGITS:].tolist()}
                if target is not None:
                    row["target"] = target[-COPY_DIGITS:].tolist()
            print(json.dumps(row) if args.json else
                  "  ".join(f"{k} {v}" for k, v in row.items()))
        if y is not None and not args.json:
            print(format_score(model.score(x, y)))
        return 0


class LongDependencyRuntime(_Solver, BundleRuntime):
    """``predict(x)`` for a long-dependency bundle, with onnxruntime and numpy only."""

    def __init__(self, path: str | os.PathLike, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        problem = self.manifest.get("preprocessing", {}).get("problem")
        if problem not in PROBLEMS:
            raise BundleError(f"{self.path}: preprocessing.problem must be one of "
                              f"{', '.join(PROBLEMS)}, found {short_repr(problem)}; re-export "
                              "the bundle")
        self.preprocessor = LongDependencyPreprocessor(problem)

    def _outputs(self, feats: np.ndarray) -> np.ndarray:
        return self.run("model", {"x": feats})["y"]


TASK_CLASS = LongDependencyTask
RUNTIME_CLASS = LongDependencyRuntime
