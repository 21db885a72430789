"""How a training run is set up before ``fit``: TensorFlow threads, the ``tf.distribute`` strategy,
precision and XLA, the optimizer from the recipe, the model built and compiled under them."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rnnzoo.config import TrainingConfig
from rnnzoo.errors import ConfigError, DistributedError
from rnnzoo.saving import WEIGHTS_FILE
from rnnzoo.task import Task


def _log(msg: str) -> None:
    print(f"rnnzoo: {msg}", flush=True)


def cpu_supports_bf16() -> bool:
    """True when the CPU has native bfloat16 arithmetic (AVX512_BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


_THREAD_WARNING_SHOWN: list[bool] = []  # warn once per process, not on every train() call


def configure_threads(intra_op: int, inter_op: int) -> bool:
    """Set TensorFlow's thread pools; only possible before TensorFlow runs its first op.
    Imports TensorFlow (quietly) when it is not yet.

    Returns False (with a warning) when it is too late: ``train`` and ``finetune`` call this
    before anything builds a model.
    """
    from rnnzoo.extras import import_tensorflow

    tf = import_tensorflow("training")

    cur = (tf.config.threading.get_intra_op_parallelism_threads(),
           tf.config.threading.get_inter_op_parallelism_threads())
    if cur == (intra_op, inter_op):
        return True
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)
        return True
    except RuntimeError:
        if _THREAD_WARNING_SHOWN:
            return False
        _THREAD_WARNING_SHOWN.append(True)
        warnings.warn(
            f"TensorFlow is already initialised; thread settings intra_op={intra_op}, "
            f"inter_op={inter_op} not applied (call rnnzoo.train before other TF work).",
            stacklevel=3,
        )
        return False


def ready_to_finetune(directory: str | os.PathLike, data: str | os.PathLike,
                      overrides: Mapping[str, Any]) -> Any:
    """Before fine-tuning the model saved in ``directory``: check ``overrides`` against its
    config and read ``data`` with its readers (TF-free: a typo fails in a second), then set
    TensorFlow's threads from the recipe, before loading the model runs TensorFlow's first op
    (too late after it: the recipe's threads would not apply). Returns the data read."""
    from rnnzoo.evaluation import reader_task

    reader = reader_task(directory)
    recipe = reader.config.with_overrides(**overrides).training if overrides \
        else reader.config.training
    dataset = reader.load_data(data, seed=reader.config.training.seed)
    configure_threads(recipe.intra_op_threads, recipe.inter_op_threads)
    return dataset


def resolve_strategy(strategy: Any) -> Any:
    """None, "mirrored", "multiworker", or a ``tf.distribute.Strategy`` instance.

    "multiworker" reads the cluster from ``TF_CONFIG`` (as TensorFlow does; without it the job
    is a single worker) and must be created before TensorFlow runs its first op. For
    MultiWorkerMirroredStrategy, Keras' trainer is patched (``rnnzoo.distributed``): Keras 3
    ``fit`` fails under it otherwise.
    """
    if strategy is None or strategy == "none":
        return None
    import tensorflow as tf

    from rnnzoo.distributed import apply_keras_multiworker_patch, read_tf_config

    if isinstance(strategy, tf.distribute.Strategy):
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            apply_keras_multiworker_patch()
        return strategy
    if strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    if strategy == "multiworker":
        if read_tf_config() is None:
            _log("strategy multiworker without TF_CONFIG: this process is the only worker "
                 "(start workers with `rnnzoo launch` or set TF_CONFIG on every host)")
        apply_keras_multiworker_patch()
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except RuntimeError as exc:
            raise DistributedError(
                f"cannot start MultiWorkerMirroredStrategy ({exc}); create it before any other "
                "TensorFlow work in the process (the CLI does)"
            ) from None
    raise ConfigError(
        f"strategy: expected None, 'mirrored', 'multiworker' or a tf.distribute.Strategy, "
        f"found {strategy!r}"
    )


