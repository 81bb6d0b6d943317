"""The assignment's optional linear classifier (softmax regression): one fc layer, ``scores = X W + b``.

Trained with the hand-written backward passes of :mod:`jaxnet.layers`, like the two-layer net. Params are a
dict ``{"W": (D, C), "b": (C,)}``. Inputs are images of any shape (N, d1, ...) flattened to D features (the fc
layer flattens them).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxnet import layers
from jaxnet.models import Classifier, flat_dim, standardize_pixels

Params = dict[str, jax.Array]


def init(key: jax.Array, input_dim: int, num_classes: int, weight_scale: float = 1e-2,
         dtype: Any = jnp.float32) -> Params:
    """W (D, C) from N(0, weight_scale**2), b (C,) zero."""
    for name, value in [("input_dim", input_dim), ("num_classes", num_classes)]:
        if int(value) < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if not weight_scale > 0:
        raise ValueError(f"weight_scale must be positive, got {weight_scale}")
    return {
        "W": weight_scale * jax.random.normal(key, (input_dim, num_classes), dtype),
        "b": jnp.zeros(num_classes, dtype),
    }


def forward(params: Params, X: jax.Array) -> tuple[jax.Array, tuple]:
    """Scores (N, C) for inputs X (N, d1, ...), and the cache for :func:`backward`."""
    return layers.fc_forward(X, params["W"], params["b"])


def backward(params: Params, grad_scores: jax.Array, cache: tuple) -> Params:
    """Gradients of the params (same keys) from dL/dscores (N, C), by the fc layer's backward pass."""
    del params  # everything needed is in the cache; the argument keeps the two-layer net's signature
    _, grad_W, grad_b = layers.fc_backward(grad_scores, cache)
    return {"W": grad_W, "b": grad_b}


def training_step(params: Params, X_batch: jax.Array, y_batch: jax.Array, reg: float, *,
                  labels_checked: bool = False) -> tuple[jax.Array, Params]:
    """Softmax loss plus L2 on W (not the bias b), and its gradients from the backward passes.

    ``labels_checked``: see :func:`jaxnet.layers.softmax_loss`.
    """
    scores, cache = forward(params, X_batch)
    loss, grad_scores = layers.softmax_loss(scores, y_batch, labels_checked=labels_checked)
    grads = backward(params, grad_scores, cache)
    reg_loss, reg_grad = layers.l2_regularization(params["W"], reg)
    grads["W"] = grads["W"] + reg_grad
    return loss + reg_loss, grads


def classifier(input_shape: tuple[int, ...], num_classes: int, weight_scale: float = 1e-2, reg: float = 0.0,
               mean: float = 0.0, std: float = 1.0) -> Classifier:
    """The linear classifier as a :class:`Classifier`: pixels scaled to [0, 1], then ``(x - mean) / std``."""
    input_dim = flat_dim(input_shape)
    return Classifier(
        name="linear",
        init=lambda key: init(key, input_dim, num_classes, weight_scale),
        apply=lambda params, x: forward(params, x)[0],
        # The training loop checks every label once, on the host, before it trains.
        loss_and_grads=lambda params, x, y: training_step(params, x, y, reg, labels_checked=True),
        preprocess=standardize_pixels(mean, std),
        # The architecture and its input normalization; training settings (reg, weight_scale) live in TrainConfig.
        config={"input_shape": list(input_shape), "num_classes": num_classes, "mean": mean, "std": std},
    )
