"""The lifecycle harness, generated from the registry: every entry, with its family's tiny
overrides and synthetic data, goes through what a user does with it. No branch on family here:
a new family gets all of this by implementing its task type's hooks.

build -> train through the real loop -> reload with checksums, identical outputs -> save and
load a preset -> export with validation -> the runtime, with TensorFlow unimportable, gives the
same user-call results as Keras.

Resuming after an interruption and fine-tuning from a run are the training loop's and the
family's preprocessor's behaviour, not an entry's: they run on the first entry of each family
(each extra training call costs an entry 10-20 s of tracing, most of the suite's time).
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from conftest import run_python, without_packages

import rnnzoo
from rnnzoo.apps import app_cli
from rnnzoo.families import family_spec
from rnnzoo.preset_bundle import close  # the harness's own plain-data comparison
from rnnzoo.presets import save_preset
from rnnzoo.registry import get_entry


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt("simulated preemption after the first epoch")


def _outputs(task, x):
    out = task.model(x, training=False)
    return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]


def run_without_tensorflow(code: str) -> str:
    proc = run_python(without_packages(code), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _first_of_each_family() -> set[str]:
    first: dict[str, str] = {}
    for entry in rnnzoo.list_models():
        first.setdefault(get_entry(entry).family, entry)
    return set(first.values())


FAMILY_REPRESENTATIVES = _first_of_each_family()


@pytest.mark.parametrize("name", rnnzoo.list_models())
def test_lifecycle(name, tmp_path):
    spec = family_spec(get_entry(name).family)
    tiny = spec.tiny_overrides
    data = spec.synthetic_dataset(tmp_path / "data", n=300, seed=0)
    run = tmp_path / "run"
    train_kw = {"model": tiny["model"], "data": tiny["data"],
                "training": {**tiny["training"], "epochs": 2}}

    # Train through the real loop; for a family's first entry an interruption after epoch 1
    # resumes from the backup.
    if name in FAMILY_REPRESENTATIVES:
        with pytest.raises(KeyboardInterrupt):
            rnnzoo.train(name, data, out=run, verbose=0, callbacks=[_Interrupt()], **train_kw)
        assert (run / "backup").is_dir()
    result = rnnzoo.train(name, data, out=run, verbose=0, **train_kw)
    if name in FAMILY_REPRESENTATIVES:
        assert result.resumed_from_epoch == 1 and result.epochs_run == 1
    assert not (run / "backup").exists() and (run / "checksums.json").is_file()
    assert result.history["epoch"] == [1, 2]
    assert np.isfinite(result.history["loss"]).all()
    task = result.task

    # Reload with checksum verification: identical outputs.
    x, _ = task.dummy_batch(4, seed=3)
    again = rnnzoo.load(run)
    assert again.config.to_dict() == task.config.to_dict()
    for a, b in zip(_outputs(task, x), _outputs(again, x)):
        np.testing.assert_allclose(a, b, atol=1e-6)

    # Fine-tune from the run: same preprocessor (vocabulary), one more epoch.
    if name in FAMILY_REPRESENTATIVES:
        tuned = rnnzoo.train(name, data, out=tmp_path / "tuned", verbose=0, init_from=run,
                             model=tiny["model"], data=tiny["data"], training=tiny["training"])
        assert tuned.task.preprocessor.__dict__.keys() == again.preprocessor.__dict__.keys()
        assert (tmp_path / "tuned" / "assets").is_dir()
        for asset in (run / "assets").iterdir():
            tuned_asset = tmp_path / "tuned" / "assets" / asset.name
            assert tuned_asset.read_bytes() == asset.read_bytes()

    # Save as a preset (verified format) with its validated ONNX bundle, and load it back:
    # identical outputs from Keras.
    preset = save_preset(again, tmp_path / "preset", {
        "name": f"{name}.lifecycle", "dataset": "synthetic", "split": "dev",
        "metrics": {"loss": float(result.history["loss"][-1])}, "metrics_command": "test",
        "training_command": "test", "training_wall_time_s": 0.0, "data_license": "generated"},
        storage="float32", onnx=True, int8=False)
    for a, b in zip(_outputs(again, x), _outputs(rnnzoo.from_preset(preset), x)):
        np.testing.assert_array_equal(a, b)

    # The preset's bundle was exported with validation (fused ops, parity with Keras) ...
    bundle = json.loads((preset / "metadata.json").read_text())["onnx"]["fp32"]
    # (an image encoder is a CNN: its spec says it expects no recurrent operator)
    no_recurrence = {s.name for s in again._graph_specs() if not s.expect_recurrent}
    for graph, info in bundle["graphs"].items():
        assert info["loop_ops"] == 0 and (info["recurrent_ops"] or graph in no_recurrence), info
        assert max(info["max_abs_diff_vs_keras"].values()) <= 1e-4, info
    assert "identical to Keras" in bundle["keras_parity"]
    # ... and the preset runs through it with TensorFlow unimportable: the same user-call
    # results as Keras.
    cli = app_cli(again.config.task)
    inputs = cli.example_inputs()
    expected = cli.example_outputs(again, inputs)
    out = run_without_tensorflow(f"""
        import json
        import rnnzoo
        from rnnzoo.apps import app_cli, runtime_class
        rt = rnnzoo.from_preset({str(preset)!r})   # no train extra: the ONNX bundle
        assert isinstance(rt, runtime_class({again.config.task!r})), type(rt)
        result = app_cli({again.config.task!r}).example_outputs(rt, {inputs!r})
        assert not any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules)
        print(json.dumps(result))
    """)
    got = json.loads(out.strip().splitlines()[-1])
    assert close(json.loads(json.dumps(expected)), got), (expected, got)
