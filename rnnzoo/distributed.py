"""Multi-worker training support: the Keras patch, cluster helpers, worker sync, Ray Train.

Why this module exists: with Keras 3 (up to at least 3.15) ``model.fit`` under
``tf.distribute.MultiWorkerMirroredStrategy`` fails out of the box (keras-team/keras#20585):

1. ``TensorFlowTrainer._maybe_symbolic_build`` probes a batch with
   ``strategy.reduce("MEAN", (x, y), axis=None)``; the collective strategy does not map over
   nested structures -> ``ValueError: Attempt to convert a value (PerReplica...)``.
2. ``reduce_per_replica`` then reduces scalar losses/metrics with ``strategy.reduce(..., axis=0)``
   -> ``Invalid reduction dimension 0 for input with 0 dimensions``.

``apply_keras_multiworker_patch()`` fixes exactly those two spots, only for the Keras versions
known to need it, and only for ``MultiWorkerMirroredStrategy`` (every other path is delegated to
the original functions). ``tests/test_distributed.py`` keeps a canary that trains without the
patch and is expected to fail, so CI says when upstream fixes Keras and the patch can go.

Nothing here imports TensorFlow at module level: ``import rnnzoo`` stays TF-free.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from typing import Any

from rnnzoo.errors import ConfigError, DistributedError

# Keras versions with keras-team/keras#20585 (verified broken up to 3.15.1; the upper bound is
# the first version nobody has checked: pyproject pins keras<3.16 to match).
KERAS_PATCH_RANGE: tuple[tuple[int, int], tuple[int, int]] = ((3, 0), (3, 16))
# "auto" (patch the versions above), "always" (patch any version), "never" (e.g. to check
# whether a new Keras release works without it).
PATCH_ENV = "RNNZOO_KERAS_MW_PATCH"

_TRAINER_MODULE = "keras.src.backend.tensorflow.trainer"
_ORIGINALS: dict[str, Any] = {}


def _version_tuple(version: str) -> tuple[int, int]:
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    while len(parts) < 2:
        parts.append(0)
    return parts[0], parts[1]


def keras_needs_multiworker_patch(version: str | None = None) -> bool:
    """True for the Keras versions whose TF trainer fails under MultiWorkerMirroredStrategy."""
    if version is None:
        import keras

        version = keras.__version__
    low, high = KERAS_PATCH_RANGE
    return low <= _version_tuple(version) < high


def _nested_code_names(code: Any) -> set[str]:
    """Global names used by a function and the functions defined inside it."""
    names = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= _nested_code_names(const)
    return names


def _trainer_module() -> Any:
    import importlib
    import inspect

    try:
        mod = importlib.import_module(_TRAINER_MODULE)
    except ImportError as exc:
        raise DistributedError(
            f"cannot import {_TRAINER_MODULE} ({exc}); Keras internals moved, so rnnzoo's "
            "multi-worker patch cannot be applied. Check whether keras-team/keras#20585 is fixed "
            f"in this Keras version (set {PATCH_ENV}=never to try without the patch) and update "
            "rnnzoo/distributed.py"
        ) from None
    problems = []
    trainer = getattr(mod, "TensorFlowTrainer", None)
    build = getattr(trainer, "_maybe_symbolic_build", None)
    if build is None:
        problems.append("TensorFlowTrainer._maybe_symbolic_build is missing")
    else:
        build = getattr(build, "__wrapped__", build)
        params = list(inspect.signature(build).parameters)
        if params != ["self", "iterator", "data_batch"]:
            problems.append(f"_maybe_symbolic_build{tuple(params)} has a new signature")
    for name in ("reduce_per_replica", "_collective_all_reduce_multi_worker"):
        if not callable(getattr(mod, name, None)):
            problems.append(f"{name} is missing")
    make_fn = getattr(trainer, "_make_function", None)
    if make_fn is None or "reduce_per_replica" not in _nested_code_names(make_fn.__code__):
        problems.append("TensorFlowTrainer._make_function no longer calls reduce_per_replica")
    if problems:
        import keras

        raise DistributedError(
            f"Keras {keras.__version__} moved the internals rnnzoo's multi-worker patch relies on "
            f"({'; '.join(problems)}). Check whether keras-team/keras#20585 is fixed in this "
            f"version (set {PATCH_ENV}=never to train without the patch) and update "
            "rnnzoo/distributed.py"
        )
    return mod


def _first_local(strategy: Any, value: Any) -> Any:
    import tensorflow as tf

    if isinstance(value, tf.distribute.DistributedValues):
        return strategy.experimental_local_results(value)[0]
    return value


def _rank(strategy: Any, value: Any) -> int | None:
    shape = getattr(_first_local(strategy, value), "shape", None)
    return None if shape is None else shape.rank


def _patched_maybe_symbolic_build(self: Any, iterator: Any = None, data_batch: Any = None) -> Any:
    """Fix 1: probe the symbolic build with this worker's first local batch instead of a
    cross-replica MEAN of the ``(x, y)`` structure (only shapes and dtypes matter there)."""
    import tensorflow as tf

    strategy = self._distribute_strategy
    if iterator is not None and isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        for _, _, it in iterator:
            batch = next(it)
            data_batch = tf.nest.map_structure(lambda v: _first_local(strategy, v), batch)
            break
        iterator = None
    return _ORIGINALS["_maybe_symbolic_build"](self, iterator=iterator, data_batch=data_batch)


def _patched_reduce_per_replica(values: Any, strategy: Any, reduction: str) -> Any:
    """Fix 2: reduce scalar per-replica losses/metrics over replicas (``axis=None``); the
    original asks for ``axis=0``, which a rank-0 tensor does not have."""
    import tensorflow as tf

    mod = __import__(_TRAINER_MODULE, fromlist=["_collective_all_reduce_multi_worker"])
    if reduction in ("auto", "mean") and mod._collective_all_reduce_multi_worker(strategy):

        def mean(v: Any) -> Any:
            axis = None if _rank(strategy, v) == 0 else 0
            return strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=axis)

        return tf.nest.map_structure(mean, values)
    return _ORIGINALS["reduce_per_replica"](values, strategy, reduction)


_patched_maybe_symbolic_build._rnnzoo_patch = True  # type: ignore[attr-defined]
_patched_reduce_per_replica._rnnzoo_patch = True  # type: ignore[attr-defined]


def is_keras_multiworker_patch_applied() -> bool:
    """Whether ``apply_keras_multiworker_patch`` is in effect in this process."""
    import sys

    mod = sys.modules.get(_TRAINER_MODULE)
    fn = getattr(mod, "reduce_per_replica", None) if mod is not None else None
    return bool(getattr(fn, "_rnnzoo_patch", False))


def apply_keras_multiworker_patch(force: bool = False) -> bool:
    """Patch Keras' TF trainer so ``fit`` works under MultiWorkerMirroredStrategy.

    Applied only for ``KERAS_PATCH_RANGE`` (or with ``force=True`` / ``RNNZOO_KERAS_MW_PATCH=
    always``); ``RNNZOO_KERAS_MW_PATCH=never`` disables it. Idempotent. Returns whether the patch
    is in effect. Raises ``DistributedError`` if the Keras internals it replaces have moved.
    """
    mode = os.environ.get(PATCH_ENV, "auto").strip().lower() or "auto"
    if mode not in ("auto", "always", "never"):
        raise ConfigError(f"{PATCH_ENV}: expected auto, always or never, found {mode!r}")
    if mode == "never":
        return is_keras_multiworker_patch_applied()
    if not force and mode == "auto" and not keras_needs_multiworker_patch():
        import keras

        warnings.warn(
            f"Keras {keras.__version__} is outside the versions rnnzoo's multi-worker patch was "
            f"verified for ({'.'.join(map(str, KERAS_PATCH_RANGE[0]))} <= keras < "
            f"{'.'.join(map(str, KERAS_PATCH_RANGE[1]))}); training without it. If fit fails "
            f"with 'Attempt to convert a value (PerReplica', set {PATCH_ENV}=always.",
            stacklevel=2,
        )
        return is_keras_multiworker_patch_applied()
    mod = _trainer_module()
    if is_keras_multiworker_patch_applied():
        return True
    _ORIGINALS["_maybe_symbolic_build"] = mod.TensorFlowTrainer._maybe_symbolic_build
    _ORIGINALS["reduce_per_replica"] = mod.reduce_per_replica
    mod.TensorFlowTrainer._maybe_symbolic_build = _patched_maybe_symbolic_build
    mod.reduce_per_replica = _patched_reduce_per_replica
    return True


def remove_keras_multiworker_patch() -> None:
    """Restore Keras' original functions (tests and the canary use this)."""
    import sys

    mod = sys.modules.get(_TRAINER_MODULE)
    if mod is None or not is_keras_multiworker_patch_applied():
        return
    mod.TensorFlowTrainer._maybe_symbolic_build = _ORIGINALS.pop("_maybe_symbolic_build")
    mod.reduce_per_replica = _ORIGINALS.pop("reduce_per_replica")


