"""Batched, jitted inference with a :class:`~jaxnet.hub.Pretrained` model.

Images go to the device as uint8 (N, size, size, 3), already cropped and resized on the host
(:meth:`Preprocessing.prepare`); the normalization runs inside the jitted function. Batches are padded to
one size, so a call compiles one program, whatever the number of images.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxnet.hub.convert import Variables
from jaxnet.hub.images import read_rgb
from jaxnet.hub.pretrained import Pretrained
from jaxnet.images import ImageReadError


@dataclasses.dataclass(frozen=True)
class Prediction:
    """One class of a top-k list."""

    index: int
    name: str
    probability: float


@dataclasses.dataclass(frozen=True)
class Classification:
    """The top-k classes of one image file, most probable first, or the error that kept it from being read."""

    path: str
    top: tuple[Prediction, ...] = ()
    error: str | None = None

    def to_json(self) -> dict:
        """``{"path", "predictions": [{"index", "name", "probability"}]}`` or ``{"path", "error"}``."""
        if self.error is not None:
            return {"path": self.path, "error": self.error}
        return {"path": self.path, "predictions": [dataclasses.asdict(p) for p in self.top]}


@partial(jax.jit, static_argnums=(0, 1, 2))
def _logits(module: nn.Module, mean: tuple, std: tuple, variables: Variables, images: jax.Array) -> jax.Array:
    x = (images.astype(jnp.float32) - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)
    return module.apply(variables, x)


def logits(model: Pretrained, images) -> jax.Array:
    """Logits (N, classes) of prepared uint8 images (N, size, size, 3); compiled once per N."""
    images = jnp.asarray(images)
    size = model.preprocessing.size
    if images.dtype != jnp.uint8 or images.ndim != 4 or images.shape[1:] != (size, size, 3):
        raise ValueError(
            f"images must be uint8 (N, {size}, {size}, 3) as Preprocessing.prepare makes them, "
            f"got {images.dtype} {images.shape}"
        )
    pre = model.preprocessing
    return _logits(model.module, pre.mean, pre.std, model.variables, images)


def probabilities(model: Pretrained, images: Sequence[np.ndarray] | np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Class probabilities (N, classes) of prepared uint8 images, in batches of ``min(batch_size, N)``.

    The last batch is padded with blank images to the same size, so there is one compiled shape; the
    softmax runs on the host, in float64.
    """
    images = np.asarray(images, dtype=np.uint8)
    n = len(images)
    if n == 0:
        return np.zeros((0, len(model.class_names)), np.float32)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    batch = min(batch_size, n)
    out = []
    for start in range(0, n, batch):
        chunk = images[start : start + batch]
        if len(chunk) < batch:
            chunk = np.concatenate([chunk, np.zeros((batch - len(chunk), *chunk.shape[1:]), np.uint8)])
        out.append(np.asarray(logits(model, chunk), np.float64))
    scores = np.concatenate(out)[:n]
    probs = np.exp(scores - scores.max(axis=1, keepdims=True))
    return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)


def top_k(model: Pretrained, probs: np.ndarray, k: int = 5) -> tuple[Prediction, ...]:
    """The ``k`` most probable classes of one probability vector, most probable first."""
    order = np.argsort(-probs, kind="stable")[:k]
    return tuple(Prediction(int(i), model.class_names[i], float(probs[i])) for i in order)


def classify_files(
    model: Pretrained, paths: Sequence[str | os.PathLike], top: int = 5, batch_size: int = 32
) -> list[Classification]:
    """Classifies image files; one :class:`Classification` per path, in order.

    A file that cannot be read gets its ``error`` (naming the file); the other files are still classified.
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    prepared: dict[int, np.ndarray] = {}
    errors: dict[int, str] = {}
    for i, path in enumerate(paths):
        try:
            prepared[i] = model.preprocessing.prepare(read_rgb(path))
        except ImageReadError as error:
            errors[i] = str(error)
    probs = probabilities(model, [prepared[i] for i in sorted(prepared)], batch_size)
    by_index = dict(zip(sorted(prepared), probs))
    return [
        Classification(str(path), error=errors[i]) if i in errors
        else Classification(str(path), top=top_k(model, by_index[i], top))
        for i, path in enumerate(paths)
    ]


def format_results(results: Sequence[Classification]) -> str:
    """A plain-text listing: each path, then its classes with index, name and probability (errors skipped)."""
    lines = []
    for result in results:
        if result.error is not None:
            continue
        lines.append(result.path)
        lines += [f"  {p.probability:6.1%}  {p.index:4d}  {p.name}" for p in result.top]
    return "\n".join(lines)
