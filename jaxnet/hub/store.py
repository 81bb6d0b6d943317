"""The on-disk cache of converted weights: msgpack (Flax's serialization) behind a magic line and a sha256.

A file is ``MAGIC + sha256(payload) + payload``; :func:`read` refuses any file whose bytes do not match
their digest, so a truncated or altered file is detected rather than half-loaded.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from jaxnet.cache import atomic_write_bytes
from jaxnet.hub.errors import HubError

MAGIC = b"jaxnet-hub-weights 1\n"


def write(path: str | os.PathLike, variables: Any) -> None:
    """Writes a pytree of arrays atomically (readers see the old file or the whole new one)."""
    payload = serialization.msgpack_serialize(jax.tree.map(np.asarray, variables))
    atomic_write_bytes(path, MAGIC + hashlib.sha256(payload).digest() + payload)


def read(path: str | os.PathLike) -> Any:
    """Reads what :func:`write` wrote (nested dicts of NumPy arrays); :class:`HubError` if it is corrupt."""
    data = Path(path).read_bytes()
    head = len(MAGIC) + 32
    if not data.startswith(MAGIC) or len(data) < head:
        raise HubError(f"{path}: not a jaxnet weight cache file")
    payload = data[head:]
    if hashlib.sha256(payload).digest() != data[len(MAGIC) : head]:
        raise HubError(f"{path}: its bytes do not match their checksum (truncated or altered)")
    try:
        return serialization.msgpack_restore(payload)
    except Exception as error:  # msgpack raises several types for malformed data
        raise HubError(f"{path}: cannot decode ({type(error).__name__}: {error})") from None