def make_optimizer(recipe: TrainingConfig, steps_per_epoch: int) -> Any:
    """Optimizer with linear warmup, the recipe's schedule, and global-norm clipping."""
    import keras

    total = max(1, recipe.epochs * steps_per_epoch)
    warmup = min(recipe.warmup_steps, max(0, total - 1))
    lr: Any = recipe.learning_rate
    if recipe.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(
            0.0 if warmup else recipe.learning_rate, decay_steps=max(1, total - warmup),
            alpha=0.0, warmup_target=recipe.learning_rate if warmup else None,
            warmup_steps=warmup,
        )
    elif recipe.schedule == "exponential":
        lr = keras.optimizers.schedules.ExponentialDecay(
            recipe.learning_rate, decay_steps=max(1, steps_per_epoch),
            decay_rate=recipe.decay_rate,
        )
    elif warmup:
        lr = keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=1, alpha=1.0, warmup_target=recipe.learning_rate,
            warmup_steps=warmup,
        )
    kw: dict[str, Any] = {"learning_rate": lr}
    if recipe.clipnorm:
        kw["global_clipnorm"] = recipe.clipnorm
    if recipe.ema_momentum:
        kw.update(use_ema=True, ema_momentum=recipe.ema_momentum)
    if recipe.optimizer == "adam":
        return keras.optimizers.Adam(**kw)
    if recipe.optimizer == "adamw":
        return keras.optimizers.AdamW(weight_decay=recipe.weight_decay or 0.004, **kw)
    if recipe.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(**kw)
    return keras.optimizers.SGD(momentum=0.9, nesterov=True, **kw)


def _is_chief(strategy: Any) -> bool:
    if strategy is None:
        return True
    extended = getattr(strategy, "extended", None)
    return bool(getattr(extended, "should_checkpoint", True))


def _log_distribution(strategy: Any, recipe: TrainingConfig) -> Any:
    """Say how the recipe's batch is split; return this process's ``WorkerInfo``."""
    from rnnzoo.distributed import worker_info

    info = worker_info(strategy)
    if strategy is None:
        return info
    replicas = strategy.num_replicas_in_sync
    role = "chief" if info.is_chief else "writes no files"
    _log(f"{type(strategy).__name__}: worker {info.index} of {info.count} ({role}), {replicas} "
         f"replica(s) in sync; global batch {recipe.batch_size} (the recipe's) = {replicas} x "
         f"{recipe.batch_size / replicas:g} per replica; learning rate {recipe.learning_rate:g} "
         "as in the recipe (gradients are averaged over the global batch)")
    if recipe.batch_size % replicas:
        warnings.warn(f"batch_size {recipe.batch_size} is not a multiple of the {replicas} "
                      "replicas: replicas get unequal batches", stacklevel=3)
    return info


def _check_workers_agree(strategy: Any, task: Task, dataset: Any, steps: int) -> None:
    """Fail before training if workers differ in config, vocabulary/labels or data size."""
    import tempfile

    from rnnzoo.distributed import check_workers_agree, fingerprint
    from rnnzoo.io import sha256_file

    with tempfile.TemporaryDirectory(prefix="rnnzoo-assets-") as tmp:
        task.save_assets(Path(tmp))
        assets = {p.relative_to(tmp).as_posix(): sha256_file(p)
                  for p in sorted(Path(tmp).rglob("*")) if p.is_file()}
    sizes = (dataset.num_train, dataset.num_dev, steps)
    check_workers_agree(strategy, "the config, vocabulary or data",
                        fingerprint(task.config.to_dict(), assets, sizes))


def _speed_options(recipe: TrainingConfig, strategy: Any) -> tuple[str, bool]:
    """(precision, jit) actually used: ``auto`` precision resolved for this machine."""
    import tensorflow as tf

    precision = recipe.precision
    if precision == "auto":
        gpu = tf.config.list_physical_devices("GPU")
        precision = "mixed_bfloat16" if cpu_supports_bf16() and not gpu else "float32"
    jit = recipe.jit_compile
    if strategy is not None and jit:
        _log("jit_compile disabled under a tf.distribute strategy (fails on CPU)")
        jit = False
    return precision, jit


def _build_and_compile(task: Task, strategy: Any, precision: str, recipe: TrainingConfig,
                       steps: int, jit: bool, init_from: Any) -> Any:
    """Build the model under the strategy scope and dtype policy, load fine-tuning weights,
    compile with the recipe's optimizer."""
    import keras

    # A task that already holds weights (loaded, or given a new head) keeps them: the model is
    # rebuilt under the strategy scope and dtype policy, then they are copied in.
    weights = task.model.get_weights() if task.is_built and init_from is None else None
    previous_policy = keras.config.dtype_policy()
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        keras.config.set_dtype_policy(precision)
        try:
            task._model = None
            model = task.model
        finally:
            keras.config.set_dtype_policy(previous_policy)
        if init_from is not None:
            model.load_weights(Path(init_from) / WEIGHTS_FILE)
        elif weights is not None:
            model.set_weights(weights)
        for layer in model.layers:
            if layer.name in task.frozen_layers:
                layer.trainable = False
        if not model.trainable_weights:  # a closed-form fit: no weights to average (Keras
            recipe = dataclasses.replace(recipe, ema_momentum=0.0)  # fails on use_ema then)
        model.compile(optimizer=make_optimizer(recipe, steps), loss=task.loss(),
                      metrics=task.metrics(), jit_compile=jit, steps_per_execution=1)
    return model
