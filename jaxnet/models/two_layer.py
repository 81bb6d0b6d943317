"""The assignment's two-layer net, fc -> ReLU -> fc, trained with its hand-written backward pass.

Params are a dict ``{"W1": (D, H), "b1": (H,), "W2": (H, C), "b2": (C,)}``. Inputs are images of any
shape (N, d1, ...) flattened to D features (the fc layer flattens them).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxnet import layers
from jaxnet.models import Classifier, flat_dim, standardize_pixels

Params = dict[str, jax.Array]


def init(key: jax.Array, input_dim: int, hidden_dim: int, num_classes: int, weight_scale: float = 1e-2,
         dtype: Any = jnp.float32) -> Params:
    """Weights from N(0, weight_scale**2), biases zero."""
    for name, value in [("input_dim", input_dim), ("hidden_dim", hidden_dim), ("num_classes", num_classes)]:
        if int(value) < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if not weight_scale > 0:
        raise ValueError(f"weight_scale must be positive, got {weight_scale}")
    k1, k2 = jax.random.split(key)
    return {
        "W1": weight_scale * jax.random.normal(k1, (input_dim, hidden_dim), dtype),
        "b1": jnp.zeros(hidden_dim, dtype),
        "W2": weight_scale * jax.random.normal(k2, (hidden_dim, num_classes), dtype),
        "b2": jnp.zeros(num_classes, dtype),
    }


def forward(params: Params, X: jax.Array) -> tuple[jax.Array, tuple]:
    """Scores (N, C) for inputs X (N, d1, ...), and the cache for :func:`backward`."""
    hidden, fc1_cache = layers.fc_forward(X, params["W1"], params["b1"])
    activations, relu_cache = layers.relu_forward(hidden)
    scores, fc2_cache = layers.fc_forward(activations, params["W2"], params["b2"])
    return scores, (fc1_cache, relu_cache, fc2_cache)


def backward(params: Params, grad_scores: jax.Array, cache: tuple) -> Params:
    """Gradients of the params (same keys) from dL/dscores (N, C), by the layers' backward passes."""
    del params  # everything needed is in the cache; the argument keeps the assignment's signature
    fc1_cache, relu_cache, fc2_cache = cache
    grad_activations, grad_W2, grad_b2 = layers.fc_backward(grad_scores, fc2_cache)
    grad_hidden = layers.relu_backward(grad_activations, relu_cache)
    _, grad_W1, grad_b1 = layers.fc_backward(grad_hidden, fc1_cache)
    return {"W1": grad_W1, "b1": grad_b1, "W2": grad_W2, "b2": grad_b2}


def training_step(params: Params, X_batch: jax.Array, y_batch: jax.Array, reg: float, *,
                  labels_checked: bool = False) -> tuple[jax.Array, Params]:
    """Softmax loss plus L2 on W1 and W2 (not the biases), and its gradients from the backward passes.

    ``labels_checked``: see :func:`jaxnet.layers.softmax_loss`.
    """
    scores, cache = forward(params, X_batch)
    loss, grad_scores = layers.softmax_loss(scores, y_batch, labels_checked=labels_checked)
    grads = backward(params, grad_scores, cache)
    for name in ("W1", "W2"):
        reg_loss, reg_grad = layers.l2_regularization(params[name], reg)
        loss = loss + reg_loss
        grads[name] = grads[name] + reg_grad
    return loss, grads


def classifier(input_shape: tuple[int, ...], num_classes: int, hidden_dim: int = 256, weight_scale: float = 1e-2,
               reg: float = 0.0, mean: float = 0.0, std: float = 1.0) -> Classifier:
    """The two-layer net as a :class:`Classifier`: pixels scaled to [0, 1], then ``(x - mean) / std``."""
    input_dim = flat_dim(input_shape)
    return Classifier(
        name="two_layer",
        init=lambda key: init(key, input_dim, hidden_dim, num_classes, weight_scale),
        apply=lambda params, x: forward(params, x)[0],
        # The training loop checks every label once, on the host, before it trains.
        loss_and_grads=lambda params, x, y: training_step(params, x, y, reg, labels_checked=True),
        preprocess=standardize_pixels(mean, std),
        # The architecture and its input normalization; training settings (reg, weight_scale) live in TrainConfig.
        config={"input_shape": list(input_shape), "num_classes": num_classes, "hidden_dim": hidden_dim,
                "mean": mean, "std": std},
    )
