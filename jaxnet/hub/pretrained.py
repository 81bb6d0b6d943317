"""``load(name)``: a registered model with its converted weights, cached on disk."""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnet.cache import cache_dir
from jaxnet.hub import store
from jaxnet.hub.convert import Variables, check_matches
from jaxnet.hub.errors import HubError
from jaxnet.hub.images import Preprocessing
from jaxnet.hub.pth import read_state_dict
from jaxnet.hub.registry import ModelSpec, class_names, get_spec


@dataclasses.dataclass(frozen=True, eq=False)
class Pretrained:
    """A ready model: ``module.apply(variables, x)`` gives logits (N, len(class_names)) for
    ``x`` = images prepared by ``preprocessing`` and normalized (see :func:`jaxnet.hub.classify.logits`)."""

    name: str
    module: nn.Module
    variables: Variables
    preprocessing: Preprocessing
    class_names: tuple[str, ...]


def load(name: str, weights: str | os.PathLike | None = None) -> Pretrained:
    """Returns the registered model ``name`` with its pretrained weights, on the default device.

    The first call fetches the original weights (see the registry), converts them and caches the result in
    ``jaxnet.cache.cache_dir("hub")``; later calls read the cache. A cache file that is corrupt or does not fit
    the model is rebuilt, with a warning.

    Args:
      name: one of :func:`jaxnet.hub.list_models`.
      weights: a PyTorch state_dict file to use instead of the registered source (not checksummed, not cached),
        e.g. a copy of the published file on a machine without network.

    Raises:
      HubError: an unknown name, weights that cannot be had or read (the message says what to do), or a
        weight file that does not fit the model.
    """
    spec = get_spec(name)
    module = spec.build()
    size = spec.preprocessing.size
    expected = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, size, size, 3), jnp.float32))
    if weights is not None:
        variables = _convert(spec, Path(weights), expected)
    else:
        variables = _cached(spec, expected)
    return Pretrained(
        name=spec.name,
        module=module,
        variables=jax.device_put(variables),
        preprocessing=spec.preprocessing,
        class_names=class_names(spec.classes),
    )


def cache_path(spec: ModelSpec) -> Path:
    """Where the converted weights of ``spec`` are cached (named after the model and its weights' sha256)."""
    return cache_dir("hub") / f"{spec.name}-{spec.source.tag}.msgpack"


def _cached(spec: ModelSpec, expected) -> Variables:
    path = cache_path(spec)
    if path.is_file():
        try:
            variables = store.read(path)
            check_matches(variables, expected, str(path))
            return variables
        except HubError as error:
            warnings.warn(f"rebuilding the cached weights of {spec.name}: {error}", stacklevel=3)
    variables = _convert(spec, spec.source.fetch(), expected)
    try:
        store.write(path, variables)
    except OSError as error:  # an unwritable cache costs a conversion next time, nothing more
        warnings.warn(f"could not cache the converted weights of {spec.name} in {path}: {error}", stacklevel=3)
    return variables


def _convert(spec: ModelSpec, path: Path, expected) -> Variables:
    variables = spec.convert(read_state_dict(path), str(path))
    check_matches(variables, expected, str(path))
    return variables
