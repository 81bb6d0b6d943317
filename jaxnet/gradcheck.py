"""Gradient checking: a hand-written backward pass against ``jax.vjp`` and against finite differences.

A *pair* is ``forward(*args) -> (out, cache)`` and ``backward(grad_out, cache) -> grads``, one gradient per
checked argument (the layers of :mod:`jaxnet.layers`). Functions that return ``(value, grads)`` at once
(the graphs of :mod:`jaxnet.graphs`, the losses) become a pair with :func:`loss_pair`.

:func:`check_pair` draws random cotangents ``g`` and compares ``backward(g, cache)`` with

1. ``jax.vjp`` of the forward output, cotangent ``g``;
2. centred finite differences (five-point, error O(h**4)) of the scalar ``sum(g * forward(*args)[0])``,
   one coordinate at a time (all coordinates of small arguments, a random sample of large ones).

Relative error of two gradients a, b is ``||a - b|| / (||a|| + ||b||)`` over each argument (0 when both
are 0), the largest over arguments and cotangents is reported. A norm is used rather than the worst
element so that coordinates whose gradient is close to 0 do not dominate.

Checks run with ``jax.default_matmul_precision("highest")``: on GPUs and TPUs float32 matrix products are
otherwise rounded to TF32/bf16, which no 1e-9 check survives.

What to expect: in float64 (the default; checks run under ``jax.enable_x64``) both errors of a correct
backward pass are below 1e-9: about 1e-12 against finite differences and 1e-16 against ``jax.vjp``.
In float32 the ``jax.vjp`` error is rounding noise, below about 1e-6, but finite differences lose most
digits (error 1e-5 to 1e-3), so only the ``jax.vjp`` comparison is held to a tolerance there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet import graphs, layers

Forward = Callable[..., tuple[Any, Any]]
Backward = Callable[[Any, Any], Any]

#: The assignment's pass threshold for layer gradients in float64.
FLOAT64_TOLERANCE = 1e-9
#: Tolerance for the float32 comparison against ``jax.vjp`` (finite differences are not used in float32).
FLOAT32_TOLERANCE = 1e-5


@dataclasses.dataclass(frozen=True)
class GradCheckResult:
    """Largest relative errors of a backward pass against ``jax.vjp`` and finite differences."""

    vjp_error: float
    numeric_error: float

    @property
    def max_error(self) -> float:
        return max(self.vjp_error, self.numeric_error)


def relative_error(a: Any, b: Any) -> float:
    """``||a - b|| / (||a|| + ||b||)``, computed in float64 on the host; 0 when both are all zeros."""
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    scale = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if scale == 0 else float(np.linalg.norm(a - b) / scale)


def loss_pair(fn: Callable[..., tuple[Any, Any]]) -> tuple[Forward, Backward]:
    """Turns ``fn(*args) -> (value, grads)`` into a (forward, backward) pair for :func:`check_pair`."""

    def forward(*args):
        value, grads = fn(*args)
        return value, grads

    def backward(grad_value, grads):
        if isinstance(grads, (tuple, list)):
            return tuple(grad_value * g for g in grads)
        return grad_value * grads

    return forward, backward


def check_pair(
    forward: Forward,
    backward: Backward,
    args: Sequence[Any],
    *,
    wrt: Sequence[int] | None = None,
    reference: Callable[..., Any] | None = None,
    key: jax.Array | None = None,
    num_cotangents: int = 3,
    num_coords: int = 64,
    eps: float | None = None,
    dtype: Any = jnp.float64,
    numeric: bool = True,
) -> GradCheckResult:
    """Checks ``backward`` against ``jax.vjp`` and centred finite differences.

    Args:
      forward: ``forward(*args) -> (out, cache)``.
      backward: ``backward(grad_out, cache) -> grads``: a tuple with one gradient per index in ``wrt``
        (in that order), or a single array when ``wrt`` has one index.
      args: the inputs. Floating-point ones are cast to ``dtype``; others (labels) pass unchanged.
      wrt: indices of the arguments to check; default: every floating-point argument.
      reference: ``reference(*args) -> out``, the function ``jax.vjp`` differentiates; default:
        ``forward(*args)[0]``. Give one when ``forward`` itself runs the code under test inside
        JAX's autodiff (a ``jax.custom_vjp``).
      key: PRNG key for the cotangents and the sampled coordinates; default ``jax.random.key(0)``.
      num_cotangents: how many random cotangents to try.
      num_coords: finite differences are taken at up to this many coordinates per argument.
      eps: finite-difference step h; default 1e-4 in float64, 1e-2 in float32.
      dtype: float dtype of the check. float64 runs under ``jax.enable_x64(True)``.
      numeric: whether to compare with finite differences (``numeric_error`` is 0.0 when not).

    Returns:
      A :class:`GradCheckResult`.
    """
    key = jax.random.key(0) if key is None else key
    # GPUs and TPUs multiply float32 matrices in TF32/bf16 by default: too coarse for these tolerances.
    with jax.enable_x64(jnp.dtype(dtype) == jnp.float64), jax.default_matmul_precision("highest"):
        args = [_cast(a, dtype) for a in args]
        if wrt is None:
            wrt = [i for i, a in enumerate(args) if jnp.issubdtype(a.dtype, jnp.floating)]
        wrt = list(wrt)
        if not wrt:
            raise ValueError("check_pair found no floating-point argument to check; pass wrt=")
        if eps is None:
            eps = 1e-4 if jnp.dtype(dtype) == jnp.float64 else 1e-2

        def out_fn(*xs):
            full = list(args)
            for i, x in zip(wrt, xs):
                full[i] = x
            return reference(*full) if reference is not None else forward(*full)[0]

        primals = [args[i] for i in wrt]
        out, cache = forward(*args)
        _, vjp_fn = jax.vjp(out_fn, *primals)
        numeric_fns = [_numeric_gradients(out_fn, primals, i, eps) for i in range(len(primals))] if numeric else []
        vjp_error = numeric_error = 0.0
        for k in jax.random.split(key, num_cotangents):
            k_ct, k_coords = jax.random.split(k)
            grad_out = jax.random.normal(k_ct, jnp.shape(out), jnp.result_type(out))
            grads = backward(grad_out, cache)
            grads = tuple(grads) if isinstance(grads, (tuple, list)) else (grads,)
            if len(grads) != len(wrt):
                raise ValueError(f"backward returned {len(grads)} gradients for {len(wrt)} checked arguments")
            expected = vjp_fn(grad_out)
            for grad, want in zip(grads, expected):
                vjp_error = max(vjp_error, relative_error(grad, want))
            for x, grad, numeric_fn, k_arg in zip(primals, grads, numeric_fns, jax.random.split(k_coords, len(wrt))):
                coords = (
                    jnp.arange(x.size)
                    if x.size <= num_coords
                    else jax.random.choice(k_arg, x.size, (num_coords,), replace=False)
                )
                numeric_error = max(numeric_error, relative_error(jnp.ravel(grad)[coords], numeric_fn(grad_out, coords)))
        return GradCheckResult(vjp_error=vjp_error, numeric_error=numeric_error)


def check_training_step(
    training_step: Callable[..., tuple[Any, dict[str, Any]]],
    params: dict[str, Any],
    X: Any,
    y: Any,
    reg: float,
    *,
    reference: Callable[..., Any] | None = None,
    **options: Any,
) -> GradCheckResult:
    """Checks a model's ``training_step(params, X, y, reg) -> (loss, grads)`` with respect to every param.

    ``grads`` is a dict with the keys of ``params``. ``reference(params, X, y, reg) -> loss`` is what
    ``jax.vjp`` differentiates (default: the step's own loss). ``options`` go to :func:`check_pair`.
    """
    names = list(params)

    def forward(*values):
        return training_step(dict(zip(names, values[:len(names)])), *values[len(names):], reg)

    def backward(grad_loss, grads):
        return tuple(grad_loss * grads[name] for name in names)

    def plain(*values):
        return reference(dict(zip(names, values[:len(names)])), *values[len(names):], reg)

    args = [*(params[name] for name in names), X, y]
    return check_pair(forward, backward, args, wrt=range(len(names)),
                      reference=None if reference is None else plain, **options)


def _cast(value: Any, dtype: Any) -> Any:
    array = jnp.asarray(value)
    return array.astype(dtype) if jnp.issubdtype(array.dtype, jnp.floating) else array


def _numeric_gradients(out_fn: Callable[..., Any], primals: list[Any], i: int, eps: float):
    """Returns a jitted ``(grad_out, coords) -> d sum(grad_out * out) / d primals[i][coords]``.

    Five-point centred differences, ``(-f(x+2h) + 8 f(x+h) - 8 f(x-h) + f(x-2h)) / 12h``: their error
    is O(h**4), so a step large enough to keep rounding small (1e-4 in float64) still resolves 1e-9.
    """
    x = primals[i]
    steps = jnp.array([2 * eps, eps, -eps, -2 * eps], x.dtype)
    weights = jnp.array([-1.0, 8.0, -8.0, 1.0], x.dtype) / (12 * eps)

    def objective_at(grad_out, coord, step):
        xs = list(primals)
        xs[i] = x.ravel().at[coord].add(step).reshape(x.shape)
        return jnp.sum(grad_out * out_fn(*xs))

    def derivative(grad_out, coord):
        values = jax.vmap(lambda step: objective_at(grad_out, coord, step))(steps)
        return jnp.dot(weights, values)

    return jax.jit(jax.vmap(derivative, in_axes=(None, 0)))


# --------------------------------------------------------------------------------------------------
# The standard suite: every graph and layer (run by ``jaxnet gradcheck``)
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Check:
    """One entry of the standard suite."""

    name: str
    shapes: str
    run: Callable[[jax.Array, Any], GradCheckResult]


def _two_layer_loss(layer_fc, layer_relu, loss_fn, l2_fn):
    def loss(x, w1, b1, w2, b2, y, reg):
        hidden = layer_relu(layer_fc(x, w1, b1))
        scores = layer_fc(hidden, w2, b2)
        return loss_fn(scores, y) + l2_fn(w1, reg) + l2_fn(w2, reg)

    return loss


def _plain_softmax_cross_entropy(x, y):
    return -jnp.mean(jax.nn.log_softmax(x)[jnp.arange(x.shape[0]), y])


def _plain_l2(w, reg):
    return 0.5 * reg * jnp.sum(w * w)


def standard_checks() -> list[Check]:
    """Every graph, every layer, the ``jax.custom_vjp`` layers composed into a two-layer loss, and the linear
    classifier's whole ``training_step`` (loss and gradients of W and b, against a plain ``jnp`` reference)."""

    def scalars(n):
        return lambda key: list(jax.random.normal(key, (n,)))

    def graph(fn, make_args, extra=()):
        forward, backward = loss_pair(fn)

        def run(key, dtype):
            k_args, k_check = jax.random.split(key)
            args = [*make_args(k_args), *extra]
            return check_pair(forward, backward, args, key=k_check, dtype=dtype)

        return run

    def normal(key, shape):
        return jax.random.normal(key, shape)

    def fc_run(key, dtype):
        k1, k2, k3, k4 = jax.random.split(key, 4)
        args = [normal(k1, (4, 3, 5)), normal(k2, (15, 6)), normal(k3, (6,))]
        return check_pair(layers.fc_forward, layers.fc_backward, args, key=k4, dtype=dtype)

    def relu_run(key, dtype):
        k1, k2 = jax.random.split(key)
        return check_pair(layers.relu_forward, layers.relu_backward, [normal(k1, (5, 7))], key=k2, dtype=dtype)

    def softmax_run(key, dtype):
        k1, k2, k3 = jax.random.split(key, 3)
        args = [normal(k1, (6, 10)), jax.random.randint(k2, (6,), 0, 10)]
        forward, backward = loss_pair(layers.softmax_loss)
        return check_pair(forward, backward, args, key=k3, dtype=dtype)

    def l2_run(key, dtype):
        k1, k2 = jax.random.split(key)
        forward, backward = loss_pair(layers.l2_regularization)
        return check_pair(forward, backward, [normal(k1, (7, 3)), 0.3], wrt=[0], key=k2, dtype=dtype)

    def custom_vjp_run(key, dtype):
        ks = jax.random.split(key, 6)
        args = [
            normal(ks[0], (8, 12)),
            0.3 * normal(ks[1], (12, 9)),
            0.1 * normal(ks[2], (9,)),
            0.3 * normal(ks[3], (9, 5)),
            0.1 * normal(ks[4], (5,)),
            jax.random.randint(ks[5], (8,), 0, 5),
            0.05,
        ]
        custom = _two_layer_loss(layers.fc, layers.relu, layers.softmax_cross_entropy, layers.l2_penalty)
        plain = _two_layer_loss(
            lambda x, w, b: x @ w + b, jax.nn.relu, _plain_softmax_cross_entropy, _plain_l2
        )
        wrt = (0, 1, 2, 3, 4)
        forward, backward = loss_pair(jax.value_and_grad(custom, argnums=wrt))
        return check_pair(forward, backward, args, wrt=wrt, reference=plain, key=key, dtype=dtype)

    def linear_classifier_run(key, dtype):
        from jaxnet.models import linear

        ks = jax.random.split(key, 5)
        X = normal(ks[0], (8, 3, 4))
        y = jax.random.randint(ks[1], (8,), 0, 5)

        def plain(params, X, y, reg):
            scores = X.reshape(X.shape[0], -1) @ params["W"] + params["b"]
            return _plain_softmax_cross_entropy(scores, y) + _plain_l2(params["W"], reg)

        params = {"W": 0.5 * normal(ks[2], (12, 5)), "b": 0.1 * normal(ks[3], (5,))}
        return check_training_step(linear.training_step, params, X, y, 0.1, reference=plain, key=ks[4], dtype=dtype)

    return [
        Check("f1 (linear unit, squared error)", "6 scalars", graph(graphs.f1, scalars(6))),
        Check("f2 (tanh graph)", "1 scalar", graph(graphs.f2, scalars(1))),
        Check("f3 (softmax loss, two scores)", "2 scalars, y=2", graph(graphs.f3, scalars(2), extra=(2,))),
        Check("f4 (sin, sqrt, exp: 9 ops)", "3 scalars", graph(graphs.f4, scalars(3))),
        Check("fc_forward / fc_backward", "x (4,3,5), w (15,6), b (6,)", fc_run),
        Check("relu_forward / relu_backward", "x (5,7)", relu_run),
        Check("softmax_loss", "x (6,10), y (6,)", softmax_run),
        Check("l2_regularization", "w (7,3), reg 0.3", l2_run),
        Check("custom_vjp fc-relu-fc-softmax+L2", "x (8,12), h 9, C 5", custom_vjp_run),
        Check("linear classifier training_step", "x (8,3,4), W (12,5), b (5,)", linear_classifier_run),
    ]


def run_standard_checks(dtype: Any = jnp.float64, seed: int = 0) -> list[tuple[Check, GradCheckResult]]:
    """Runs :func:`standard_checks`; returns each check with its result."""
    results = []
    for i, check in enumerate(standard_checks()):
        with jax.enable_x64(jnp.dtype(dtype) == jnp.float64):
            key = jax.random.fold_in(jax.random.key(seed), i)
            results.append((check, check.run(key, dtype)))
    return results
