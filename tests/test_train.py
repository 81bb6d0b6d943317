"""The training loop: learning, compilation count, checkpoints, resume, divergence, bad input."""

import dataclasses
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import make_dataset
from jaxnet import checkpoint, configs, train
from jaxnet.train import TrainConfig


def small_config(**overrides):
    base = TrainConfig(model="two_layer", epochs=3, batch_size=32, learning_rate=0.05, hidden_dim=32,
                       steps_per_call=4, reg=1e-4, train_eval_size=200, eval_batch_size=64)
    return dataclasses.replace(base, **overrides)


def params_equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_two_layer_learns_and_writes_metrics(tmp_path, tiny_dataset):
    result = train.fit(small_config(epochs=4), tmp_path, dataset=tiny_dataset, progress=False)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert len(metrics["loss"]) == 4 * 10  # 300 images / 32 = 9 full batches + 1 partial, per epoch
    assert metrics["val_accuracy"][-1] > 0.9  # far above the 0.1 of chance
    assert metrics["loss"][-1] < metrics["loss"][0] / 3
    assert metrics["config"]["hidden_dim"] == 32 and metrics["model"] == "two_layer"
    assert {"train_accuracy", "val_accuracy", "learning_rate", "epoch_seconds"} <= set(metrics)
    assert (tmp_path / "checkpoint.msgpack").exists()
    assert result.metrics["val_accuracy"] == metrics["val_accuracy"]


def test_same_seed_same_numbers(tmp_path, tiny_dataset):
    a = train.fit(small_config(), tmp_path / "a", dataset=tiny_dataset, progress=False)
    b = train.fit(small_config(), tmp_path / "b", dataset=tiny_dataset, progress=False)
    c = train.fit(small_config(seed=1), tmp_path / "c", dataset=tiny_dataset, progress=False)
    assert a.metrics["loss"] == b.metrics["loss"] and params_equal(a.params, b.params)
    assert a.metrics["loss"] != c.metrics["loss"]


@pytest.mark.parametrize("model", ["two_layer", "cnn"])
def test_no_recompilation_across_epochs_partial_batches_and_learning_rates(tmp_path, tiny_dataset, compile_counter,
                                                                           model):
    counts = []
    config = small_config(epochs=4, lr_decay=0.5)  # a new learning rate every epoch
    if model == "cnn":  # 300 images, batch 32: 2 unrolled calls of 4 steps, 1 of 1 leftover step, 1 partial batch
        config = dataclasses.replace(configs.cnn(), epochs=4, batch_size=32, steps_per_call=4, lr_decay=0.5,
                                     train_eval_size=200, eval_batch_size=64)
    train.fit(config, tmp_path, dataset=tiny_dataset, progress=False,
              on_epoch=lambda epoch, metrics: counts.append(compile_counter.count))
    assert counts[0] > 0  # the first epoch compiled its programs (full chunk, partial batch, eval)...
    assert counts[1:] == [counts[0]] * 3, counts  # ...and no later epoch compiled anything


def test_resume_continues_exactly_where_the_run_stopped(tmp_path, tiny_dataset):
    straight = train.fit(small_config(epochs=4), tmp_path / "straight", dataset=tiny_dataset, progress=False)

    def interrupt(epoch, metrics):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train.fit(small_config(epochs=4), tmp_path / "run", dataset=tiny_dataset, progress=False, on_epoch=interrupt)
    meta, _ = checkpoint.read_meta(tmp_path / "run")
    assert meta["epoch"] == 1
    resumed = train.fit(small_config(epochs=4), tmp_path / "run", dataset=tiny_dataset, progress=False, resume=True)
    assert resumed.metrics["loss"] == straight.metrics["loss"]
    assert resumed.metrics["val_accuracy"] == straight.metrics["val_accuracy"]
    assert params_equal(resumed.params, straight.params)


def test_divergence_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path, tiny_dataset):
    train.fit(small_config(epochs=1), tmp_path, dataset=tiny_dataset, progress=False)
    before = (tmp_path / "checkpoint.msgpack").read_bytes()
    with pytest.raises(train.TrainingDiverged, match=r"loss became (nan|inf).*epoch 2.*last good checkpoint \(epoch 1\)"):
        train.fit(small_config(epochs=3, learning_rate=1e30, weight_scale=1.0), tmp_path, dataset=tiny_dataset,
                  progress=False, resume=True)
    assert (tmp_path / "checkpoint.msgpack").read_bytes() == before


def test_resume_refuses_a_checkpoint_of_another_architecture(tmp_path, tiny_dataset):
    train.fit(small_config(epochs=1), tmp_path, dataset=tiny_dataset, progress=False)
    with pytest.raises(checkpoint.CheckpointError, match="another architecture.*hidden_dim: checkpoint 32 vs requested 64"):
        train.fit(small_config(epochs=2, hidden_dim=64), tmp_path, dataset=tiny_dataset, progress=False, resume=True)
    with pytest.raises(checkpoint.CheckpointError, match="holds a 'two_layer' model, not 'cnn'"):
        train.fit(dataclasses.replace(configs.cnn(), epochs=2), tmp_path, dataset=tiny_dataset, progress=False,
                  resume=True)


def test_resume_without_a_checkpoint_is_an_error(tmp_path, tiny_dataset):
    with pytest.raises(checkpoint.CheckpointError, match="no checkpoint.msgpack to resume from"):
        train.fit(small_config(), tmp_path, dataset=tiny_dataset, progress=False, resume=True)