# -- cluster helpers -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class WorkerInfo:
    """This process's place in the cluster (index 0 is the chief, which alone writes files)."""

    index: int = 0
    count: int = 1

    @property
    def is_chief(self) -> bool:
        return self.index == 0

    @property
    def multi_worker(self) -> bool:
        return self.count > 1


def read_tf_config() -> dict | None:
    """The validated ``TF_CONFIG`` of this process, or None when it is not set."""
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return None
    try:
        cfg = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"TF_CONFIG is not valid JSON ({exc.msg} at column {exc.colno})") from None
    cluster = cfg.get("cluster") if isinstance(cfg, dict) else None
    task = cfg.get("task") if isinstance(cfg, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ConfigError('TF_CONFIG: expected {"cluster": {"worker": ["host:port", ...]}, '
                          f'"task": {{"type": "worker", "index": 0}}}}, found {raw!r}')
    kind, index = task.get("type"), task.get("index")
    members = cluster.get(kind)
    if not isinstance(members, list) or not isinstance(index, int) or not (
            0 <= index < len(members)):
        raise ConfigError(f"TF_CONFIG: task {task!r} is not in the cluster {cluster!r}")
    return cfg


def worker_info(strategy: Any) -> WorkerInfo:
    """Index and count of the workers (chief first, then workers, as TF_CONFIG lists them)."""
    import tensorflow as tf

    if strategy is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return WorkerInfo()
    resolver = strategy.cluster_resolver
    spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
    tasks = [(kind, i) for kind in ("chief", "worker")
             for i in range(len(spec.get(kind, [])))]
    if not tasks or (resolver.task_type, resolver.task_id) not in tasks:
        return WorkerInfo()
    return WorkerInfo(tasks.index((resolver.task_type, resolver.task_id)), len(tasks))


def _sum_over_workers(strategy: Any, tensor: Any) -> Any:
    """All-reduce SUM where each worker contributes ``tensor`` once (from its first local
    replica; the others add zeros), so the result does not depend on devices per worker."""
    import tensorflow as tf

    calls: list[int] = []

    def value_fn(ctx: Any) -> Any:
        calls.append(ctx.replica_id_in_sync_group)
        return tensor if len(calls) == 1 else tf.zeros_like(tensor)

    per_replica = strategy.experimental_distribute_values_from_function(value_fn)
    return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)


