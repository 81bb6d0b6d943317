"""The scalar graphs f1-f4 against known values and jax.grad."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet import graphs


def reference_f1(x1, w1, x2, w2, b, y):
    return (x1 * w1 + x2 * w2 + b - y) ** 2


def reference_f3(s1, s2, y):
    return -jax.nn.log_softmax(jnp.stack([s1, s2]))[y - 1]


def reference_f4(x, y, z):
    return jnp.sin(x * y) + jnp.sqrt(z**2 + 1) * jnp.exp(-x)


def test_f3_known_value():
    loss, (ds1, ds2) = graphs.f3(0.0, 0.0, 1)
    assert float(loss) == pytest.approx(math.log(2), rel=1e-7)
    assert (float(ds1), float(ds2)) == pytest.approx((-0.5, 0.5), rel=1e-7)


def test_f2_is_tanh_with_its_derivative():
    for x in [-3.0, -0.5, 0.0, 0.25, 2.0]:
        y, dy = graphs.f2(x)
        assert float(y) == pytest.approx(math.tanh(x), abs=1e-7)
        assert float(dy) == pytest.approx(1 - math.tanh(x) ** 2, abs=1e-6)


def test_f1_known_value():
    loss, grads = graphs.f1(1.0, 2.0, 3.0, 4.0, 5.0, 6.0)  # y_hat = 19, d = 13
    assert float(loss) == 169.0
    assert [float(g) for g in grads] == [52.0, 26.0, 104.0, 78.0, 26.0, -26.0]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("seed", range(5))
def test_graphs_match_jax_grad(dtype, seed):
    with jax.enable_x64(dtype == jnp.float64):
        rtol = 1e-12 if dtype == jnp.float64 else 2e-5
        v = list(jax.random.normal(jax.random.key(seed), (6,), dtype))
        cases = [
            (graphs.f1, reference_f1, v[:6], range(6)),
            (graphs.f2, jnp.tanh, v[:1], range(1)),
            (graphs.f4, reference_f4, v[:3], range(3)),
        ]
        for fn, reference, args, argnums in cases:
            value, grads = fn(*args)
            grads = grads if isinstance(grads, tuple) else (grads,)
            want = jax.grad(reference, argnums=tuple(argnums))(*args)
            assert value.dtype == dtype
            np.testing.assert_allclose(value, reference(*args), rtol=rtol, atol=rtol)
            np.testing.assert_allclose(jnp.stack(grads), jnp.stack(want), rtol=rtol, atol=rtol)
        for y in (1, 2):
            value, grads = graphs.f3(v[0], v[1], y)
            want = jax.grad(reference_f3, argnums=(0, 1))(v[0], v[1], y)
            np.testing.assert_allclose(value, reference_f3(v[0], v[1], y), rtol=rtol)
            np.testing.assert_allclose(jnp.stack(grads), jnp.stack(want), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_f3_is_finite_for_large_scores(dtype):
    with jax.enable_x64(dtype == jnp.float64):
        s1, s2 = jnp.asarray(1000.0, dtype), jnp.asarray(-1000.0, dtype)
        loss, (ds1, ds2) = graphs.f3(s1, s2, 2)
        assert loss.dtype == dtype
        assert float(loss) == 2000.0 and (float(ds1), float(ds2)) == (1.0, -1.0)
        loss, (ds1, ds2) = graphs.f3(s1, s2, 1)
        assert float(loss) == 0.0 and (float(ds1), float(ds2)) == (0.0, 0.0)
        # The naive graph overflows here: exp(1000) is inf.
        with np.errstate(over="ignore"):
            assert not np.isfinite(np.exp(np.asarray(1000.0, dtype)))


def test_f2_is_finite_where_exp_2x_overflows():
    y, dy = graphs.f2(100.0)
    assert (float(y), float(dy)) == (1.0, 0.0)
    y, dy = graphs.f2(-100.0)
    assert (float(y), float(dy)) == (-1.0, 0.0)


@pytest.mark.parametrize("y", [0, 3, -1])
def test_f3_rejects_labels_outside_1_2(y):
    with pytest.raises(ValueError, match="y must be 1 or 2"):
        graphs.f3(0.0, 1.0, y)


def test_f3_label_under_jit_gives_nan_not_a_wrong_number():
    loss, grads = jax.jit(graphs.f3)(0.0, 1.0, 3)
    assert np.isnan(loss) and all(np.isnan(g) for g in grads)


def test_f3_rejects_float_label():
    with pytest.raises(TypeError, match="integer 1 or 2"):
        graphs.f3(0.0, 1.0, 1.0)


def test_graph_inputs_must_be_scalars():
    with pytest.raises(ValueError, match="x must be a scalar"):
        graphs.f2(jnp.ones(3))
    with pytest.raises(TypeError, match="string"):
        graphs.f4("1", 2.0, 3.0)


def test_graphs_jit_and_vmap():
    xs = jnp.linspace(-2, 2, 7)
    y, dy = jax.jit(jax.vmap(graphs.f2))(xs)
    np.testing.assert_allclose(y, jnp.tanh(xs), atol=1e-6)
    loss, (ds1, ds2) = jax.vmap(graphs.f3, in_axes=(0, 0, None))(xs, -xs, 1)
    np.testing.assert_allclose(ds1 + ds2, 0.0, atol=1e-6)
