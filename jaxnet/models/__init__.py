"""Models, each described by a :class:`Classifier`: what the one training loop (``jaxnet.train``) needs.

- ``jaxnet.models.linear``: the optional linear classifier (softmax regression), one fc layer ``scores = X W + b``,
  gradients from the hand-written layers.
- ``jaxnet.models.two_layer``: fc -> ReLU -> fc over a params dict, gradients from the hand-written layers.
- ``jaxnet.models.cnn``: the assignment's Flax CNN for 28x28x1 images, gradients from ``jax.grad``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

Params = Any  # a pytree of arrays


@dataclasses.dataclass(frozen=True)
class Classifier:
    """A model as pure functions over a params pytree.

    Attributes:
      name: architecture name, stored in checkpoints (a checkpoint of another architecture is refused).
      init: ``init(key) -> params``.
      apply: ``apply(params, x) -> scores`` of shape (N, num_classes); ``x`` already preprocessed.
      loss_and_grads: ``loss_and_grads(params, x, y) -> (loss, grads)``, grads with the structure of params.
        The two-layer net computes them with its hand-written backward pass; Flax models with ``jax.grad``.
      preprocess: ``preprocess(images) -> x``: uint8 images (N, H, W, C) to the model's float input.
        Runs inside the jitted step, so the dataset stays uint8 on the device.
      config: what defines the architecture and its input (JSON-serializable), saved with checkpoints; a
        checkpoint whose config differs is refused on resume. Training settings do not belong here.
    """

    name: str
    init: Callable[[jax.Array], Params]
    apply: Callable[[Params, jax.Array], jax.Array]
    loss_and_grads: Callable[[Params, jax.Array, jax.Array], tuple[jax.Array, Params]]
    preprocess: Callable[[jax.Array], jax.Array]
    config: dict[str, Any] = dataclasses.field(default_factory=dict)


def flat_dim(input_shape: tuple[int, ...]) -> int:
    """Number of features of one input of shape ``input_shape`` once flattened (what an fc layer sees)."""
    size = 1
    for d in input_shape:
        size *= int(d)
    return size


def standardize_pixels(mean: float = 0.0, std: float = 1.0) -> Callable[[jax.Array], jax.Array]:
    """``preprocess(images)`` of the fc models: uint8 pixels scaled to [0, 1], then ``(x - mean) / std``."""

    def preprocess(images: jax.Array) -> jax.Array:
        return (images.astype(jnp.float32) / 255.0 - mean) / std

    return preprocess
