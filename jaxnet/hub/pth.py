"""Reads PyTorch ``.pth`` state_dicts with pickle and NumPy alone: no torch, and no code run from the file.

A ``.pth`` file is a pickle, and a pickle can call any Python function it names. The unpickler here
resolves only the names a state_dict of tensors needs (``collections.OrderedDict``,
``torch._utils._rebuild_tensor_v2`` and its two siblings, ``torch.<Type>Storage``) to inert stand-ins,
and refuses every other name with :class:`~jaxnet.hub.errors.UnsafePickleError` before anything runs.

Both of PyTorch's formats are read:

- zip (PyTorch >= 1.6): an archive holding ``<name>/data.pkl`` and each storage's raw bytes in
  ``<name>/data/<key>``;
- legacy (before 1.6): a sequence of pickles (magic number, protocol version 1001, system info, the
  state_dict, the list of storage keys), then for each storage an 8-byte little-endian element count and
  its raw bytes.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import pickle
import zipfile
from pathlib import Path
from typing import IO, Any

import ml_dtypes
import numpy as np

from jaxnet.hub.errors import HubError, UnsafePickleError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype(np.float32),
    "DoubleStorage": np.dtype(np.float64),
    "HalfStorage": np.dtype(np.float16),
    "BFloat16Storage": np.dtype(ml_dtypes.bfloat16),
    "LongStorage": np.dtype(np.int64),
    "IntStorage": np.dtype(np.int32),
    "ShortStorage": np.dtype(np.int16),
    "CharStorage": np.dtype(np.int8),
    "ByteStorage": np.dtype(np.uint8),
    "BoolStorage": np.dtype(np.bool_),
}


@dataclasses.dataclass
class _Storage:
    """A storage named by the pickle; its bytes are attached once read (after the pickle, in legacy files)."""

    key: str
    dtype: np.dtype
    numel: int
    data: np.ndarray | None = None


@dataclasses.dataclass
class _View:
    """A legacy storage view: ``numel`` elements of ``root`` from element ``offset``."""

    root: _Storage
    offset: int
    numel: int


@dataclasses.dataclass
class _TensorRef:
    """What ``_rebuild_tensor_v2`` stands for: a strided window on a storage, made an array at the end."""

    storage: _Storage | _View
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored) -> _TensorRef:
    # The stand-in for torch._utils._rebuild_tensor(_v2); requires_grad, hooks and metadata are dropped.
    if not isinstance(storage, (_Storage, _View)):
        raise UnsafePickleError(f"a tensor is built from {type(storage).__name__}, not from a storage")
    return _TensorRef(storage, int(storage_offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


def _rebuild_parameter(data, *_ignored):
    # torch._utils._rebuild_parameter(data, requires_grad, backward_hooks): an nn.Parameter is its data.
    return data


_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): dtype for name, dtype in STORAGE_DTYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the names in ``_ALLOWED``; persistent ids become :class:`_Storage` objects."""

    def __init__(self, file: IO[bytes], source: str, storages: dict[str, _Storage] | None = None):
        super().__init__(file, encoding="utf-8")
        self.source = source
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self.source}: refused to load: its pickle names the Python object {module}.{name}, which a "
                f"state_dict of tensors never needs and which could run code. Only load weight files from "
                f"sources you trust; this reader accepts plain state_dicts only"
            ) from None

    def persistent_load(self, pid: Any) -> _Storage | _View:
        if self.storages is None:
            raise UnsafePickleError(f"{self.source}: a persistent id {pid!r:.80} where none may be")
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise UnsafePickleError(f"{self.source}: unexpected persistent id {pid!r:.80}; expected a torch storage")
        dtype, key, numel = pid[1], str(pid[2]), int(pid[4])
        if not isinstance(dtype, np.dtype):
            raise UnsafePickleError(f"{self.source}: a storage of unknown type {dtype!r:.80}")
        storage = self.storages.setdefault(key, _Storage(key, dtype, numel))
        view = pid[5] if len(pid) == 6 else None
        if view is not None:  # legacy: (view_key, offset, view_size)
            return _View(storage, int(view[1]), int(view[2]))
        return storage


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a PyTorch state_dict file (zip or legacy format) into NumPy arrays, without torch.

    Returns:
      ``{name: array}`` in the file's order; each array has the tensor's shape and dtype and owns its
      memory (C-contiguous).

    Raises:
      UnsafePickleError: the pickle names any object besides those a state_dict needs.
      HubError: a missing, truncated or malformed file, or one that holds something else than
        ``{name: tensor}``.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise HubError(f"{source}: no such weight file")
    storages: dict[str, _Storage] = {}
    try:
        if zipfile.is_zipfile(path):
            state = _read_zip(path, source, storages)
        else:
            state = _read_legacy(path, source, storages)
        return _materialize(state, source)
    except HubError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError,
            AttributeError, zipfile.BadZipFile, OSError) as error:
        raise HubError(
            f"{source}: not a readable PyTorch weight file ({type(error).__name__}: {error}); "
            f"it may be truncated or corrupt: download it again"
        ) from None


