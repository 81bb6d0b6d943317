"""The two-layer net: hand-written gradients of the whole classifier against jax.grad."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet import gradcheck
from jaxnet.models import two_layer


def reference_loss(params, X, y, reg):
    scores = jax.nn.relu(X.reshape(X.shape[0], -1) @ params["W1"] + params["b1"]) @ params["W2"] + params["b2"]
    data_loss = -jnp.mean(jax.nn.log_softmax(scores)[jnp.arange(X.shape[0]), y])
    return data_loss + 0.5 * reg * (jnp.sum(params["W1"] ** 2) + jnp.sum(params["W2"] ** 2))


def test_init_shapes_and_zero_biases():
    params = two_layer.init(jax.random.key(0), 784, 64, 10, weight_scale=1e-3)
    assert {k: v.shape for k, v in params.items()} == {"W1": (784, 64), "b1": (64,), "W2": (64, 10), "b2": (10,)}
    assert float(jnp.abs(params["b1"]).sum()) == 0 and float(jnp.abs(params["b2"]).sum()) == 0
    assert float(params["W1"].std()) == pytest.approx(1e-3, rel=0.05)


def test_init_rejects_bad_sizes():
    with pytest.raises(ValueError, match="hidden_dim must be at least 1"):
        two_layer.init(jax.random.key(0), 4, 0, 3)


@pytest.mark.parametrize("seed", [0, 1])
def test_whole_classifier_gradient_check_float64(seed):
    with jax.enable_x64(True):
        k = jax.random.split(jax.random.key(seed), 3)
        params = two_layer.init(k[0], 12, 9, 5, weight_scale=0.5, dtype=jnp.float64)
        params["b1"] = 0.1 * jax.random.normal(k[2], (9,), jnp.float64)
        X = jax.random.normal(k[1], (7, 3, 4), jnp.float64)
        y = jnp.array([0, 1, 2, 3, 4, 0, 1])
        reg = 0.1
        loss, grads = two_layer.training_step(params, X, y, reg)
        want_loss, want = jax.value_and_grad(reference_loss)(params, X, y, reg)
        assert float(loss) == pytest.approx(float(want_loss), rel=1e-12)
        for name in params:
            assert gradcheck.relative_error(grads[name], want[name]) < 1e-10, name

        # and against finite differences, through the generic checker
        result = gradcheck.check_training_step(two_layer.training_step, params, X, y, reg)
        assert result.vjp_error < 1e-10 and result.numeric_error < 1e-10


def test_biases_are_not_regularized():
    params = two_layer.init(jax.random.key(0), 4, 3, 2)
    X = jnp.ones((2, 4))
    y = jnp.array([0, 1])
    _, without = two_layer.training_step(params, X, y, 0.0)
    _, with_reg = two_layer.training_step(params, X, y, 10.0)
    np.testing.assert_array_equal(without["b1"], with_reg["b1"])
    np.testing.assert_allclose(with_reg["W1"] - without["W1"], 10.0 * params["W1"], rtol=1e-5, atol=1e-7)


def test_backward_returns_the_params_keys():
    params = two_layer.init(jax.random.key(0), 4, 3, 2)
    scores, cache = two_layer.forward(params, jnp.ones((5, 2, 2)))
    assert scores.shape == (5, 2)
    assert set(two_layer.backward(params, jnp.ones_like(scores), cache)) == set(params)
