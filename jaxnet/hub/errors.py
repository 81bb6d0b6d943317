"""The hub's errors: each message says what is wrong, with which file, and what to do.

Image files that cannot be read raise :class:`jaxnet.images.ImageReadError`.
"""

from __future__ import annotations


class HubError(Exception):
    """Weights that cannot be had, read or matched to their model; the message says what to do."""


class UnsafePickleError(HubError):
    """A weight file whose pickle asks for a Python object outside the few a state_dict needs."""
