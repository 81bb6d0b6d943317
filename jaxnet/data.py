"""The one data loader: Fashion-MNIST, CIFAR-10 and tensorflow-datasets image sets as NumPy arrays.

``load_dataset(name)`` returns a :class:`Dataset`: uint8 images (N, H, W, C) and int32 labels (N,) for
train, validation and test. Validation images are held out of the official train split with a fixed
seed (stratified by class); the official test split is kept whole.

Where the data comes from:

- ``"fashion_mnist"``: the four original IDX files (gzip or not) in ``data_dir``, else
  ``$JAXNET_FASHION_MNIST_DIR``, else ``/usr/share/datasets/fashion-mnist`` (Debian's
  ``dataset-fashion-mnist``). Parsed with NumPy; no network.
- ``"cifar10"``: the pickled batches of ``cifar-10-python.tar.gz`` (a folder ``cifar-10-batches-py``) in
  ``data_dir``, else ``$JAXNET_CIFAR10_DIR`` (either may name that folder or the one holding it);
  without either, an earlier download in the jaxnet cache or ``~/.keras/datasets``; else, when online,
  the archive is downloaded from the Toronto site (163 MB, MD5-checked) into the jaxnet cache.
- any other name (or ``"tfds:NAME"`` to force it): tensorflow-datasets' ``array_record`` data source,
  read without TensorFlow; ``data_dir`` is tfds's data folder. Preparing a dataset that is not on disk
  needs the network, and for most image sets TensorFlow too.

Without network a download fails within seconds with a :class:`DataError` saying how to get the data,
instead of tfds's minutes of retries. Decoded arrays are cached (uncompressed ``.npz``) under
``jaxnet.cache.cache_dir("datasets")``, keyed by the source files' path, size and mtime, so a second
load takes a fraction of a second; a corrupt cache file is rebuilt.
"""

from __future__ import annotations

import dataclasses
import difflib
import gzip
import hashlib
import io
import json
import operator
import os
import pickle
import re
import shutil
import socket
import sys
import tarfile
import tempfile
import threading
import urllib.parse
import urllib.request
import zlib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from jaxnet import cache

__all__ = ["DataError", "SplitError", "Dataset", "load_dataset", "BatchSampler", "FASHION_MNIST_CLASSES", "CIFAR10_CLASSES"]


class DataError(Exception):
    """A dataset that cannot be loaded; the message says why and what to do."""


class SplitError(DataError, ValueError):
    """A ``val_size``, ``train_size`` or ``seed`` that is not a non-negative integer or does not fit the data.

    Both a :class:`DataError` (the CLI reports it in one line) and a ``ValueError`` (a bad argument).
    """


FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

FASHION_MNIST_DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
TFDS_PROBE_HOST = "storage.googleapis.com"  # tfds downloads prepared data and many sources from here
NETWORK_TIMEOUT_S = 3.0

_DEFAULT_VAL_SIZE = {"fashion_mnist": 10_000, "cifar10": 1_000}
_CACHE_FORMAT = 1  # bump when the cached arrays change meaning


