"""The shared training loop on tiny generated data: it learns, writes a complete run directory,
resumes after an interruption, and fails clearly on bad input."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

import rnnzoo
from rnnzoo.errors import ConfigError, DataError, RunDirError
from rnnzoo.training import _read_history, make_optimizer

TINY = {"vocab_size": 64, "embedding_dim": 16, "units": 16, "max_length": 16, "batch_size": 16,
        "warmup_steps": 0, "early_stopping_patience": 0, "learning_rate": 0.01}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, sentiment_csv):
    out = tmp_path_factory.mktemp("runs") / "run"
    result = rnnzoo.train("sentiment_gru", sentiment_csv, out=out, epochs=4, verbose=0, **TINY)
    return result


def test_loop_learns_and_writes_a_complete_run_dir(trained):
    run = trained.run_dir
    assert trained.metrics["accuracy"] >= 0.9, trained.metrics
    for name in ("config.json", "model.weights.h5", "assets/tokenizer.json", "assets/labels.json",
                 "checksums.json", "history.csv", "history.json", "training_curve.png",
                 "metrics.json", "train.log.json", "checkpoints/best.weights.h5",
                 "checkpoints/last.weights.h5"):
        assert (run / name).is_file(), name
    assert not (run / "backup").exists()  # removed once the run finished
    assert not [p for p in run.rglob("*") if p.name.startswith(".tmp")]
    history = json.loads((run / "history.json").read_text())
    assert history["epoch"] == [1, 2, 3, 4]
    assert history["loss"][-1] < history["loss"][0]
    assert (run / "training_curve.png").read_bytes()[:4] == b"\x89PNG"
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) >= {"accuracy", "macro_f1", "confusion_matrix"}
    assert sum(map(sum, metrics["confusion_matrix"])) == metrics["num_examples"]


def test_load_predict_and_evaluate_from_run_dir(trained, sentiment_csv):
    task = rnnzoo.load(trained.run_dir)
    pred = task.predict(["the movie was good", "a really bad plot"])
    assert pred.labels == ["pos", "neg"]
    assert pred.probs.shape == (2, 2) and np.allclose(pred.probs.sum(1), 1, atol=1e-5)
    from rnnzoo.evaluation import evaluate_reports

    (report,) = evaluate_reports(task, task.load_data(sentiment_csv, seed=1234), "dev")
    assert report["accuracy"] == pytest.approx(trained.metrics["accuracy"])


def test_tampered_weights_are_detected(trained, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(trained.run_dir, copy)
    data = bytearray((copy / "model.weights.h5").read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip one byte
    (copy / "model.weights.h5").write_bytes(bytes(data))
    with pytest.raises(RunDirError, match="sha256 mismatch"):
        rnnzoo.load(copy)


def test_interrupted_run_resumes_with_the_same_command(tmp_path, sentiment_csv):
    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt("simulated preemption")

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        rnnzoo.train("sentiment_gru", sentiment_csv, out=out, epochs=3, verbose=0,
                     callbacks=[Crash()], **TINY)
    assert (out / "backup").is_dir() and not (out / "model.weights.h5").exists()
    result = rnnzoo.train("sentiment_gru", sentiment_csv, out=out, epochs=3, verbose=0, **TINY)
    assert result.resumed_from_epoch == 2
    assert result.epochs_run == 1  # only the remaining epoch was trained
    assert _read_history(out / "history.csv")["epoch"] == [1, 2, 3]
    assert (out / "model.weights.h5").is_file() and not (out / "backup").exists()


def test_existing_run_dir_and_bad_inputs(trained, tmp_path, sentiment_csv):
    with pytest.raises(RunDirError, match="already exists and holds no unfinished run"):
        rnnzoo.train("sentiment_gru", sentiment_csv, out=trained.run_dir, verbose=0, **TINY)
    with pytest.raises(DataError, match="data path not found"):
        rnnzoo.train("sentiment_gru", tmp_path / "missing.csv", out=tmp_path / "r", **TINY)
    with pytest.raises(ConfigError, match="strategy: expected None"):
        rnnzoo.train("sentiment_gru", sentiment_csv, out=tmp_path / "r2", strategy="tpu",
                     **TINY)
    three = tmp_path / "three.csv"
    three.write_text("text,label\na,x\nb,y\nc,z\nd,x\n")
    with pytest.raises(DataError, match=r"found 3 classes .* num_classes=3"):
        rnnzoo.train("sentiment_gru", three, out=tmp_path / "r3", **TINY)


def test_fine_tune_from_a_run_keeps_vocabulary(trained, tmp_path, sentiment_csv):
    result = rnnzoo.train("sentiment_gru", sentiment_csv, out=tmp_path / "ft", epochs=1,
                          init_from=trained.run_dir, verbose=0, **TINY)
    before = rnnzoo.load(trained.run_dir).preprocessor.tokenizer.vocab
    assert result.task.preprocessor.tokenizer.vocab == before
    assert result.metrics["accuracy"] >= 0.9  # starts from trained weights


def test_optimizer_schedule_warmup_and_clipping():
    from rnnzoo.config import TrainingConfig

    opt = make_optimizer(TrainingConfig(schedule="cosine", warmup_steps=10, learning_rate=0.1,
                                        epochs=2), steps_per_epoch=50)
    assert opt.global_clipnorm == 1.0
    lr = opt._learning_rate
    assert float(lr(0)) == pytest.approx(0.0)
    assert float(lr(10)) == pytest.approx(0.1, rel=1e-3)
    assert float(lr(100)) == pytest.approx(0.0, abs=1e-6)
    off = make_optimizer(TrainingConfig(clipnorm=0.0), steps_per_epoch=5)
    assert off.global_clipnorm is None


def test_short_runs_scale_weight_averaging_and_warmup():
    """A run shorter than ten averaging horizons (or warm-ups) gets them cut to a tenth of its
    steps (averaging off under 5 steps); the recipe's own long runs keep them; keys the caller
    gave are kept as given."""
    from rnnzoo.config import TrainingConfig
    from rnnzoo.training import _scaled_to_run

    recipe = TrainingConfig(ema_momentum=0.998, warmup_steps=200)
    same, note = _scaled_to_run(recipe, 6300)  # SST-2: 6 epochs x 1052 steps
    assert same is recipe and note is None
    tiny, note = _scaled_to_run(recipe, 14)
    assert (tiny.ema_momentum, tiny.warmup_steps) == (0.0, 1)
    assert note.startswith("weight averaging off, warm-up 1 step (recipe: ema 0.998, warm-up 200")
    mid, note = _scaled_to_run(recipe, 700)
    assert mid.ema_momentum == pytest.approx(1 - 1 / 70) and mid.warmup_steps == 70
    kept, note = _scaled_to_run(recipe, 14, chosen={"ema_momentum", "warmup_steps"})
    assert kept is recipe and note is None


def test_failed_save_leaves_no_partial_directory(trained, tmp_path, monkeypatch):
    task = rnnzoo.load(trained.run_dir)

    def broken(directory):
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "half-written.json").write_text("{")
        raise OSError("disk full")

    monkeypatch.setattr(task, "save_assets", broken)
    with pytest.raises(OSError, match="disk full"):
        task.save(tmp_path / "saved")
    assert list(tmp_path.iterdir()) == []  # neither the target nor a temporary folder
