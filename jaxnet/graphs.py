"""Scalar computational graphs with backward passes derived by hand, node by node.

Each function takes scalars and returns ``(value, grads)``, ``grads`` holding the derivative of the
value with respect to every input, in argument order. The forward pass names every node; the backward
pass walks them in reverse, each line one local chain-rule step (``d<node>`` is dValue/d<node>).

All are pure ``jax.numpy``: they run under ``jit`` and ``vmap`` (for batches of scalars) and keep the
inputs' float dtype.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxnet.layers import as_array

Array = jax.Array


def _scalars(names: tuple[str, ...], values: tuple[Any, ...]) -> list[Array]:
    arrays = [as_array(name, value) for name, value in zip(names, values)]
    for name, array in zip(names, arrays):
        if array.shape != ():
            raise ValueError(f"{name} must be a scalar, got shape {array.shape} (use jax.vmap for batches)")
    dtype = jnp.result_type(*arrays, float)
    return [array.astype(dtype) for array in arrays]


def f1(x1: Any, w1: Any, x2: Any, w2: Any, b: Any, y: Any) -> tuple[Array, tuple[Array, ...]]:
    """Squared error of a two-input linear unit: ``L = (x1*w1 + x2*w2 + b - y)**2``.

    Returns (L, (dL/dx1, dL/dw1, dL/dx2, dL/dw2, dL/db, dL/dy)).
    """
    x1, w1, x2, w2, b, y = _scalars(("x1", "w1", "x2", "w2", "b", "y"), (x1, w1, x2, w2, b, y))
    # forward
    a1 = x1 * w1
    a2 = x2 * w2
    y_hat = a1 + a2 + b
    d = y_hat - y
    loss = d * d
    # backward
    dd = 2 * d
    dy_hat = dd
    dy = -dd
    da1 = dy_hat
    da2 = dy_hat
    db = dy_hat
    dx1, dw1 = da1 * w1, da1 * x1
    dx2, dw2 = da2 * w2, da2 * x2
    return loss, (dx1, dw1, dx2, dw2, db, dy)


def f2(x: Any) -> tuple[Array, Array]:
    """``y = (exp(2x) - 1) / (exp(2x) + 1)``, which is tanh(x). Returns (y, dy/dx).

    The assignment's nodes are d = 2x, e = exp(d), t = e - 1, b = e + 1, y = t / b. Evaluated as written,
    exp(2x) overflows for x above about 44 (float32) and y becomes inf/inf = NaN. The same graph is
    evaluated here on -|x| (so e <= 1) and the sign is put back at the end: y = sign(x) * t / b with
    d = -2|x|, t = 1 - e, b = 1 + e. It is exactly tanh for every x.
    """
    (x,) = _scalars(("x",), (x,))
    # forward
    sign = jnp.where(x < 0, -1.0, 1.0).astype(x.dtype)
    a = sign * x  # |x|
    d = -2 * a
    e = jnp.exp(d)
    t = 1 - e
    b = 1 + e
    q = t / b
    y = sign * q
    # backward
    dq = sign
    dt = dq / b
    db = -dq * t / (b * b)
    de = -dt + db
    dd = de * e
    da = -2 * dd
    dx = da * sign
    return y, dx


def f3(s1: Any, s2: Any, y: Any) -> tuple[Array, tuple[Array, Array]]:
    """Softmax cross-entropy over two scores: ``L = -log p_y``, p = softmax(s1, s2), y in {1, 2}.

    Returns (L, (dL/ds1, dL/ds2)).

    The assignment's graph is e_i = exp(s_i), d = e1 + e2, p_i = e_i / d, L = -log(choose(p1, p2, y)).
    Two changes keep it finite at any score (s1 = 1000, s2 = -1000 included) without changing its value:
    the scores are shifted by m = max(s1, s2) first (so e_i <= 1 and 1 <= d <= 2), and the graph
    works with log-probabilities, lp_i = z_i - log(d), since p_y itself can underflow to 0.

    ``y`` outside {1, 2} raises ``ValueError`` when concrete; under ``jit`` it gives NaN.
    """
    s1, s2 = _scalars(("s1", "s2"), (s1, s2))
    y = as_array("y", y)
    if not jnp.issubdtype(y.dtype, jnp.integer) or y.shape != ():
        raise TypeError(f"y must be the integer 1 or 2, got {y.dtype} of shape {y.shape}")
    if not isinstance(y, jax.core.Tracer) and int(y) not in (1, 2):
        raise ValueError(f"y must be 1 or 2 (the index of the true score), got {int(y)}")
    # forward
    m = jnp.maximum(s1, s2)
    z1, z2 = s1 - m, s2 - m
    e1, e2 = jnp.exp(z1), jnp.exp(z2)
    d = e1 + e2
    log_d = jnp.log(d)
    lp1, lp2 = z1 - log_d, z2 - log_d
    lp_y = jnp.where(y == 1, lp1, lp2)  # the choose node
    nan = jnp.array(jnp.nan, s1.dtype)
    loss = jnp.where((y == 1) | (y == 2), 0 - lp_y, nan)  # 0 - lp, not -lp: no -0.0
    # backward
    dlp_y = -1.0
    dlp1 = jnp.where(y == 1, dlp_y, 0.0)  # choose routes the gradient to the chosen input only
    dlp2 = jnp.where(y == 2, dlp_y, 0.0)
    dz1, dz2 = dlp1, dlp2
    dlog_d = -(dlp1 + dlp2)
    dd = dlog_d / d
    de1, de2 = dd, dd
    dz1 = dz1 + de1 * e1
    dz2 = dz2 + de2 * e2
    dm = -(dz1 + dz2)  # zero up to rounding: the loss does not change when both scores shift
    ds1 = dz1 + jnp.where(s1 >= s2, dm, 0.0)
    ds2 = dz2 + jnp.where(s1 >= s2, 0.0, dm)
    ds1 = jnp.where(jnp.isnan(loss), nan, ds1).astype(s1.dtype)
    ds2 = jnp.where(jnp.isnan(loss), nan, ds2).astype(s1.dtype)
    return loss, (ds1, ds2)


def f4(x: Any, y: Any, z: Any) -> tuple[Array, tuple[Array, Array, Array]]:
    """A graph of nine operators: ``L = sin(x*y) + sqrt(z**2 + 1) * exp(-x)``.

    Returns (L, (dL/dx, dL/dy, dL/dz)). ``x`` feeds two branches, so its gradient is a sum.
    """
    x, y, z = _scalars(("x", "y", "z"), (x, y, z))
    # forward
    a = x * y
    s = jnp.sin(a)
    q = z * z
    r = q + 1
    t = jnp.sqrt(r)
    u = -x
    v = jnp.exp(u)
    w = t * v
    loss = s + w
    # backward
    ds = 1.0
    dw = 1.0
    dt, dv = dw * v, dw * t
    du = dv * v
    dx_from_u = -du
    dr = dt / (2 * t)
    dq = dr
    dz = dq * 2 * z
    da = ds * jnp.cos(a)
    dx_from_a, dy = da * y, da * x
    dx = dx_from_a + dx_from_u
    return loss, (dx, dy, dz)
