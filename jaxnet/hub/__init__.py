"""A small hub of pretrained ImageNet classifiers in Flax, converted from PyTorch weights without torch.

- ``load(name)`` -> :class:`Pretrained`: the Flax module, its variables, its preprocessing, its class names.
- ``list_models()``: the registered names (``jaxnet.hub.registry`` holds each model's weight source,
  converter and preprocessing).
- ``jaxnet.hub.classify``: batched, jitted inference on image files or arrays.

Converted weights are cached under ``jaxnet.cache.cache_dir("hub")`` (``$JAXNET_CACHE_DIR/hub``, or
``$XDG_CACHE_HOME/jaxnet/hub``, or ``~/.cache/jaxnet/hub``).
"""

from jaxnet.hub.errors import HubError, UnsafePickleError
from jaxnet.hub.pretrained import Pretrained, load
from jaxnet.hub.registry import list_models
from jaxnet.images import ImageReadError

__all__ = ["HubError", "ImageReadError", "Pretrained", "UnsafePickleError", "list_models", "load"]