# --------------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Images uint8 (N, H, W, C) and labels int32 (N,) in [0, num_classes) for train, val and test."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_names", tuple(self.class_names))
        shape = None
        for split in ("train", "val", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4:
                raise ValueError(f"x_{split} must be a uint8 array (N, H, W, C), got {_describe(x)}")
            if not isinstance(y, np.ndarray) or y.dtype != np.int32 or y.shape != (x.shape[0],):
                raise ValueError(f"y_{split} must be an int32 array ({x.shape[0]},) to match x_{split}, got {_describe(y)}")
            if shape is not None and x.shape[1:] != shape:
                raise ValueError(f"x_{split} has images of shape {x.shape[1:]} but x_train has {shape}")
            shape = x.shape[1:]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C)."""
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, train={len(self.y_train)}, val={len(self.y_val)}, "
            f"test={len(self.y_test)}, image_shape={self.image_shape}, num_classes={self.num_classes})"
        )


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {value.shape}"
    return type(value).__name__


# --------------------------------------------------------------------------------------------------
# load_dataset
# --------------------------------------------------------------------------------------------------


def load_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    val_size: int | None = None,
    train_size: int | None = None,
    seed: int = 0,
) -> Dataset:
    """Loads a dataset and splits validation images off its official train split.

    Args:
      name: ``"fashion_mnist"``, ``"cifar10"``, or any tensorflow-datasets image classification name
        (``"tfds:NAME"`` sends even these two to tfds).
      data_dir: where the source files are (see the module docstring); overrides the environment.
      val_size: images held out of the train split for validation, stratified by class and chosen with
        ``seed``. Default: 10_000 for fashion_mnist (50k/10k/10k), 1_000 for cifar10 (49k/1k/10k), 10%
        of the train split otherwise. 0 gives empty validation arrays.
      train_size: keep only the first ``train_size`` images of the shuffled remaining train split
        (e.g. 1000 for an overfitting check). Default: all of them.
      seed: seed of the split; the same seed gives the same split.

    Returns:
      A :class:`Dataset`; ``x_train`` is in shuffled order, ``x_val`` too, ``x_test`` in the source's order.

    Raises:
      DataError: the data cannot be found, read or downloaded; the message says what to do.
      SplitError: (a DataError and a ValueError) ``val_size``, ``train_size`` or ``seed`` is negative, not
        an integer, or too large for the dataset.
    """
    if not isinstance(name, str) or not name.strip():
        raise DataError(f"name must be a dataset name such as 'fashion_mnist' or 'cifar10', got {name!r}")
    seed = _non_negative_int("seed", seed)
    val_size = None if val_size is None else _non_negative_int("val_size", val_size)
    train_size = None if train_size is None else _non_negative_int("train_size", train_size)
    key = name.strip()
    canonical = key.lower().replace("-", "_")
    if canonical == "fashion_mnist":
        source = _load_fashion_mnist(data_dir)
    elif canonical in ("cifar10", "cifar_10"):
        source = _load_cifar10(data_dir)
    else:
        source = _load_tfds(key.removeprefix("tfds:"), data_dir)
    return _split(source, val_size, train_size, seed)


def _non_negative_int(name: str, value: Any, error: type[Exception] = SplitError) -> int:
    if isinstance(value, bool):
        raise error(f"{name} must be a non-negative integer, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise error(f"{name} must be a non-negative integer, got {value!r}") from None
    if value < 0:
        raise error(f"{name} must be a non-negative integer, got {value}")
    return value


@dataclasses.dataclass(frozen=True)
class _Source:
    """The official splits as decoded from the source files (what the cache holds)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]


