"""The linear classifier (softmax regression): hand-written gradients against jax.grad, training, the CLI."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import make_dataset
from jaxnet import cli, configs, gradcheck, train
from jaxnet.models import linear


def reference_loss(params, X, y, reg):
    scores = X.reshape(X.shape[0], -1) @ params["W"] + params["b"]
    data_loss = -jnp.mean(jax.nn.log_softmax(scores)[jnp.arange(X.shape[0]), y])
    return data_loss + 0.5 * reg * jnp.sum(params["W"] ** 2)


def test_init_shapes_and_zero_bias():
    params = linear.init(jax.random.key(0), 784, 10, weight_scale=1e-3)
    assert {k: v.shape for k, v in params.items()} == {"W": (784, 10), "b": (10,)}
    assert float(jnp.abs(params["b"]).sum()) == 0
    assert float(params["W"].std()) == pytest.approx(1e-3, rel=0.05)


def test_init_rejects_bad_sizes():
    with pytest.raises(ValueError, match="num_classes must be at least 1"):
        linear.init(jax.random.key(0), 4, 0)
    with pytest.raises(ValueError, match="weight_scale must be positive"):
        linear.init(jax.random.key(0), 4, 3, weight_scale=0.0)


def test_forward_backward_shapes_and_keys():
    params = linear.init(jax.random.key(0), 4, 3)
    scores, cache = linear.forward(params, jnp.ones((5, 2, 2)))
    assert scores.shape == (5, 3)
    grads = linear.backward(params, jnp.ones_like(scores), cache)
    assert {k: v.shape for k, v in grads.items()} == {"W": (4, 3), "b": (3,)}
    np.testing.assert_allclose(grads["b"], 5.0)  # dL/db sums dL/dscores over the batch


@pytest.mark.parametrize("seed", [0, 1])
def test_whole_classifier_gradient_check_float64(seed):
    with jax.enable_x64(True):
        k = jax.random.split(jax.random.key(seed), 3)
        params = linear.init(k[0], 12, 5, weight_scale=0.5, dtype=jnp.float64)
        params["b"] = 0.1 * jax.random.normal(k[2], (5,), jnp.float64)
        X = jax.random.normal(k[1], (7, 3, 4), jnp.float64)
        y = jnp.array([0, 1, 2, 3, 4, 0, 1])
        reg = 0.1
        loss, grads = linear.training_step(params, X, y, reg)
        assert loss.dtype == jnp.float64 and all(g.dtype == jnp.float64 for g in grads.values())
        want_loss, want = jax.value_and_grad(reference_loss)(params, X, y, reg)
        assert float(loss) == pytest.approx(float(want_loss), rel=1e-12)
        for name in params:
            assert gradcheck.relative_error(grads[name], want[name]) < 1e-10, name

        # and against finite differences, through the generic checker
        result = gradcheck.check_training_step(linear.training_step, params, X, y, reg)
        assert result.vjp_error < 1e-10 and result.numeric_error < 1e-10


def test_gradcheck_suite_lists_the_linear_classifier():
    [check] = [c for c in gradcheck.standard_checks() if c.name.startswith("linear classifier")]
    with jax.enable_x64(True):
        result = check.run(jax.random.key(3), jnp.float64)
    assert result.vjp_error < 1e-10 and result.numeric_error < 1e-10


def test_bias_is_not_regularized():
    params = linear.init(jax.random.key(0), 4, 2)
    X = jnp.ones((2, 4))
    y = jnp.array([0, 1])
    loss0, without = linear.training_step(params, X, y, 0.0)
    loss1, with_reg = linear.training_step(params, X, y, 10.0)
    np.testing.assert_array_equal(without["b"], with_reg["b"])
    np.testing.assert_allclose(with_reg["W"] - without["W"], 10.0 * params["W"], rtol=1e-5, atol=1e-7)
    assert float(loss1 - loss0) == pytest.approx(5.0 * float(jnp.sum(params["W"] ** 2)), rel=1e-4)
    # a bias alone adds nothing to the penalty
    biased = {**params, "b": jnp.array([3.0, -2.0])}
    assert float(linear.training_step(biased, X, y, 10.0)[0] - linear.training_step(biased, X, y, 0.0)[0]) == \
        pytest.approx(float(loss1 - loss0), rel=1e-4)


def test_classifier_describes_the_architecture():
    model = linear.classifier((28, 28, 1), 10, mean=0.3, std=0.4)
    assert model.name == "linear"
    assert model.config == {"input_shape": [28, 28, 1], "num_classes": 10, "mean": 0.3, "std": 0.4}
    params = model.init(jax.random.key(0))
    x = model.preprocess(jnp.full((3, 28, 28, 1), 255, jnp.uint8))
    np.testing.assert_allclose(x, (1.0 - 0.3) / 0.4, rtol=1e-6)
    assert model.apply(params, x).shape == (3, 10)


def test_training_nears_the_best_linear_rule_on_a_synthetic_dataset(tmp_path):
    # 2x2 images, 10 noisy templates: classes overlap, so even the nearest-template rule (the Bayes rule for this
    # noise, and a linear one) misclassifies some; the trained model must come within a few points of it.
    dataset = make_dataset(n_train=2000, n_val=500, n_test=100, shape=(2, 2, 1), num_classes=10, seed=1)
    flat = dataset.x_train.reshape(len(dataset.x_train), -1).astype(np.float64)
    templates = np.stack([flat[dataset.y_train == c].mean(0) for c in range(10)])
    val = dataset.x_val.reshape(len(dataset.x_val), -1).astype(np.float64)
    nearest = float((((val[:, None] - templates) ** 2).sum(-1).argmin(1) == dataset.y_val).mean())
    assert 0.8 < nearest < 0.95

    config = train.TrainConfig(model="linear", epochs=5, batch_size=50, learning_rate=0.05, reg=1e-4)
    result = train.fit(config, tmp_path / "run", dataset=dataset, progress=False, verbose=False)
    model = result.classifier
    before = train.accuracy(train.make_predict(model), model.init(jax.random.key(0)), dataset.x_val, dataset.y_val)
    assert before < 0.3  # an untrained model is near chance (0.1)
    assert result.metrics["val_accuracy"][-1] > nearest - 0.05
    assert result.metrics["val_accuracy"][0] < result.metrics["val_accuracy"][-1]
    assert train.evaluate_run(tmp_path / "run", split="val", dataset=dataset) == result.metrics["val_accuracy"][-1]


def test_preset_is_sgd_with_the_linear_model():
    config = configs.linear()
    config.validate()
    assert config.model == "linear" and config.optimizer == "sgd"
    assert configs.PRESETS["linear"] is configs.linear


@pytest.fixture(scope="module")
def linear_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("linear_run")
    code = cli.main(["train", "linear", "--epochs", "2", "--train-size", "3000", "--batch-size", "32", "--reg", "1e-3",
                     "--out", str(out), "--no-progress"])
    assert code == 0
    return out


def test_cli_train_linear_then_evaluate(linear_run, capsys):
    metrics = json.loads((linear_run / "metrics.json").read_text())
    assert metrics["model"] == "linear" and metrics["config"]["reg"] == 1e-3
    assert "hidden_dim" not in metrics["model_config"]
    assert len(metrics["val_accuracy"]) == 2 and metrics["val_accuracy"][-1] > 0.72
    assert (linear_run / "training.png").stat().st_size > 0
    assert cli.main(["evaluate", str(linear_run)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("test accuracy: ") and 0.72 < float(line.split()[-1]) <= 1


def test_cli_refuses_to_resume_a_linear_run_as_another_model(linear_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(linear_run, run)
    assert cli.main(["train", "two-layer", "--epochs", "3", "--out", str(run), "--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "holds a 'linear' model, not 'two_layer': continue it with `jaxnet train linear --resume`" in err
    assert "Traceback" not in err


def test_cli_hidden_dim_is_an_error_for_linear(tmp_path, capsys):
    assert cli.main(["train", "linear", "--hidden-dim", "64", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "--hidden-dim: the linear classifier has no hidden layer" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
