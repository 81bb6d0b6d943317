"""SqueezeNet 1.1 in Flax Linen (NHWC), named so that torchvision's state_dict converts directly.

torchvision's ``squeezenet1_1``: ``features`` (indices 0, 3, 4, 6, 7, 9-12 hold weights) and ``classifier``
(index 1). Input (N, 224, 224, 3) float32 normalized with the ImageNet mean and std; output (N, 1000).
Max pooling is 3x3 stride 2 with PyTorch's ``ceil_mode=True``: a last, partial window counts.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp


def max_pool_ceil(x: jax.Array, window: int = 3, stride: int = 2) -> jax.Array:
    """Max pooling over H and W of (N, H, W, C) with PyTorch's ``ceil_mode=True`` (no padding)."""
    pads = []
    for size in x.shape[1:3]:
        out = math.ceil((size - window) / stride) + 1
        if (out - 1) * stride >= size:  # PyTorch: the last window must start inside the input
            out -= 1
        pads.append((0, max(0, (out - 1) * stride + window - size)))
    return nn.max_pool(x, (window, window), strides=(stride, stride), padding=pads)


class Fire(nn.Module):
    """1x1 squeeze conv + ReLU, then 1x1 and 3x3 expand convs + ReLU, concatenated on channels."""

    squeeze_features: int
    expand_features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.relu(nn.Conv(self.squeeze_features, (1, 1), name="squeeze")(x))
        left = nn.relu(nn.Conv(self.expand_features, (1, 1), name="expand1x1")(x))
        right = nn.relu(nn.Conv(self.expand_features, (3, 3), padding=1, name="expand3x3")(x))
        return jnp.concatenate([left, right], axis=-1)


class SqueezeNet11(nn.Module):
    """SqueezeNet 1.1: (N, H, W, 3) normalized images -> (N, num_classes) logits (ReLU'd, as in torchvision)."""

    num_classes: int = 1000
    dropout: float = 0.5

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = nn.relu(nn.Conv(64, (3, 3), strides=2, padding="VALID", name="features_0")(x))
        x = max_pool_ceil(x)
        x = Fire(16, 64, name="features_3")(x)
        x = Fire(16, 64, name="features_4")(x)
        x = max_pool_ceil(x)
        x = Fire(32, 128, name="features_6")(x)
        x = Fire(32, 128, name="features_7")(x)
        x = max_pool_ceil(x)
        x = Fire(48, 192, name="features_9")(x)
        x = Fire(48, 192, name="features_10")(x)
        x = Fire(64, 256, name="features_11")(x)
        x = Fire(64, 256, name="features_12")(x)
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        x = nn.relu(nn.Conv(self.num_classes, (1, 1), name="classifier_1")(x))
        return jnp.mean(x, axis=(1, 2))