def allgather_numbers(strategy: Any, values: Sequence[float]) -> list[list[float]]:
    """Every worker's ``values`` (same length on all), in worker order. A collective: all
    workers must call it. Values travel as float64: integers below 2**53 are exact."""
    import numpy as np
    import tensorflow as tf

    info = worker_info(strategy)
    k = len(values)
    vec = np.zeros(info.count * k, dtype=np.float64)
    vec[info.index * k:(info.index + 1) * k] = values
    total = _sum_over_workers(strategy, tf.constant(vec))
    return np.asarray(total).reshape(info.count, k).tolist()


def fingerprint(*parts: Any) -> list[float]:
    """Three exact float64 numbers (48 bits each) summarising JSON-able ``parts``."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()
    return [float(int.from_bytes(digest[i:i + 6], "big")) for i in (0, 6, 12)]


def check_workers_agree(strategy: Any, what: str, values: Sequence[float]) -> None:
    """Raise ``DistributedError`` unless every worker passes the same ``values``: workers that
    disagree on data, vocabulary or config would train silently wrong."""
    rows = allgather_numbers(strategy, values)
    if any(row != rows[0] for row in rows[1:]):
        differ = [i for i, row in enumerate(rows) if row != rows[0]]
        raise DistributedError(
            f"workers disagree on {what}: worker(s) {differ} differ from worker 0. Every worker "
            "must run the same command on the same data (and the same rnnzoo/Keras versions)"
        )


def broadcast_from_chief(strategy: Any, variables: Sequence[Any]) -> None:
    """Give every worker the chief's values of ``variables`` (same list, same order on all).

    Used when a job resumes: only the chief keeps a backup (non-chief workers may be restarted
    on a machine without it), so the others take the restored state from the chief.
    """
    import tensorflow as tf

    if not variables:
        return
    info = worker_info(strategy)
    flat = tf.concat([tf.reshape(tf.cast(tf.convert_to_tensor(v), tf.float64), [-1])
                      for v in variables], axis=0)
    total = _sum_over_workers(strategy, flat if info.is_chief else tf.zeros_like(flat))
    offset = 0
    for v in variables:
        size = int(tf.size(tf.convert_to_tensor(v)))
        v.assign(tf.cast(tf.reshape(total[offset:offset + size], v.shape), v.dtype))
        offset += size


def weights_digest(model: Any) -> str:
    """sha256 (first 16 hex digits) of a model's weights: equal on every worker when the
    replicas are in sync, which is what the logs and tests compare."""
    import numpy as np

    h = hashlib.sha256()
    for w in model.weights:
        h.update(np.ascontiguousarray(np.asarray(w)).tobytes())
    return h.hexdigest()[:16]