def test_a_damaged_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "checkpoint.msgpack").write_bytes(b"not a checkpoint")
    with pytest.raises(checkpoint.CheckpointError, match="not a readable jaxnet checkpoint"):
        train.load_run(tmp_path)


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"learning_rate": -0.1}, "learning_rate must be a positive number"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"optimizer": "rmsprop"}, "optimizer must be sgd, momentum or adam"),
        ({"reg": -1.0}, "reg must be >= 0"),
        ({"model": "resnet"}, "model must be one of"),
        ({"microbatch_size": 0}, "microbatch_size must be at least 1"),
    ],
)
def test_bad_config(tmp_path, tiny_dataset, overrides, match):
    with pytest.raises(train.ConfigError, match=match):
        train.fit(small_config(**overrides), tmp_path, dataset=tiny_dataset, progress=False)


def test_labels_out_of_range_are_refused_before_training(tmp_path):
    dataset = make_dataset()
    dataset.y_train[3] = 12
    with pytest.raises(ValueError, match=r"y\[3\] = 12 is outside \[0, 10\)"):
        train.fit(small_config(), tmp_path, dataset=dataset, progress=False)


def test_evaluate_run_records_test_accuracy(tmp_path, tiny_dataset):
    train.fit(small_config(), tmp_path, dataset=tiny_dataset, progress=False)
    accuracy = train.evaluate_run(tmp_path, "test", dataset=tiny_dataset)
    assert 0.9 < accuracy <= 1.0
    assert json.loads((tmp_path / "metrics.json").read_text())["test_accuracy"] == accuracy
    classifier, params, meta = train.load_run(tmp_path / "checkpoint.msgpack")
    assert meta["class_names"][0] == "class 0"


@pytest.mark.parametrize("optimizer, lr, weight_decay", [("momentum", 0.01, 0.0), ("adam", 1e-3, 0.0),
                                                        ("adam", 1e-3, 1e-2), ("sgd", 0.05, 1e-3)])
def test_other_optimizers_and_weight_decay_train_too(tmp_path, tiny_dataset, optimizer, lr, weight_decay):
    config = small_config(optimizer=optimizer, learning_rate=lr, weight_decay=weight_decay, lr_decay=0.9)
    result = train.fit(config, tmp_path, dataset=tiny_dataset, progress=False)
    assert result.metrics["val_accuracy"][-1] > 0.8
    assert result.metrics["learning_rate"] == pytest.approx([lr, lr * 0.9, lr * 0.81])


@pytest.mark.parametrize("batch_size, microbatch_size, expected", [
    (256, 64, 4), (64, 64, 1), (64, None, 1), (60, 64, 1), (100, 64, 1), (96, 32, 3), (5, 1, 5)])
def test_num_microbatches(batch_size, microbatch_size, expected):
    assert train.num_microbatches(batch_size, microbatch_size) == expected


def test_microbatched_gradient_equals_the_whole_batch():
    from jaxnet.models import cnn

    classifier = cnn.cnn_classifier()
    params = classifier.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    x = classifier.preprocess(rng.integers(0, 256, (48, 28, 28, 1), dtype=np.uint8))
    y = rng.integers(0, 10, 48)
    whole_loss, whole_grads = jax.jit(classifier.loss_and_grads)(params, x, y)
    loss, grads = jax.jit(train.microbatched(classifier.loss_and_grads, 16))(params, x, y)
    assert loss == pytest.approx(float(whole_loss), rel=1e-6)
    for (path, got), want in zip(jax.tree_util.tree_leaves_with_path(grads), jax.tree.leaves(whole_grads)):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6, err_msg=jax.tree_util.keystr(path))
    # three micro-batches really ran: one of them alone gives another loss
    first_loss, _ = classifier.loss_and_grads(params, x[0::3], y[0::3])
    assert abs(float(first_loss) - float(whole_loss)) > 1e-4


MULTI_DEVICE_SCRIPT = """
import dataclasses, json, sys
sys.path.insert(0, {tests!r})
import jaxnet, jax
from conftest import make_dataset
from jaxnet import configs, train
assert jax.device_count() == 4, jax.devices()
dataset = make_dataset(n_train=256, n_val=64, n_test=64)
out = {{}}
for model in ["two_layer", "cnn"]:
    base = configs.cnn() if model == "cnn" else configs.two_layer()
    config = dataclasses.replace(base, epochs=1, batch_size=64, hidden_dim=32, train_eval_size=64, eval_batch_size=64,
                                 microbatch_size=32 if model == "cnn" else None)
    for name, devices in [("one", jax.devices()[:1]), ("four", jax.devices())]:
        result = train.fit(config, {tmp!r} + "/" + model + name, dataset=dataset, progress=False,
                           mesh=train.data_mesh(devices))
        out[model + "_" + name] = result.metrics["loss"]
print(json.dumps(out))
"""


def test_data_parallel_on_four_cpu_devices_matches_one_device(tmp_path):
    script = MULTI_DEVICE_SCRIPT.format(tests=os.path.dirname(__file__), tmp=str(tmp_path))
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    losses = json.loads(proc.stdout.strip().splitlines()[-1])
    for model in ["two_layer", "cnn"]:
        one, four = np.array(losses[model + "_one"]), np.array(losses[model + "_four"])
        assert len(one) == 4
        np.testing.assert_allclose(four, one, rtol=1e-4, atol=1e-5, err_msg=model)
