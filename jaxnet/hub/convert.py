"""PyTorch state_dicts to Flax variables, for modules named after their PyTorch counterparts.

A PyTorch name ``_blocks.3._expand_conv.weight`` or ``features.3.squeeze.weight`` belongs to the module
path ``_blocks.3._expand_conv``; its Flax module is found by dropping leading underscores and joining each
index to the name before it: ``blocks_3/expand_conv``, ``features_3/squeeze``. The Flax definitions in
this package name their submodules that way, so one converter serves them all. What a module is follows
from its tensors:

- BatchNorm (has ``running_mean``): weight, bias -> ``params`` scale, bias; running_mean, running_var ->
  ``batch_stats`` mean, var; num_batches_tracked is dropped;
- convolution (4-D weight, OIHW): kernel HWIO (transpose 2, 3, 1, 0); a depthwise (C, 1, k, k) becomes
  (k, k, 1, C), what ``nn.Conv(feature_group_count=C)`` holds;
- dense (2-D weight, (out, in)): kernel (in, out).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from jaxnet.hub.errors import HubError

Variables = dict[str, Any]  # {"params": {...}, "batch_stats": {...}}, nested dicts of arrays


def flax_path(torch_module: str) -> tuple[str, ...]:
    """``"_blocks.3._expand_conv"`` -> ``("blocks_3", "expand_conv")``."""
    path: list[str] = []
    for part in torch_module.split("."):
        if part.isdigit() and path:
            path[-1] = f"{path[-1]}_{part}"
        else:
            path.append(part.lstrip("_"))
    return tuple(path)


def convert_state_dict(state_dict: dict[str, np.ndarray], source: str = "state_dict") -> Variables:
    """Converts a PyTorch state_dict to Flax ``{"params": ..., "batch_stats": ...}`` (float32 arrays)."""
    modules: dict[str, dict[str, np.ndarray]] = {}
    for name, array in state_dict.items():
        module, _, leaf = name.rpartition(".")
        modules.setdefault(module, {})[leaf] = array
    variables: Variables = {"params": {}}
    for module, tensors in modules.items():
        path = flax_path(module)
        if "running_mean" in tensors:
            _put(variables, "params", path, scale=tensors.get("weight"), bias=tensors.get("bias"))
            _put(variables, "batch_stats", path, mean=tensors["running_mean"], var=tensors.get("running_var"))
            continue
        weight = tensors.get("weight")
        if weight is None or weight.ndim not in (2, 4):
            raise HubError(
                f"{source}: cannot tell what module {module!r} is (tensors {sorted(tensors)}); "
                f"expected a convolution, a dense layer or a BatchNorm"
            )
        kernel = weight.transpose(2, 3, 1, 0) if weight.ndim == 4 else weight.T
        _put(variables, "params", path, kernel=kernel, bias=tensors.get("bias"))
    return variables


def _put(variables: Variables, collection: str, path: tuple[str, ...], **leaves: np.ndarray | None) -> None:
    node = variables.setdefault(collection, {})
    for part in path:
        node = node.setdefault(part, {})
    for name, value in leaves.items():
        if value is not None:
            node[name] = np.ascontiguousarray(value, dtype=np.float32)


def check_matches(variables: Variables, expected: Any, source: str) -> None:
    """Raises :class:`HubError` unless ``variables`` has the tree structure and shapes of ``expected``.

    ``expected`` is what ``jax.eval_shape(module.init, ...)`` returns for the model.
    """
    want = {jax.tree_util.keystr(k): tuple(v.shape) for k, v in jax.tree_util.tree_leaves_with_path(expected)}
    got = {jax.tree_util.keystr(k): tuple(np.shape(v)) for k, v in jax.tree_util.tree_leaves_with_path(variables)}
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    wrong = sorted(k for k in set(want) & set(got) if want[k] != got[k])
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (first {missing[0]})")
        if extra:
            parts.append(f"{len(extra)} unexpected (first {extra[0]})")
        if wrong:
            first = wrong[0]
            parts.append(f"{len(wrong)} of another shape (first {first}: {got[first]}, model wants {want[first]})")
        raise HubError(f"{source}: these weights do not fit the model: {'; '.join(parts)}. Are they for another model?")