def _read_zip(path: Path, source: str, storages: dict[str, _Storage]) -> Any:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise HubError(f"{source}: a zip file but not a PyTorch one (expected one data.pkl, found {len(pickles)})")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = archive.read(prefix + "byteorder").decode() if prefix + "byteorder" in names else "little"
        with archive.open(pickles[0]) as f:
            state = _RestrictedUnpickler(f, source, storages).load()
        for storage in storages.values():
            raw = archive.read(f"{prefix}data/{storage.key}")
            storage.data = _from_bytes(raw, storage, byteorder, source)
    return state


def _read_legacy(path: Path, source: str, storages: dict[str, _Storage]) -> Any:
    with open(path, "rb") as f:
        if _RestrictedUnpickler(f, source).load() != LEGACY_MAGIC:
            raise HubError(f"{source}: not a PyTorch weight file (neither a zip archive nor the legacy format)")
        protocol = _RestrictedUnpickler(f, source).load()
        if protocol != LEGACY_PROTOCOL:
            raise HubError(f"{source}: legacy PyTorch format of protocol {protocol!r}; only {LEGACY_PROTOCOL} is read")
        info = _RestrictedUnpickler(f, source).load()
        byteorder = "little" if not isinstance(info, dict) or info.get("little_endian", True) else "big"
        state = _RestrictedUnpickler(f, source, storages).load()
        keys = _RestrictedUnpickler(f, source).load()
        if not isinstance(keys, list) or set(map(str, keys)) != set(storages):
            raise HubError(f"{source}: the list of storages does not match the tensors; the file is corrupt")
        for key in keys:
            storage = storages[str(key)]
            count = int.from_bytes(_read_exactly(f, 8, source), "little")
            if count != storage.numel:
                raise HubError(f"{source}: storage {key} holds {count} elements, its tensors say {storage.numel}")
            raw = _read_exactly(f, count * storage.dtype.itemsize, source)
            storage.data = _from_bytes(raw, storage, byteorder, source)
    return state


def _read_exactly(f: IO[bytes], n: int, source: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise HubError(f"{source}: the file ends early (truncated): download it again")
    return data


def _from_bytes(raw: bytes, storage: _Storage, byteorder: str, source: str) -> np.ndarray:
    if len(raw) != storage.numel * storage.dtype.itemsize:
        raise HubError(
            f"{source}: storage {storage.key} has {len(raw)} bytes, expected "
            f"{storage.numel} x {storage.dtype.itemsize}; the file is corrupt"
        )
    dtype = storage.dtype.newbyteorder("<" if byteorder == "little" else ">")
    return np.frombuffer(raw, dtype=dtype).astype(storage.dtype.newbyteorder("="), copy=False)


def _materialize(state: Any, source: str) -> dict[str, np.ndarray]:
    if not isinstance(state, dict):
        raise HubError(f"{source}: holds a {type(state).__name__}, not a state_dict ({{name: tensor}})")
    arrays = {}
    for name, value in state.items():
        if not isinstance(name, str) or not isinstance(value, _TensorRef):
            raise HubError(f"{source}: entry {name!r:.80} is not a tensor; expected a plain state_dict")
        arrays[name] = _tensor(value, source, name)
    return arrays


def _tensor(ref: _TensorRef, source: str, name: str) -> np.ndarray:
    storage, offset = ref.storage, ref.offset
    if isinstance(storage, _View):
        storage, offset = storage.root, offset + storage.offset
    data = storage.data
    if data is None:
        raise HubError(f"{source}: the bytes of tensor {name} are missing; the file is corrupt")
    size, stride = ref.size, ref.stride
    if len(size) != len(stride) or offset < 0 or any(s < 0 for s in size + stride):
        raise HubError(f"{source}: tensor {name} has an invalid shape {size} or stride {stride}")
    last = offset + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else offset - 1
    if last >= data.size:
        raise HubError(f"{source}: tensor {name} reaches past the end of its storage; the file is corrupt")
    window = np.lib.stride_tricks.as_strided(
        data[offset:], shape=size, strides=tuple(s * data.itemsize for s in stride), writeable=False
    )
    return np.array(window, order="C")