def _split(source: _Source, val_size: int | None, train_size: int | None, seed: int) -> Dataset:
    n = len(source.y_train)
    if val_size is None:
        val_size = _DEFAULT_VAL_SIZE.get(source.name, n // 10)
        if val_size >= n:
            raise SplitError(
                f"the train split of {source.name} has only {n} images, fewer than the default "
                f"val_size={val_size}; pass a smaller val_size (at most {max(n - 1, 0)})"
            )
    if val_size > n - 1:
        raise SplitError(
            f"val_size={val_size} is too large: the train split of {source.name} has {n} images and at "
            f"least one must stay for training; use val_size <= {max(n - 1, 0)}"
        )
    left = n - val_size
    if train_size is not None and not 1 <= train_size <= left:
        raise SplitError(
            f"train_size={train_size} is out of range: {source.name} has {left} train images left after "
            f"holding out val_size={val_size}; use 1 <= train_size <= {left}"
        )
    train_idx, val_idx = _split_indices(source.y_train, len(source.class_names), val_size, seed)
    if train_size is not None:
        train_idx = train_idx[:train_size]
    return Dataset(
        name=source.name,
        x_train=source.x_train[train_idx],
        y_train=source.y_train[train_idx],
        x_val=source.x_train[val_idx],
        y_val=source.y_train[val_idx],
        x_test=np.array(source.x_test),
        y_test=np.array(source.y_test),
        class_names=source.class_names,
    )


def _split_indices(labels: np.ndarray, num_classes: int, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices, both in shuffled order: each class gives val its share (largest remainder)."""
    n = len(labels)
    perm = np.random.default_rng(seed).permutation(n)
    counts = np.bincount(labels, minlength=num_classes).astype(np.int64)
    take = val_size * counts // n
    remainder = val_size * counts % n
    short = val_size - int(take.sum())
    take[np.argsort(-remainder, kind="stable")[:short]] += 1
    # Rank of each shuffled position within its class; the first take[class] of each class go to val.
    shuffled = labels[perm]
    order = np.argsort(shuffled, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n) - starts[shuffled[order]]
    is_val = rank < take[shuffled]
    return perm[~is_val], perm[is_val]


# --------------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------------


def _file_key(paths: Sequence[Path]) -> list[Any]:
    out = []
    for path in paths:
        stat = path.stat()
        out.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    return out


def _cache_path(name: str, key: Any) -> Path:
    digest = hashlib.sha256(json.dumps([_CACHE_FORMAT, name, key]).encode()).hexdigest()[:20]
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    return cache.cache_dir("datasets") / f"{safe}-{digest}.npz"


def _read_cache(path: Path, name: str) -> _Source | None:
    """The cached source, or None if absent or unreadable (then it is rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            source = _Source(
                name=name,
                x_train=npz["x_train"],
                y_train=npz["y_train"],
                x_test=npz["x_test"],
                y_test=npz["y_test"],
                class_names=tuple(str(c) for c in npz["class_names"]),
            )
        _check_source(source)
    except Exception:  # corrupt, truncated or foreign file: rebuild it from the sources
        return None
    return source


def _check_source(source: _Source) -> None:
    for x, y in ((source.x_train, source.y_train), (source.x_test, source.y_test)):
        if x.dtype != np.uint8 or x.ndim != 4 or y.dtype != np.int32 or y.shape != (len(x),):
            raise ValueError("cached arrays have the wrong dtype or shape")
        if len(y) and (y.min() < 0 or y.max() >= len(source.class_names)):
            raise ValueError("cached labels out of range")


def _write_cache(path: Path, source: _Source) -> None:
    buffer = io.BytesIO()
    np.savez(
        buffer,
        x_train=source.x_train,
        y_train=source.y_train,
        x_test=source.x_test,
        y_test=source.y_test,
        class_names=np.array(source.class_names, dtype=str),
    )
    try:
        cache.atomic_write_bytes(path, buffer.getbuffer())
    except OSError as error:  # a read-only or full cache folder only costs speed
        print(f"jaxnet: could not cache {source.name} at {path} ({error}); it will be decoded again next time", file=sys.stderr)


def _cached(name: str, key: Any, build) -> _Source:
    path = _cache_path(name, key)
    source = _read_cache(path, name)
    if source is None:
        source = build()
        _write_cache(path, source)
    return source


# --------------------------------------------------------------------------------------------------
# Fashion-MNIST: IDX files
# --------------------------------------------------------------------------------------------------

_IDX_IMAGES_MAGIC = 2051
_IDX_LABELS_MAGIC = 2049


def _fashion_mnist_help() -> str:
    return (
        "Get it with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu; it installs to "
        f"{FASHION_MNIST_DEFAULT_DIR}), or download train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
        f"t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz from {FASHION_MNIST_URL} (or "
        "https://github.com/zalandoresearch/fashion-mnist, folder data/fashion) into one folder and set "
        "JAXNET_FASHION_MNIST_DIR to it or pass --data-dir (data_dir=). With internet and TensorFlow "
        "installed, tensorflow-datasets can also provide it: load 'tfds:fashion_mnist'."
    )


def _fashion_mnist_folder(data_dir: str | os.PathLike | None) -> tuple[Path, str]:
    if data_dir is not None:
        return Path(data_dir).expanduser(), "data_dir"
    env = os.environ.get("JAXNET_FASHION_MNIST_DIR")
    if env:
        return Path(env).expanduser(), "$JAXNET_FASHION_MNIST_DIR"
    return Path(FASHION_MNIST_DEFAULT_DIR), "the default folder"


def _find_idx(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def _load_fashion_mnist(data_dir: str | os.PathLike | None) -> _Source:
    folder, origin = _fashion_mnist_folder(data_dir)
    if not folder.is_dir():
        raise DataError(f"Fashion-MNIST not found: {origin} {folder} is not a folder. {_fashion_mnist_help()}")
    stems = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    found = {stem: _find_idx(folder, stem) for stem in stems}
    missing = [f"{stem}[.gz]" for stem, path in found.items() if path is None]
    if missing:
        raise DataError(
            f"Fashion-MNIST is incomplete in {origin} {folder}: missing {', '.join(missing)}. {_fashion_mnist_help()}"
        )
    paths = [found[stem] for stem in stems]

    def build() -> _Source:
        x_train = _read_idx_images(paths[0])
        y_train = _read_idx_labels(paths[1], paths[0], len(x_train))
        x_test = _read_idx_images(paths[2])
        y_test = _read_idx_labels(paths[3], paths[2], len(x_test))
        return _Source("fashion_mnist", x_train, y_train, x_test, y_test, FASHION_MNIST_CLASSES)

    return _cached("fashion_mnist", _file_key(paths), build)


def _read_idx_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataError(f"cannot read {path}: {error.strerror or error}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise DataError(
                f"{path} is not a readable gzip file ({error or type(error).__name__}); "
                "it is damaged or truncated: download it again"
            ) from None
    if path.suffix == ".gz":
        raise DataError(f"{path} is named .gz but is not gzip data; download it again")
    return raw


def _idx_header(path: Path, data: bytes, magic: int, ndims: int) -> tuple[int, ...]:
    size = 4 + 4 * ndims
    if len(data) < size:
        raise DataError(f"{path} is truncated: {len(data)} bytes, shorter than the {size}-byte IDX header")
    header = tuple(int(v) for v in np.frombuffer(data, ">u4", count=1 + ndims))
    if header[0] != magic:
        kind = "images" if magic == _IDX_IMAGES_MAGIC else "labels"
        raise DataError(
            f"{path} is not an IDX {kind} file: magic number {header[0]}, expected {magic}; "
            "check the file name, or download it again"
        )
    dims = header[1:]
    expected = size + int(np.prod(dims, dtype=np.int64))
    if len(data) < expected:
        raise DataError(
            f"{path} is truncated: its header announces {dims[0]} items ({expected} bytes) but it has "
            f"{len(data)} bytes; download it again"
        )
    if len(data) > expected:
        raise DataError(
            f"{path} has {len(data) - expected} bytes after the {dims[0]} items its header announces; "
            "it is not a valid IDX file: download it again"
        )
    return dims


def _read_idx_images(path: Path) -> np.ndarray:
    data = _read_idx_bytes(path)
    count, rows, cols = _idx_header(path, data, _IDX_IMAGES_MAGIC, 3)
    if (rows, cols) != (28, 28):
        raise DataError(f"{path} holds {rows}x{cols} images; Fashion-MNIST images are 28x28")
    return np.frombuffer(data, np.uint8, offset=16).reshape(count, rows, cols, 1).copy()


def _read_idx_labels(path: Path, images_path: Path, num_images: int) -> np.ndarray:
    data = _read_idx_bytes(path)
    (count,) = _idx_header(path, data, _IDX_LABELS_MAGIC, 1)
    if count != num_images:
        raise DataError(
            f"{path} has {count} labels but {images_path} has {num_images} images; they must match "
            "(one of the two files is from another release or damaged)"
        )
    labels = np.frombuffer(data, np.uint8, offset=8).astype(np.int32)
    _check_labels(labels, len(FASHION_MNIST_CLASSES), str(path))
    return labels


def _check_labels(labels: np.ndarray, num_classes: int, where: str) -> None:
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"{where}: label {int(labels[i])} at index {i} is outside [0, {num_classes}) "
            f"({bad.size} bad label(s) in all); the file is damaged or not this dataset"
        )


# --------------------------------------------------------------------------------------------------
# CIFAR-10: pickled batches
# --------------------------------------------------------------------------------------------------


def _cifar10_help() -> str:
    return (
        f"Download {CIFAR10_URL} (163 MB), extract it (`tar xzf {CIFAR10_ARCHIVE}` gives a folder "
        f"{CIFAR10_FOLDER}/ with data_batch_1..5 and test_batch) and set JAXNET_CIFAR10_DIR to that folder "
        "(or the one holding it), or pass --data-dir (data_dir=)."
    )


def _load_cifar10(data_dir: str | os.PathLike | None) -> _Source:
    folder = _cifar10_folder(data_dir)
    paths = [folder / f for f in CIFAR10_FILES]

    def build() -> _Source:
        train = [_read_cifar_batch(p) for p in paths[:5]]
        x_test, y_test = _read_cifar_batch(paths[5])
        x_train = np.concatenate([x for x, _ in train])
        y_train = np.concatenate([y for _, y in train])
        return _Source("cifar10", x_train, y_train, x_test, y_test, CIFAR10_CLASSES)

    return _cached("cifar10", _file_key(paths), build)


def _cifar10_folder(data_dir: str | os.PathLike | None) -> Path:
    """The folder holding data_batch_1..5 and test_batch, downloading them if nothing is named and online."""
    explicit, origin = None, None
    if data_dir is not None:
        explicit, origin = Path(data_dir).expanduser(), "data_dir"
    elif os.environ.get("JAXNET_CIFAR10_DIR"):
        explicit, origin = Path(os.environ["JAXNET_CIFAR10_DIR"]).expanduser(), "$JAXNET_CIFAR10_DIR"
    if explicit is not None:
        if not explicit.is_dir():
            raise DataError(f"CIFAR-10 not found: {origin} {explicit} is not a folder. {_cifar10_help()}")
        folder = _cifar10_in(explicit)
        if folder is None:
            raise DataError(
                f"CIFAR-10 not found in {origin} {explicit}: it holds neither data_batch_1..5 and test_batch "
                f"nor a {CIFAR10_FOLDER} folder nor {CIFAR10_ARCHIVE}. {_cifar10_help()}"
            )
    else:
        cached = cache.cache_dir("datasets")
        folder = _cifar10_in(cached) or _cifar10_in(Path.home() / ".keras" / "datasets")
        if folder is None:
            if not network_available(_host_of(CIFAR10_URL)):
                raise DataError(
                    f"CIFAR-10 is not on this machine and {_host_of(CIFAR10_URL)} cannot be reached "
                    f"(no network?), so it cannot be downloaded. {_cifar10_help()}"
                )
            folder = _download_cifar10(cached)
    missing = [f for f in CIFAR10_FILES if not (folder / f).is_file()]
    if missing:
        raise DataError(
            f"CIFAR-10 is incomplete in {folder}: missing {', '.join(missing)} "
            f"(all of data_batch_1..5 and test_batch are needed). {_cifar10_help()}"
        )
    return folder


def _cifar10_in(base: Path) -> Path | None:
    """base itself, base/cifar-10-batches-py, or the batches extracted from base/cifar-10-python.tar.gz."""
    if any((base / f).exists() for f in CIFAR10_FILES):
        return base
    if (base / CIFAR10_FOLDER).is_dir():
        return base / CIFAR10_FOLDER
    if (base / CIFAR10_ARCHIVE).is_file():
        return _extract_cifar10(base / CIFAR10_ARCHIVE, cache.cache_dir("datasets"))
    return None


def _download_cifar10(target: Path) -> Path:
    print(f"jaxnet: downloading CIFAR-10 (163 MB) from {CIFAR10_URL} into {target}", file=sys.stderr)
    fd, tmp_name = tempfile.mkstemp(dir=target, prefix=f".{CIFAR10_ARCHIVE}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        md5 = hashlib.md5()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(CIFAR10_URL, timeout=60) as response:
            while chunk := response.read(1 << 20):
                md5.update(chunk)
                out.write(chunk)
        if md5.hexdigest() != CIFAR10_ARCHIVE_MD5:
            raise DataError(
                f"the download of {CIFAR10_URL} is damaged (MD5 {md5.hexdigest()}, expected "
                f"{CIFAR10_ARCHIVE_MD5}); try again. {_cifar10_help()}"
            )
        return _extract_cifar10(tmp, target)
    except OSError as error:  # urllib.error.URLError, timeouts, a full disk
        raise DataError(f"downloading {CIFAR10_URL} failed: {error}. {_cifar10_help()}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _extract_cifar10(archive: Path, target: Path) -> Path:
    """Extracts only the batch files (regular files under cifar-10-batches-py/) into target."""
    final = target / CIFAR10_FOLDER
    if _cifar10_complete(final):
        return final
    wanted = set(CIFAR10_FILES) | {"batches.meta", "readme.html"}
    tmp = Path(tempfile.mkdtemp(dir=target, prefix=f".{CIFAR10_FOLDER}."))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if member.isfile() and len(parts) == 2 and parts[0] == CIFAR10_FOLDER and parts[1] in wanted:
                    with tar.extractfile(member) as src, open(tmp / parts[1], "wb") as dst:  # type: ignore[union-attr]
                        shutil.copyfileobj(src, dst)
        missing = [f for f in CIFAR10_FILES if not (tmp / f).is_file()]
        if missing:
            raise DataError(f"{archive} lacks {CIFAR10_FOLDER}/{', '.join(missing)}; it is not the CIFAR-10 python archive")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except (tarfile.TarError, EOFError, zlib.error) as error:
        raise DataError(f"{archive} is not a readable .tar.gz ({error}); download it again. {_cifar10_help()}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _cifar10_complete(folder: Path) -> bool:
    return all((folder / f).is_file() for f in CIFAR10_FILES)


# NumPy's array-unpickling functions (protocol <= 4 and 5), whatever module NumPy keeps them in.
_NUMPY_RECONSTRUCT = np.zeros(1).__reduce__()[0]
_NUMPY_FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]


class _ForbiddenGlobal(pickle.UnpicklingError):
    """A pickle that asks for something a CIFAR-10 batch never holds."""


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    if encoding not in ("latin1", "latin-1"):
        raise _ForbiddenGlobal(f"it asks for codecs.encode with {encoding!r}, which a CIFAR-10 batch never does")
    return text.encode("latin1")


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles only what a CIFAR-10 batch holds: dicts, lists, bytes, numbers and plain NumPy arrays."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _NUMPY_RECONSTRUCT,
        ("numpy._core.multiarray", "_reconstruct"): _NUMPY_RECONSTRUCT,
        ("numpy.core.numeric", "_frombuffer"): _NUMPY_FROMBUFFER,
        ("numpy._core.numeric", "_frombuffer"): _NUMPY_FROMBUFFER,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,  # bytes pickled by Python 3 with protocol < 3
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise _ForbiddenGlobal(f"it asks to load {module}.{name}, which a CIFAR-10 batch never contains") from None


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 32, 32, 3), labels int32 (N,)) from one pickled batch, validated."""
    try:
        with open(path, "rb") as f:
            batch = _CifarUnpickler(f, encoding="bytes").load()
    except OSError as error:
        raise DataError(f"cannot read {path}: {error.strerror or error}") from None
    except _ForbiddenGlobal as error:
        raise DataError(f"refusing to load {path}: {error}. Download CIFAR-10 again from {CIFAR10_URL}") from None
    except Exception as error:  # truncated or garbage pickle: EOFError, ValueError, ...
        raise DataError(
            f"{path} is not a readable CIFAR-10 batch ({type(error).__name__}: {error}); download it again"
        ) from None
    if not isinstance(batch, dict):
        raise DataError(f"{path} is not a CIFAR-10 batch: it holds a {type(batch).__name__}, not a dict")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise DataError(f"{path} is not a CIFAR-10 batch: it lacks the b'data' or b'labels' entry")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: b'data' must be a uint8 array (N, 3072), got {_describe(data)}")
    try:
        labels = np.asarray(labels)
    except ValueError:
        labels = np.asarray([], dtype=object)
    if labels.dtype.kind not in "iu" or labels.shape != (len(data),):
        raise DataError(
            f"{path}: b'labels' must hold {len(data)} integers (one per image), got {_describe(labels)}"
        )
    labels = labels.astype(np.int32)
    _check_labels(labels, len(CIFAR10_CLASSES), str(path))
    # Each row is channel-major: 1024 red values (row-major 32x32), then 1024 green, then 1024 blue.
    images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return images, labels


# --------------------------------------------------------------------------------------------------
# tensorflow-datasets
# --------------------------------------------------------------------------------------------------


def _load_tfds(name: str, data_dir: str | os.PathLike | None) -> _Source:
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=None if data_dir is None else os.fspath(data_dir), file_format="array_record")
    except tfds.core.registered.DatasetNotFoundError:
        known = set(tfds.list_builders(with_community_datasets=False))  # the community list needs GCS
        close = difflib.get_close_matches(name.split("/")[0].split(":")[0], known, n=3)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise DataError(
            f"unknown dataset {name!r}: not 'fashion_mnist', 'cifar10' or a tensorflow-datasets name.{hint} "
            "See tfds.list_builders() for the names."
        ) from None
    except Exception as error:
        raise DataError(f"tensorflow-datasets cannot open {name!r}: {type(error).__name__}: {error}") from None

    info = builder.info
    image_key, label_key = _tfds_keys(name, info.features, info.supervised_keys)
    image_feature, label_feature = info.features[image_key], info.features[label_key]
    shape = tuple(image_feature.shape)
    if len(shape) == 2:
        shape = (*shape, 1)
    if len(shape) != 3 or any(s is None for s in shape):
        raise DataError(
            f"{name}: images of varying size (feature {image_key!r} has shape {tuple(image_feature.shape)}); "
            "jaxnet.data needs fixed-size images (N, H, W, C)"
        )
    if np.dtype(image_feature.np_dtype) != np.uint8:
        raise DataError(f"{name}: images are {np.dtype(image_feature.np_dtype)}, jaxnet.data needs uint8 images")
    class_names = tuple(label_feature.names)
    splits = list(info.splits.keys()) if info.splits else []
    if splits and not {"train", "test"} <= set(splits):
        raise DataError(
            f"{name} has the splits {', '.join(splits)}; jaxnet.data needs a 'train' and a 'test' split"
        )

    if not builder.is_prepared():
        if not network_available(TFDS_PROBE_HOST):
            raise DataError(
                f"{name} is not prepared in {builder.data_dir} and {TFDS_PROBE_HOST} cannot be reached "
                "(no network?), so tensorflow-datasets cannot download it. Run once with internet (preparing "
                "most image sets also needs TensorFlow: pip install tensorflow-cpu), or pass as data_dir "
                "(--data-dir) a tfds data folder that holds it prepared in the array_record format."
            )
        try:
            builder.download_and_prepare()
        except ImportError as error:
            raise DataError(
                f"preparing {name} with tensorflow-datasets needs a package that is not installed ({error}); "
                "most image sets need TensorFlow to prepare (pip install tensorflow-cpu)"
            ) from None
        except Exception as error:
            raise DataError(f"tensorflow-datasets could not prepare {name}: {type(error).__name__}: {error}") from None

    def read(split: str) -> tuple[np.ndarray, np.ndarray]:
        try:
            source = builder.as_data_source(split=split)
            n = len(source)
            x = np.empty((n, *shape), np.uint8)
            y = np.empty(n, np.int32)
            for i in range(n):  # __getitems__ would batch, but tfds 4.9.10's mock_data breaks it
                example = source[i]
                x[i] = np.asarray(example[image_key]).reshape(shape)
                y[i] = int(example[label_key])
        except Exception as error:
            raise DataError(
                f"tensorflow-datasets could not read the {split!r} split of {name}: {type(error).__name__}: {error}"
            ) from None
        _check_labels(y, len(class_names), f"{name} ({split} split)")
        return x, y

    def build() -> _Source:
        x_train, y_train = read("train")
        x_test, y_test = read("test")
        return _Source(name, x_train, y_train, x_test, y_test, class_names)

    data_path = Path(os.fspath(builder.data_path))
    files = sorted(p for p in data_path.rglob("*") if p.is_file()) if data_path.is_dir() else []
    if not files:  # nothing on disk to key a cache on (e.g. tfds.testing.mock_data)
        return build()
    return _cached(f"tfds-{name}", _file_key(files), build)


def _tfds_keys(name: str, features: Any, supervised_keys: Any) -> tuple[str, str]:
    """(image key, label key): from supervised_keys, else the only Image and only ClassLabel feature."""
    import tensorflow_datasets as tfds

    if (
        isinstance(supervised_keys, tuple)
        and len(supervised_keys) == 2
        and all(isinstance(k, str) and k in features for k in supervised_keys)
    ):
        image_key, label_key = supervised_keys
    else:
        images = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
        labels = [k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)]
        if len(images) != 1 or len(labels) != 1:
            raise DataError(
                f"{name} is not an image classification dataset jaxnet.data can read: it needs one image "
                f"and one class-label feature, its features are {', '.join(features.keys())}"
            )
        image_key, label_key = images[0], labels[0]
    if not isinstance(features[label_key], tfds.features.ClassLabel):
        raise DataError(f"{name}: the label feature {label_key!r} is not a class label")
    image = features[image_key]
    if not (isinstance(image, tfds.features.Image) or type(image) is tfds.features.Tensor):
        raise DataError(f"{name}: the input feature {image_key!r} is not an image")
    return image_key, label_key


# --------------------------------------------------------------------------------------------------
# Network probe
# --------------------------------------------------------------------------------------------------


def _host_of(url: str) -> str:
    return urllib.parse.urlsplit(url).hostname or url


def network_available(host: str, port: int = 443, timeout: float = NETWORK_TIMEOUT_S) -> bool:
    """Whether a TCP connection to host (or to the HTTPS proxy, if one is set) opens within timeout seconds.

    Runs in a thread, so a hanging DNS lookup cannot stretch it past the timeout either.
    """
    proxy = urllib.request.getproxies().get("https")
    if proxy and not urllib.request.proxy_bypass(host):
        parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = parts.hostname or host, parts.port or 80
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(result) and result[0]


# --------------------------------------------------------------------------------------------------
# Batches
# --------------------------------------------------------------------------------------------------


class BatchSampler:
    """Index batches over n examples, reshuffled every epoch, reproducible from (seed, epoch).

    Epoch e's order is a permutation drawn from ``np.random.default_rng([seed, e])``: it does not depend
    on which epochs were drawn before, so a resumed run sees the same batches.
    """

    def __init__(self, num_examples: int, batch_size: int, seed: int = 0):
        self.num_examples = _non_negative_int("num_examples", num_examples, ValueError)
        if self.num_examples > np.iinfo(np.int32).max:
            raise ValueError(f"num_examples={num_examples} does not fit int32 indices")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.batch_size = int(batch_size)
        self.seed = _non_negative_int("seed", seed, ValueError)

    @property
    def num_batches(self) -> int:
        """Batches per epoch, the last one partial when batch_size does not divide num_examples."""
        return -(-self.num_examples // self.batch_size)

    def permutation(self, epoch: int) -> np.ndarray:
        """int32 (num_examples,): the order of epoch ``epoch``, every index exactly once."""
        epoch = _non_negative_int("epoch", epoch, ValueError)
        rng = np.random.default_rng([self.seed, epoch])
        return rng.permutation(self.num_examples).astype(np.int32)

    def epoch(self, epoch: int) -> list[np.ndarray]:
        """The int32 index batches of epoch ``epoch``: ``num_batches`` of them, the last maybe partial."""
        perm = self.permutation(epoch)
        return [perm[i : i + self.batch_size] for i in range(0, self.num_examples, self.batch_size)]

    def __repr__(self) -> str:
        return f"BatchSampler(num_examples={self.num_examples}, batch_size={self.batch_size}, seed={self.seed})"
