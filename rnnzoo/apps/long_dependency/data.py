"""Long-dependency data: the two classic synthetic memory problems, generated from a seed, their
data specs and files, and the input encoding. TF-free.

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
the same keys), or an ``.npz`` file with ``x_train``, ``y_train``, ``x_dev``, ``y_dev``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rnnzoo.errors import ConfigError, DataError, short_repr
from rnnzoo.io import read_json
from rnnzoo.io.inputs import check_finite

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
        if not np.issubdtype(x.dtype, np.number):
            raise DataError(f"{where}: expected finite numbers, found dtype {x.dtype}")
        check_finite(x, where, axes=("sequence", "step", "feature"))
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


def check_problem(data: LongDependencyData, problem: str, name: str) -> None:
    """``data`` is of the model's problem, or a DataError with the setting that fixes it."""
    if data.problem != problem:
        raise DataError(f"{data.description}: a {data.problem} dataset, but {name!r} is "
                        f"configured for problem={problem}; pass --set "
                        f"problem={data.problem}")


def published_numbers(report: dict) -> dict:
    """Bai et al.'s numbers for the problem and ``T`` of a report (empty for other ``T``)."""
    return PUBLISHED.get((report["problem"], report["T"]), {})
