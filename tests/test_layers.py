"""Layers: hand-written backward passes against jax.vjp, stability, dtypes, jit/vmap and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxnet import gradcheck, layers

DTYPES = [jnp.float32, jnp.float64]


def tolerance(dtype):
    return 1e-10 if dtype == jnp.float64 else 2e-5


def reference_softmax_loss(x, y):
    return -jnp.mean(jax.nn.log_softmax(x)[jnp.arange(x.shape[0]), y])


shapes = st.tuples(st.integers(1, 6), st.integers(1, 7), st.integers(1, 5))


@settings(max_examples=15, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**16), dtype=st.sampled_from(DTYPES))
def test_fc_matches_jax_vjp(shape, seed, dtype):
    n, din, dout = shape
    with jax.enable_x64(dtype == jnp.float64):
        k = jax.random.split(jax.random.key(seed), 4)
        x = jax.random.normal(k[0], (n, din), dtype)
        w = jax.random.normal(k[1], (din, dout), dtype)
        b = jax.random.normal(k[2], (dout,), dtype)
        g = jax.random.normal(k[3], (n, dout), dtype)
        out, cache = layers.fc_forward(x, w, b)
        grads = layers.fc_backward(g, cache)
        want_out, vjp = jax.vjp(lambda x, w, b: x @ w + b, x, w, b)
        np.testing.assert_allclose(out, want_out, rtol=tolerance(dtype), atol=tolerance(dtype))
        for got, want in zip(grads, vjp(g)):
            assert got.dtype == dtype
            np.testing.assert_allclose(got, want, rtol=tolerance(dtype), atol=tolerance(dtype))


def test_fc_flattens_higher_rank_inputs_and_returns_grad_x_in_their_shape():
    x = jax.random.normal(jax.random.key(0), (4, 2, 3, 5))
    w = jax.random.normal(jax.random.key(1), (30, 7))
    b = jnp.zeros(7)
    out, cache = layers.fc_forward(x, w, b)
    assert out.shape == (4, 7)
    np.testing.assert_allclose(out, x.reshape(4, 30) @ w, rtol=1e-5)
    grad_x, grad_w, grad_b = layers.fc_backward(jnp.ones((4, 7)), cache)
    assert grad_x.shape == x.shape and grad_w.shape == w.shape and grad_b.shape == b.shape


@settings(max_examples=15, deadline=None)
@given(shape=st.tuples(st.integers(1, 6), st.integers(1, 9)), seed=st.integers(0, 2**16), dtype=st.sampled_from(DTYPES))
def test_relu_matches_jax_vjp(shape, seed, dtype):
    with jax.enable_x64(dtype == jnp.float64):
        k1, k2 = jax.random.split(jax.random.key(seed))
        x = jax.random.normal(k1, shape, dtype)
        g = jax.random.normal(k2, shape, dtype)
        out, cache = layers.relu_forward(x)
        want_out, vjp = jax.vjp(jax.nn.relu, x)
        np.testing.assert_array_equal(out, want_out)
        got = layers.relu_backward(g, cache)
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, jnp.where(x > 0, g, 0))


def test_relu_gradient_is_zero_at_zero():
    out, cache = layers.relu_forward(jnp.array([-1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(layers.relu_backward(jnp.ones(3), cache), [0.0, 0.0, 1.0])


@settings(max_examples=15, deadline=None)
@given(shape=st.tuples(st.integers(1, 8), st.integers(1, 10)), seed=st.integers(0, 2**16), dtype=st.sampled_from(DTYPES))
def test_softmax_loss_matches_jax_grad(shape, seed, dtype):
    n, c = shape
    with jax.enable_x64(dtype == jnp.float64):
        k1, k2 = jax.random.split(jax.random.key(seed))
        x = 3 * jax.random.normal(k1, (n, c), dtype)
        y = jax.random.randint(k2, (n,), 0, c)
        loss, grad = layers.softmax_loss(x, y)
        assert loss.dtype == dtype and grad.dtype == dtype
        np.testing.assert_allclose(loss, reference_softmax_loss(x, y), rtol=tolerance(dtype))
        np.testing.assert_allclose(
            grad, jax.grad(reference_softmax_loss)(x, y), rtol=tolerance(dtype), atol=tolerance(dtype)
        )


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_loss_is_stable_at_1e4(dtype):
    with jax.enable_x64(dtype == jnp.float64):
        x = jnp.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], dtype)
        y = jnp.array([1, 0])
        loss, grad = layers.softmax_loss(x, y)
        assert np.isfinite(loss) and np.all(np.isfinite(grad))
        np.testing.assert_allclose(loss, (2e4 + 2e4 + np.log(2)) / 2, rtol=1e-6)
        np.testing.assert_allclose(grad, jax.grad(reference_softmax_loss)(x, y), atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_l2_regularization(dtype):
    with jax.enable_x64(dtype == jnp.float64):
        w = jax.random.normal(jax.random.key(3), (4, 5), dtype)
        loss, grad = layers.l2_regularization(w, 0.3)
        assert loss.dtype == dtype and grad.dtype == dtype
        np.testing.assert_allclose(loss, 0.15 * jnp.sum(w**2), rtol=tolerance(dtype))
        np.testing.assert_allclose(grad, jax.grad(lambda w: 0.15 * jnp.sum(w**2))(w), rtol=tolerance(dtype))


def test_every_layer_jits_and_vmaps():
    k = jax.random.split(jax.random.key(0), 4)
    x = jax.random.normal(k[0], (3, 4, 6))  # a batch of 3 minibatches
    w = jax.random.normal(k[1], (6, 5))
    b = jnp.zeros(5)
    y = jax.random.randint(k[2], (3, 4), 0, 5)

    def loss_of(x, y):
        scores, fc_cache = layers.fc_forward(x, w, b)
        hidden, relu_cache = layers.relu_forward(scores)
        loss, grad = layers.softmax_loss(hidden, y)
        reg, _ = layers.l2_regularization(w, 0.1)
        grad_x, _, _ = layers.fc_backward(layers.relu_backward(grad, relu_cache), fc_cache)
        return loss + reg, grad_x

    eager = [loss_of(x[i], y[i]) for i in range(3)]
    batched = jax.jit(jax.vmap(loss_of))(x, y)
    np.testing.assert_allclose(batched[0], jnp.stack([e[0] for e in eager]), rtol=1e-6)
    np.testing.assert_allclose(batched[1], jnp.stack([e[1] for e in eager]), rtol=1e-5, atol=1e-7)


def test_custom_vjp_layers_run_the_hand_written_backward_and_match_autodiff():
    for check in gradcheck.standard_checks():
        if check.name.startswith("custom_vjp"):
            with jax.enable_x64(True):
                result = check.run(jax.random.key(0), jnp.float64)
            assert result.vjp_error < 1e-12
            assert result.numeric_error < 1e-9


def test_custom_vjp_actually_calls_the_hand_written_backward(monkeypatch):
    calls = []
    original = layers.relu_backward

    def spy(grad_out, cache):
        calls.append(grad_out.shape)
        return original(grad_out, cache)

    monkeypatch.setattr(layers, "relu_backward", spy)
    jax.grad(lambda x: layers.relu(x).sum())(jnp.ones((2, 3)))
    assert calls == [(2, 3)]


def test_custom_vjp_layers_under_jit_keep_dtype():
    with jax.enable_x64(True):
        x = jnp.ones((2, 3), jnp.float64)
        w = jnp.ones((3, 4), jnp.float64)
        b = jnp.zeros(4, jnp.float64)
        y = jnp.array([0, 3])
        grads = jax.jit(jax.grad(lambda x, w, b: layers.softmax_cross_entropy(layers.fc(x, w, b), y) + layers.l2_penalty(w, 0.5), argnums=(0, 1, 2)))(x, w, b)
        assert all(g.dtype == jnp.float64 for g in grads)


# ------------------------------------------------------------------ bad input


def test_label_out_of_range_is_an_error_when_concrete():
    with pytest.raises(ValueError, match=r"y\[1\] = 7 is outside \[0, 3\)"):
        layers.softmax_loss(jnp.zeros((2, 3)), jnp.array([0, 7]))
    with pytest.raises(ValueError, match="outside"):
        layers.softmax_loss(jnp.zeros((2, 3)), jnp.array([-1, 0]))


def test_label_out_of_range_under_jit_is_nan_not_a_finite_answer():
    loss, grad = jax.jit(layers.softmax_loss)(jnp.zeros((2, 3)), jnp.array([0, 7]))
    assert np.isnan(loss)
    assert np.all(np.isnan(grad[1])) and np.all(np.isfinite(grad[0]))
    with pytest.raises(ValueError, match="outside"):
        layers.check_labels(jnp.array([0, 7]), 3)


@pytest.mark.parametrize(
    "x, y, error, match",
    [
        (jnp.zeros((2, 3)), jnp.array([0, 1, 2]), ValueError, "2 rows but y has 3 labels"),
        (jnp.zeros((2, 3)), jnp.array([[0, 1]]), ValueError, "vector of N class indices"),
        (jnp.zeros((2, 3)), jnp.array([0.0, 1.0]), TypeError, "integer class indices"),
        (jnp.zeros(3), jnp.array([0]), ValueError, "2 dimension"),
        (jnp.zeros((0, 3)), jnp.zeros((0,), jnp.int32), ValueError, "empty batch"),
        ("scores", jnp.array([0]), TypeError, "string"),
        (jnp.zeros((2, 3), jnp.int32), jnp.array([0, 1]), TypeError, "floating point"),
        ([[1.0, 2.0], [3.0]], jnp.array([0, 1]), ValueError, "ragged"),
    ],
)
def test_softmax_loss_bad_input(x, y, error, match):
    with pytest.raises(error, match=match):
        layers.softmax_loss(x, y)
    if not isinstance(x, (str, list)):  # shape and dtype checks also hold under jit
        with pytest.raises(error, match=match):
            jax.jit(layers.softmax_loss)(x, y)


def test_list_of_lists_is_accepted_like_an_array():
    loss, grad = layers.softmax_loss([[0.0, 0.0]], [1])
    assert float(loss) == pytest.approx(np.log(2))


def test_nan_scores_give_nan_loss():
    loss, grad = layers.softmax_loss(jnp.array([[jnp.nan, 0.0]]), jnp.array([1]))
    assert np.isnan(loss)


@pytest.mark.parametrize(
    "args, match",
    [
        ((jnp.zeros((2, 5)), jnp.zeros((4, 3)), jnp.zeros(3)), r"flattens to 5 features .* \(5, Dout\)"),
        ((jnp.zeros((2, 4)), jnp.zeros((4, 3)), jnp.zeros(2)), r"b must be \(3,\)"),
        ((jnp.zeros(4), jnp.zeros((4, 3)), jnp.zeros(3)), "at least 2 dimensions"),
        ((jnp.zeros((2, 4)), jnp.zeros(4), jnp.zeros(3)), "w must have 2"),
    ],
)
def test_fc_bad_shapes(args, match):
    with pytest.raises(ValueError, match=match):
        layers.fc_forward(*args)
    with pytest.raises(ValueError, match=match):
        jax.jit(layers.fc_forward)(*args)


def test_backward_checks_grad_out_shape():
    _, cache = layers.fc_forward(jnp.zeros((2, 4)), jnp.zeros((4, 3)), jnp.zeros(3))
    with pytest.raises(ValueError, match=r"forward output's shape \(2, 3\)"):
        layers.fc_backward(jnp.zeros((3, 3)), cache)
    _, cache = layers.relu_forward(jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"forward input's shape \(2, 4\)"):
        layers.relu_backward(jnp.zeros((4, 2)), cache)


def test_fc_with_an_empty_batch_returns_an_empty_output():
    out, cache = layers.fc_forward(jnp.zeros((0, 4)), jnp.ones((4, 3)), jnp.ones(3))
    assert out.shape == (0, 3)
    grad_x, grad_w, grad_b = layers.fc_backward(jnp.zeros((0, 3)), cache)
    assert grad_x.shape == (0, 4) and float(jnp.abs(grad_w).sum()) == 0.0


def test_softmax_loss_checked_raises_for_traced_labels():
    x = jnp.zeros((3, 4))
    loss, grad = layers.softmax_loss_checked(x, jnp.array([0, 3, 1]))
    np.testing.assert_allclose(loss, np.log(4), rtol=1e-6)
    with pytest.raises(ValueError, match=r"label y\[2\] = 9 is outside \[0, 4\)"):
        layers.softmax_loss_checked(x, jnp.array([0, 1, 9]))
    with pytest.raises(ValueError, match=r"label y\[0\] = -1 is outside"):
        layers.softmax_loss_checked(x, jnp.array([-1, 1, 2]))


def test_check_labels_traced_inside_a_users_checkified_jit():
    from jax.experimental import checkify

    def loss(x, y):
        layers.check_labels_traced(y, x.shape[1])
        return layers.softmax_loss(x, y)[0]

    error, _ = jax.jit(checkify.checkify(loss))(jnp.zeros((2, 3)), jnp.array([1, 5]))
    with pytest.raises(Exception, match=r"label y\[1\] = 5 is outside \[0, 3\)"):
        error.throw()


def test_labels_checked_gives_the_same_values_without_the_masks():
    x = jax.random.normal(jax.random.key(0), (5, 4))
    y = jnp.array([0, 3, 1, 2, 2])
    for got, want in zip(jax.jit(lambda x, y: layers.softmax_loss(x, y, labels_checked=True))(x, y),
                         layers.softmax_loss(x, y)):
        np.testing.assert_array_equal(got, want)
