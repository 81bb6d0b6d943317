"""Checkpoints: a train state with its metadata in one msgpack file, written atomically.

The file holds ``{"meta": JSON string, "state": state dict of the pytree}``. ``meta`` names the model
and its config, so that a checkpoint of another architecture is refused with a clear error instead of
failing deep inside Flax.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from jaxnet.cache import atomic_write_bytes

CHECKPOINT_NAME = "checkpoint.msgpack"


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message says why."""


def checkpoint_path(run_dir_or_file: str | Path) -> Path:
    """The checkpoint file of a run folder, or the file itself."""
    path = Path(run_dir_or_file)
    return path / CHECKPOINT_NAME if path.is_dir() else path


def save(path: str | Path, state: Any, meta: dict[str, Any]) -> None:
    """Writes ``state`` (any pytree) and ``meta`` (JSON-serializable) to ``path`` atomically."""
    state = jax.device_get(state)
    payload = {"meta": json.dumps(meta), "state": serialization.to_state_dict(state)}
    atomic_write_bytes(path, serialization.msgpack_serialize(payload))


def read_meta(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Returns ``(meta, raw state dict)`` of a checkpoint file."""
    path = checkpoint_path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}: give a run folder written by `jaxnet train` or its {CHECKPOINT_NAME}")
    try:
        payload = serialization.msgpack_restore(path.read_bytes())
        meta = json.loads(payload["meta"])
        return meta, payload["state"]
    except Exception as error:  # msgpack, JSON or key errors: all mean the file is not ours or is damaged
        raise CheckpointError(f"{path} is not a readable jaxnet checkpoint ({type(error).__name__}: {error})") from None


def restore(path: str | Path, template: Any, expect_model: str | None = None,
            expect_config: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
    """Restores a checkpoint into the structure of ``template``; returns ``(state, meta)``.

    Raises :class:`CheckpointError` when the checkpoint is of another model, another model config,
    or its arrays do not have the template's shapes.
    """
    path = checkpoint_path(path)
    meta, raw = read_meta(path)
    if expect_model is not None and meta.get("model") != expect_model:
        raise CheckpointError(f"{path} holds a {meta.get('model')!r} model, not {expect_model!r}")
    if expect_config is not None:
        saved = meta.get("model_config", {})
        differ = {k: (saved.get(k), v) for k, v in expect_config.items() if saved.get(k) != v}
        if differ:
            details = ", ".join(f"{k}: checkpoint {a!r} vs requested {b!r}" for k, (a, b) in differ.items())
            raise CheckpointError(f"{path} was trained with another architecture or input normalization ({details}); "
                                  "resume with the run's own settings (the data split too: --train-size, --val-size, "
                                  "--seed)")
    try:
        state = serialization.from_state_dict(template, raw)
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{path} does not match the model's parameter structure: {error}") from None
    want = jax.tree.map(np.shape, template)
    got = jax.tree.map(np.shape, state)
    if want != got:
        raise CheckpointError(f"{path} has parameters of other shapes than the model: {got} vs {want}")
    return state, meta
