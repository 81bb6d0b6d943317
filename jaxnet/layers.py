"""Layers as pure functions with hand-written backward passes (cs231n style).

Each layer is a pair: ``*_forward(...) -> (out, cache)`` and ``*_backward(grad_out, cache) -> grads``,
where ``cache`` holds just what the backward pass needs. The losses return ``(loss, grad)`` at once.

Everything is plain ``jax.numpy``: it runs under ``jit`` and ``vmap``, and keeps the input's float
dtype (float32 in, float32 out; float64 in, float64 out). Shapes and dtypes are checked when the
function is traced, so a wrong rank or a mismatched length is a ``ValueError``/``TypeError`` also
under ``jit``. Label values can only be checked when they are concrete:

- called eagerly, ``softmax_loss`` raises ``ValueError`` for a label outside ``[0, C)``;
- under ``jit`` (labels are tracers) a row with such a label gives a NaN loss and NaN gradients, never
  a silent finite answer. Call :func:`check_labels` outside the compiled function to get the error
  (the training loop does, once per dataset), or :func:`softmax_loss_checked`, which is compiled with
  ``jax.experimental.checkify`` and raises for traced labels too; inside your own checkified function,
  :func:`check_labels_traced` adds the same check.

The second half of this module wraps the same backward passes in ``jax.custom_vjp`` (``fc``, ``relu``,
``softmax_cross_entropy``, ``l2_penalty``), so that ``jax.grad`` of a loss built from them runs the
hand-written code.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

Array = jax.Array


# --------------------------------------------------------------------------------------------------
# Input checks (run at trace time: shapes and dtypes are static under jit)
# --------------------------------------------------------------------------------------------------


def as_array(name: str, value: Any) -> Array:
    """Returns ``value`` as a JAX array, or raises a clear error for what cannot be one.

    Arrays (NumPy, JAX, tracers) pass through; nested lists of numbers are converted like
    ``jnp.asarray`` would; strings, ragged lists and non-numeric objects are refused.
    """
    if isinstance(value, jax.Array):
        return value
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a numeric array, got the string {value!r:.60}")
    try:
        array = np.asarray(value)
    except ValueError as error:  # ragged nested lists
        raise ValueError(f"{name} could not be made into an array (ragged nested lists?): {error}") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a numeric array, got dtype {array.dtype} from {type(value).__name__}")
    return jnp.asarray(array)


def _float_array(name: str, value: Any, ndim: int | None = None, min_ndim: int | None = None) -> Array:
    array = as_array(name, value)
    if not jnp.issubdtype(array.dtype, jnp.floating):
        raise TypeError(
            f"{name} must be floating point (float32 or float64), got {array.dtype}; "
            f"convert it first, e.g. {name}.astype(jnp.float32)"
        )
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {array.shape}")
    if min_ndim is not None and array.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimensions (N, d1, ...), got shape {array.shape}")
    return array


def _label_array(y: Any, num_examples: int) -> Array:
    y = as_array("y", y)
    if not jnp.issubdtype(y.dtype, jnp.integer):
        raise TypeError(
            f"y must hold integer class indices, got dtype {y.dtype}; convert it with y.astype(jnp.int32)"
        )
    if y.ndim != 1:
        raise ValueError(f"y must be a vector of N class indices, got shape {y.shape}")
    if y.shape[0] != num_examples:
        raise ValueError(f"x has {num_examples} rows but y has {y.shape[0]} labels; they must match")
    return y


def check_labels(y: Any, num_classes: int) -> None:
    """Raises ``ValueError`` if a (concrete) label is outside ``[0, num_classes)``.

    Meant to run outside compiled code: inside ``jit`` the labels are tracers and cannot be checked.
    """
    if isinstance(y, jax.core.Tracer):
        return
    labels = np.asarray(y)
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"label y[{i}] = {labels[i]} is outside [0, {num_classes}) ({bad.size} bad label(s) in all); "
            f"labels must be class indices 0..{num_classes - 1}"
        )


def check_labels_traced(y: Array, num_classes: int) -> None:
    """A ``checkify.check`` that every label is in ``[0, num_classes)``, for use inside a function
    transformed by ``jax.experimental.checkify.checkify`` (a plain ``jit`` cannot stage it)."""
    bad = (y < 0) | (y >= num_classes)
    first = jnp.argmax(bad)
    checkify.check(~bad.any(), f"label y[{{i}}] = {{value}} is outside [0, {num_classes})", i=first, value=y[first])


# --------------------------------------------------------------------------------------------------
# Fully connected
# --------------------------------------------------------------------------------------------------


def fc_forward(x: Any, w: Any, b: Any) -> tuple[Array, tuple[Array, Array, Array]]:
    """Affine layer ``out = x.reshape(N, Din) @ w + b``.

    Args:
      x: inputs, shape (N, Din) or (N, d1, ..., dk) with d1 * ... * dk = Din (flattened row-major).
      w: weights, shape (Din, Dout).
      b: biases, shape (Dout,).

    Returns:
      out: shape (N, Dout).
      cache: (x, w, b) for :func:`fc_backward`.
    """
    x = _float_array("x", x, min_ndim=2)
    w = _float_array("w", w, ndim=2)
    b = _float_array("b", b, ndim=1)
    din = int(np.prod(x.shape[1:]))
    if din != w.shape[0]:
        raise ValueError(
            f"x of shape {x.shape} flattens to {din} features per example but w has shape {w.shape}; "
            f"w must be (Din, Dout) = ({din}, Dout)"
        )
    if b.shape[0] != w.shape[1]:
        raise ValueError(f"b has shape {b.shape} but w has {w.shape[1]} output columns; b must be ({w.shape[1]},)")
    out = x.reshape(x.shape[0], din) @ w + b
    return out, (x, w, b)


def fc_backward(grad_out: Any, cache: tuple[Array, Array, Array]) -> tuple[Array, Array, Array]:
    """Backward pass of :func:`fc_forward`.

    Args:
      grad_out: upstream gradient dL/dout, shape (N, Dout).
      cache: the ``(x, w, b)`` that :func:`fc_forward` returned.

    Returns:
      grad_x in the shape of x, grad_w (Din, Dout), grad_b (Dout,).
    """
    x, w, b = cache
    grad_out = _float_array("grad_out", grad_out, ndim=2)
    expected = (x.shape[0], w.shape[1])
    if grad_out.shape != expected:
        raise ValueError(f"grad_out must have the forward output's shape {expected}, got {grad_out.shape}")
    x_flat = x.reshape(x.shape[0], w.shape[0])
    grad_x = (grad_out @ w.T).reshape(x.shape).astype(x.dtype)
    grad_w = (x_flat.T @ grad_out).astype(w.dtype)
    grad_b = grad_out.sum(axis=0).astype(b.dtype)
    return grad_x, grad_w, grad_b


# --------------------------------------------------------------------------------------------------
# ReLU
# --------------------------------------------------------------------------------------------------


def relu_forward(x: Any) -> tuple[Array, Array]:
    """``out = max(x, 0)`` elementwise; x of any shape. Returns (out, cache = x)."""
    x = _float_array("x", x)
    return jnp.maximum(x, 0), x


def relu_backward(grad_out: Any, cache: Array) -> Array:
    """Backward pass of :func:`relu_forward`: the gradient passes where x > 0 and is 0 where x <= 0."""
    x = cache
    grad_out = _float_array("grad_out", grad_out)
    if grad_out.shape != x.shape:
        raise ValueError(f"grad_out must have the forward input's shape {x.shape}, got {grad_out.shape}")
    return jnp.where(x > 0, grad_out, jnp.zeros((), grad_out.dtype)).astype(x.dtype)


# --------------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------------


def softmax_loss(x: Any, y: Any, *, labels_checked: bool = False) -> tuple[Array, Array]:
    """Mean softmax cross-entropy over a batch, and its gradient.

    Scores are shifted by their row maximum before ``exp``, so scores of +-1e4 stay finite in float32.

    Args:
      x: scores, shape (N, C), N >= 1.
      y: integer labels, shape (N,), each in [0, C). Checked when concrete; under ``jit`` a row with a
        label out of range makes the loss and its gradients NaN (see the module docstring).
      labels_checked: the caller has already checked the labels (the training loop does, once per
        dataset), so the NaN masks for out-of-range labels are left out of the compiled step (on CPU they
        cost about 5% of a two-layer training step). A bad label then gives a wrong, finite loss.

    Returns:
      loss: scalar, ``-mean_i log softmax(x_i)[y_i]``. NaN scores give a NaN loss.
      grad_x: dloss/dx, shape (N, C): ``(softmax(x) - onehot(y)) / N``.
    """
    x = _float_array("x", x, ndim=2)
    n, c = x.shape
    if n == 0:
        raise ValueError("softmax_loss needs at least one example; got an empty batch (N = 0)")
    if c == 0:
        raise ValueError("softmax_loss needs at least one class; x has shape (N, 0)")
    y = _label_array(y, n)
    check_labels(y, c)

    shifted = x - jax.lax.stop_gradient(x.max(axis=1, keepdims=True))
    log_norm = jnp.log(jnp.exp(shifted).sum(axis=1, keepdims=True))
    log_probs = shifted - log_norm
    onehot = (jnp.arange(c) == y[:, None]).astype(x.dtype)
    loss = -(log_probs * onehot).sum() / n
    grad_x = (jnp.exp(log_probs) - onehot) / n
    if not labels_checked:
        valid = (y >= 0) & (y < c)
        nan = jnp.array(jnp.nan, x.dtype)
        loss = jnp.where(valid.all(), loss, nan)
        grad_x = jnp.where(valid[:, None], grad_x, nan)
    return loss, grad_x


def _softmax_loss_with_check(x: Array, y: Array) -> tuple[Array, Array]:
    x = _float_array("x", x, ndim=2)
    check_labels_traced(_label_array(y, x.shape[0]), x.shape[1])
    return softmax_loss(x, y)


_checked_softmax_loss = jax.jit(checkify.checkify(_softmax_loss_with_check))


def softmax_loss_checked(x: Any, y: Any) -> tuple[Array, Array]:
    """:func:`softmax_loss`, compiled with ``checkify``: a label outside [0, C) raises ``ValueError``
    even though the labels are traced inside the compiled code."""
    error, result = _checked_softmax_loss(as_array("x", x), as_array("y", y))
    try:
        error.throw()
    except jax.errors.JaxRuntimeError as failure:
        raise ValueError(str(failure).replace(" (`check` failed)", "")) from None
    return result


def l2_regularization(w: Any, reg: float | Array) -> tuple[Array, Array]:
    """L2 penalty ``reg / 2 * sum(w**2)`` and its gradient ``reg * w``; w of any shape."""
    w = _float_array("w", w)
    reg = jnp.asarray(reg, w.dtype)
    if reg.ndim != 0:
        raise ValueError(f"reg must be a scalar, got shape {reg.shape}")
    if not isinstance(reg, jax.core.Tracer) and float(reg) < 0:
        raise ValueError(f"reg must be >= 0 (a penalty), got {float(reg)}")
    return 0.5 * reg * jnp.sum(w * w), reg * w


# --------------------------------------------------------------------------------------------------
# The same backward passes inside JAX's autodiff
# --------------------------------------------------------------------------------------------------


@jax.custom_vjp
def fc(x: Array, w: Array, b: Array) -> Array:
    """:func:`fc_forward` whose VJP is :func:`fc_backward`."""
    return fc_forward(x, w, b)[0]


def _fc_bwd(cache: tuple[Array, Array, Array], grad_out: Array) -> tuple[Array, Array, Array]:
    return fc_backward(grad_out, cache)


fc.defvjp(fc_forward, _fc_bwd)


@jax.custom_vjp
def relu(x: Array) -> Array:
    """:func:`relu_forward` whose VJP is :func:`relu_backward`."""
    return relu_forward(x)[0]


def _relu_bwd(cache: Array, grad_out: Array) -> tuple[Array]:
    return (relu_backward(grad_out, cache),)


relu.defvjp(relu_forward, _relu_bwd)


@jax.custom_vjp
def softmax_cross_entropy(x: Array, y: Array) -> Array:
    """The loss of :func:`softmax_loss`, whose VJP uses its hand-written gradient. Labels get no gradient."""
    return softmax_loss(x, y)[0]


def _softmax_bwd(grad_x: Array, g: Array) -> tuple[Array, None]:
    return g * grad_x, None


softmax_cross_entropy.defvjp(softmax_loss, _softmax_bwd)


@jax.custom_vjp
def l2_penalty(w: Array, reg: float | Array) -> Array:
    """The loss of :func:`l2_regularization`, whose VJP uses its hand-written gradient."""
    return l2_regularization(w, reg)[0]


def _l2_fwd(w: Array, reg: float | Array) -> tuple[Array, tuple[Array, Array]]:
    loss, grad_w = l2_regularization(w, reg)
    return loss, (w, grad_w)


def _l2_bwd(residuals: tuple[Array, Array], g: Array) -> tuple[Array, Array]:
    w, grad_w = residuals
    # d/dreg of reg/2 * sum(w**2), so that a learnt or swept reg is differentiated correctly too.
    return g * grad_w, g * 0.5 * jnp.sum(w * w)


l2_penalty.defvjp(_l2_fwd, _l2_bwd)
