"""Tests of jaxnet.data: IDX and CIFAR-10 parsing, tfds through mock_data, splits, cache, offline failures, batches."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import socket
import struct
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxnet import data
from jaxnet.data import BatchSampler, DataError, Dataset, load_dataset

REAL_PROBE = data.network_available  # before any test replaces it
REAL_FASHION = Path(data.FASHION_MNIST_DEFAULT_DIR)
needs_real_fashion = pytest.mark.skipif(
    not (REAL_FASHION / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian's dataset-fashion-mnist is not installed (sudo apt-get install dataset-fashion-mnist)",
)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Every test: a private cache folder, no dataset folders from the environment, no network."""
    monkeypatch.setenv("JAXNET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("JAXNET_FASHION_MNIST_DIR", raising=False)
    monkeypatch.delenv("JAXNET_CIFAR10_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.keras/datasets copy of CIFAR-10

    def no_network(*args, **kwargs):
        raise AssertionError("a test tried to use the network")

    monkeypatch.setattr(data, "network_available", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(data.urllib.request, "urlopen", no_network)


def cache_files() -> list[Path]:
    return sorted((Path(os.environ["JAXNET_CACHE_DIR"]) / "datasets").glob("*.npz"))


# --------------------------------------------------------------------------------------------------
# Real Fashion-MNIST
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_fashion(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JAXNET_CACHE_DIR", str(tmp_path_factory.mktemp("real-cache")))
        mp.delenv("JAXNET_FASHION_MNIST_DIR", raising=False)
        start = time.perf_counter()
        first = load_dataset("fashion_mnist")
        first_s = time.perf_counter() - start
        start = time.perf_counter()
        second = load_dataset("fashion_mnist")
        second_s = time.perf_counter() - start
    print(f"\nFashion-MNIST: first load {first_s:.3f} s, second (cached) load {second_s:.3f} s")
    return first, second, first_s, second_s


@needs_real_fashion
def test_real_fashion_mnist_shapes_counts_and_mean(real_fashion):
    ds = real_fashion[0]
    assert ds.name == "fashion_mnist"
    assert (ds.x_train.shape, ds.x_val.shape, ds.x_test.shape) == ((50000, 28, 28, 1), (10000, 28, 28, 1), (10000, 28, 28, 1))
    for x, y in ((ds.x_train, ds.y_train), (ds.x_val, ds.y_val), (ds.x_test, ds.y_test)):
        assert x.dtype == np.uint8 and y.dtype == np.int32 and y.shape == (len(x),)
    assert ds.image_shape == (28, 28, 1) and ds.num_classes == 10
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"
    official_train = np.concatenate([ds.y_train, ds.y_val])
    assert np.bincount(official_train).tolist() == [6000] * 10
    assert np.bincount(ds.y_test).tolist() == [1000] * 10
    assert np.bincount(ds.y_val).tolist() == [1000] * 10  # stratified
    mean = np.concatenate([ds.x_train, ds.x_val]).mean(dtype=np.float64)
    assert mean == pytest.approx(72.94, abs=0.01)


@needs_real_fashion
def test_real_fashion_mnist_second_load_is_cached_fast_and_equal(real_fashion):
    first, second, _, second_s = real_fashion
    assert second_s < 1.0
    for field in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(first, field), getattr(second, field))


# --------------------------------------------------------------------------------------------------
# IDX files written here
# --------------------------------------------------------------------------------------------------


def idx_images(images: np.ndarray) -> bytes:
    n, rows, cols = images.shape
    return struct.pack(">IIII", 2051, n, rows, cols) + images.astype(np.uint8).tobytes()


def idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes()


def fake_fashion(n_train=40, n_test=20, seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        np.arange(n_train) % 10,
        rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        np.arange(n_test) % 10,
    )


def write_fashion(folder: Path, arrays=None, gz=True, overrides=None) -> Path:
    """The four IDX files in folder; overrides maps a stem to the raw bytes to write instead."""
    x_train, y_train, x_test, y_test = arrays if arrays is not None else fake_fashion()
    contents = {
        "train-images-idx3-ubyte": idx_images(x_train),
        "train-labels-idx1-ubyte": idx_labels(y_train),
        "t10k-images-idx3-ubyte": idx_images(x_test),
        "t10k-labels-idx1-ubyte": idx_labels(y_test),
    }
    contents.update(overrides or {})
    folder.mkdir(parents=True, exist_ok=True)
    for stem, payload in contents.items():
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(payload, compresslevel=1))
        else:
            (folder / stem).write_bytes(payload)
    return folder


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
def test_idx_round_trip(tmp_path, gz):
    arrays = fake_fashion()
    folder = write_fashion(tmp_path / "fm", arrays, gz=gz)
    ds = load_dataset("fashion_mnist", data_dir=folder, val_size=10)
    x_train, y_train, x_test, y_test = arrays
    np.testing.assert_array_equal(ds.x_test[..., 0], x_test)
    np.testing.assert_array_equal(ds.y_test, y_test)
    assert ds.x_train.shape == (30, 28, 28, 1) and ds.x_val.shape == (10, 28, 28, 1)
    # Every train image lands in train or val once, with its label.
    both_x = np.concatenate([ds.x_train, ds.x_val])[..., 0]
    both_y = np.concatenate([ds.y_train, ds.y_val])
    for x, y in zip(both_x, both_y):
        i = int(np.flatnonzero((x_train == x).all(axis=(1, 2)))[0])
        assert y_train[i] == y
    assert sorted(map(bytes, both_x)) == sorted(map(bytes, x_train))


CORRUPTIONS = {
    "bad magic": ("train-images-idx3-ubyte", lambda: struct.pack(">IIII", 2049, 40, 28, 28) + bytes(40 * 784), "magic number 2049"),
    "truncated": ("train-images-idx3-ubyte", lambda: idx_images(fake_fashion()[0])[:-100], "truncated"),
    "short header": ("t10k-labels-idx1-ubyte", lambda: b"\x00\x00\x08", "truncated"),
    "extra bytes": ("t10k-images-idx3-ubyte", lambda: idx_images(fake_fashion()[2]) + b"xx", "2 bytes after"),
    "count mismatch": ("train-labels-idx1-ubyte", lambda: idx_labels(np.arange(39) % 10), "39 labels"),
    "wrong image size": (
        "train-images-idx3-ubyte", lambda: struct.pack(">IIII", 2051, 40, 32, 32) + bytes(40 * 1024), "32x32",
    ),
    "label out of range": ("t10k-labels-idx1-ubyte", lambda: idx_labels(np.array([0] * 19 + [10])), "label 10"),
}


@pytest.mark.parametrize("case", CORRUPTIONS, ids=list(CORRUPTIONS))
def test_corrupt_idx_file_is_named(tmp_path, case):
    stem, payload, what = CORRUPTIONS[case]
    folder = write_fashion(tmp_path / "fm", gz=False, overrides={stem: payload()})
    with pytest.raises(DataError, match=what) as info:
        load_dataset("fashion_mnist", data_dir=folder, val_size=10)
    assert str(folder / stem) in str(info.value)


def test_unreadable_gzip_is_named(tmp_path):
    folder = write_fashion(tmp_path / "fm")
    broken = folder / "train-labels-idx1-ubyte.gz"
    broken.write_bytes(broken.read_bytes()[:30])  # gzip magic, then cut off
    with pytest.raises(DataError, match="not a readable gzip file") as info:
        load_dataset("fashion_mnist", data_dir=folder, val_size=10)
    assert str(broken) in str(info.value)


def test_missing_folder_says_how_to_get_the_data(tmp_path):
    with pytest.raises(DataError) as info:
        load_dataset("fashion_mnist", data_dir=tmp_path / "nowhere")
    message = str(info.value)
    for needed in (str(tmp_path / "nowhere"), "sudo apt-get install dataset-fashion-mnist",
                   "JAXNET_FASHION_MNIST_DIR", "--data-dir", "tensorflow-datasets", "t10k-labels-idx1-ubyte.gz"):
        assert needed in message


def test_missing_file_is_named(tmp_path):
    folder = write_fashion(tmp_path / "fm")
    (folder / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"missing t10k-images-idx3-ubyte\[\.gz\]"):
        load_dataset("fashion_mnist", data_dir=folder, val_size=10)


def test_data_dir_wins_over_environment_which_wins_over_default(tmp_path, monkeypatch):
    from_env = write_fashion(tmp_path / "env", fake_fashion(n_test=20, seed=1))
    from_arg = write_fashion(tmp_path / "arg", fake_fashion(n_test=30, seed=2))
    monkeypatch.setenv("JAXNET_FASHION_MNIST_DIR", str(from_env))
    assert len(load_dataset("fashion_mnist", val_size=10).y_test) == 20
    assert len(load_dataset("fashion_mnist", data_dir=from_arg, val_size=10).y_test) == 30
    monkeypatch.setenv("JAXNET_FASHION_MNIST_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match=r"\$JAXNET_FASHION_MNIST_DIR"):
        load_dataset("fashion_mnist", val_size=10)


# --------------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def small_fashion(tmp_path):
    x_train = np.zeros((100, 28, 28), np.uint8)
    x_train[:, 0, 0] = np.arange(100)  # each image's index in its first pixel
    y_train = np.arange(100) % 10
    return write_fashion(tmp_path / "fm", (x_train, y_train, x_train[:10], y_train[:10]))


def ids(x: np.ndarray) -> np.ndarray:
    return x[:, 0, 0, 0].astype(int)


def test_split_is_deterministic_disjoint_complete_and_keeps_every_class(small_fashion):
    a = load_dataset("fashion_mnist", data_dir=small_fashion, val_size=20, seed=3)
    b = load_dataset("fashion_mnist", data_dir=small_fashion, val_size=20, seed=3)
    c = load_dataset("fashion_mnist", data_dir=small_fashion, val_size=20, seed=4)
    np.testing.assert_array_equal(ids(a.x_train), ids(b.x_train))
    np.testing.assert_array_equal(ids(a.x_val), ids(b.x_val))
    assert set(ids(a.x_val)) != set(ids(c.x_val))
    assert not set(ids(a.x_train)) & set(ids(a.x_val))
    assert sorted([*ids(a.x_train), *ids(a.x_val)]) == list(range(100))
    np.testing.assert_array_equal(a.y_train, ids(a.x_train) % 10)  # images keep their labels
    assert np.bincount(a.y_val, minlength=10).tolist() == [2] * 10
    assert np.bincount(a.y_train, minlength=10).tolist() == [8] * 10


def test_train_size_keeps_the_first_of_the_shuffled_rest(small_fashion):
    full = load_dataset("fashion_mnist", data_dir=small_fashion, val_size=20, seed=5)
    part = load_dataset("fashion_mnist", data_dir=small_fashion, val_size=20, train_size=7, seed=5)
    np.testing.assert_array_equal(ids(part.x_train), ids(full.x_train)[:7])
    np.testing.assert_array_equal(ids(part.x_val), ids(full.x_val))
    assert not np.array_equal(ids(full.x_train), np.sort(ids(full.x_train)))  # shuffled
    empty_val = load_dataset("fashion_mnist", data_dir=small_fashion, val_size=0)
    assert empty_val.x_val.shape == (0, 28, 28, 1) and len(empty_val.y_train) == 100


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"val_size": -1}, "val_size must be a non-negative integer"),
        ({"val_size": 100}, r"val_size=100 is too large.*val_size <= 99"),
        ({"val_size": 2.5}, "val_size must be a non-negative integer"),
        ({"val_size": 10, "train_size": 91}, r"train_size=91 is out of range.*1 <= train_size <= 90"),
        ({"val_size": 10, "train_size": 0}, "train_size=0 is out of range"),
        ({"val_size": 10, "train_size": -5}, "train_size must be a non-negative integer"),
        ({"val_size": 10, "seed": -1}, "seed must be a non-negative integer"),
        ({}, "fewer than the default val_size=10000"),
    ],
)
def test_bad_split_sizes(small_fashion, kwargs, match):
    with pytest.raises(data.SplitError, match=match) as info:
        load_dataset("fashion_mnist", data_dir=small_fashion, **kwargs)
    assert isinstance(info.value, ValueError) and isinstance(info.value, DataError)  # the CLI catches DataError


def test_dataset_checks_its_arrays():
    x, y = np.zeros((2, 4, 4, 1), np.uint8), np.zeros(2, np.int32)
    ds = Dataset("d", x, y, x[:0], y[:0], x, y, ["a", "b"])
    assert ds.class_names == ("a", "b") and ds.num_classes == 2 and ds.image_shape == (4, 4, 1)
    assert repr(ds) == "Dataset(name='d', train=2, val=0, test=2, image_shape=(4, 4, 1), num_classes=2)"
    with pytest.raises(ValueError, match="y_train must be an int32 array"):
        Dataset("d", x, y.astype(np.int64), x, y, x, y, ("a",))
    with pytest.raises(ValueError, match="x_test must be a uint8 array"):
        Dataset("d", x, y, x, y, x.astype(np.float32), y, ("a",))


# --------------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------------


def test_cache_is_written_reused_and_keyed_on_the_files(small_fashion):
    first = load_dataset("fashion_mnist", data_dir=small_fashion, val_size=10)
    [cached] = cache_files()
    stamp = cached.stat().st_mtime_ns
    second = load_dataset("fashion_mnist", data_dir=small_fashion, val_size=10)
    assert cache_files() == [cached] and cached.stat().st_mtime_ns == stamp  # read, not rewritten
    np.testing.assert_array_equal(first.x_train, second.x_train)
    # New source files (other size and mtime) are decoded again, not served from the old cache.
    write_fashion(small_fashion, fake_fashion(n_train=100, n_test=30))
    assert len(load_dataset("fashion_mnist", data_dir=small_fashion, val_size=10).y_test) == 30


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong arrays"])
def test_corrupt_cache_is_rebuilt(small_fashion, damage):
    first = load_dataset("fashion_mnist", data_dir=small_fashion, val_size=10)
    [cached] = cache_files()
    if damage == "garbage":
        cached.write_bytes(b"not a zip file")
    elif damage == "truncated":
        cached.write_bytes(cached.read_bytes()[: cached.stat().st_size // 2])
    else:
        np.savez(cached.with_suffix(""), x_train=np.zeros(3))  # np.savez adds .npz
    again = load_dataset("fashion_mnist", data_dir=small_fashion, val_size=10)
    for field in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(first, field), getattr(again, field))
    with np.load(cached) as npz:  # rewritten whole
        assert npz["x_train"].shape == (100, 28, 28, 1)


# --------------------------------------------------------------------------------------------------
# CIFAR-10 in the original pickled format, written here
# --------------------------------------------------------------------------------------------------


class Py2Pickler(pickle._Pickler):
    """Pickles str and bytes as Python 2 ``str`` (BINSTRING), as the original CIFAR-10 files do."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[str] = save_py2_str
    dispatch[bytes] = save_py2_str


def cifar_pickle(batch: dict, style: str) -> bytes:
    if style in ("py3", "py3-protocol2"):  # protocol 2 stores bytes through _codecs.encode
        return pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL if style == "py3" else 2)
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(batch)
    # Python 2 NumPy named its module numpy.core.multiarray.
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def cifar_images(n: int, first_id: int) -> np.ndarray:
    """(n, 32, 32, 3) images: R of pixel (0, 0) is the image's id, pixel (3, 5) is (10, 20, 30)."""
    rng = np.random.default_rng(first_id)
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(first_id, first_id + n)
    images[:, 3, 5] = (10, 20, 30)
    return images


def to_cifar_rows(images: np.ndarray) -> np.ndarray:
    """The original layout, built by hand: 1024 R values (row-major), then 1024 G, then 1024 B."""
    rows = np.empty((len(images), 3072), np.uint8)
    for i, image in enumerate(images):
        for c in range(3):
            for r in range(32):
                rows[i, c * 1024 + r * 32 : c * 1024 + r * 32 + 32] = image[r, :, c]
    return rows


def write_cifar(folder: Path, per_batch=4, n_test=6, style="py3", overrides=None) -> tuple[np.ndarray, np.ndarray]:
    """cifar-10-batches-py in folder; returns (train images, test images) in file order."""
    folder.mkdir(parents=True, exist_ok=True)
    train = []
    for b, name in enumerate(data.CIFAR10_FILES):
        n = n_test if name == "test_batch" else per_batch
        images = cifar_images(n, 100 + 10 * b if name != "test_batch" else 0)
        if name != "test_batch":
            train.append(images)
        batch = {
            b"batch_label": f"batch {b + 1} of 5".encode(),
            b"labels": [int(v) for v in (images[:, 0, 0, 0] % 10)],
            b"data": to_cifar_rows(images),
            b"filenames": [f"img_{i}.png".encode() for i in range(n)],
        }
        payload = (overrides or {}).get(name) or cifar_pickle(batch, style)
        (folder / name).write_bytes(payload)
    return np.concatenate(train), cifar_images(n_test, 0)


@pytest.mark.parametrize("style", ["py3", "py3-protocol2", "py2"])
def test_cifar10_format_and_channel_order(tmp_path, style):
    folder = tmp_path / "cifar-10-batches-py"
    train, test = write_cifar(folder, style=style)
    ds = load_dataset("cifar10", data_dir=folder, val_size=0)
    assert ds.x_train.shape == (20, 32, 32, 3) and ds.x_test.shape == (6, 32, 32, 3)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int32
    assert ds.class_names == data.CIFAR10_CLASSES
    np.testing.assert_array_equal(ds.x_test, test)
    assert ds.x_test[2, 3, 5].tolist() == [10, 20, 30]  # R, G, B of one pixel, each where it belongs
    order = np.argsort(ds.x_train[:, 0, 0, 0])
    np.testing.assert_array_equal(ds.x_train[order], train[np.argsort(train[:, 0, 0, 0])])
    np.testing.assert_array_equal(ds.y_train, ds.x_train[:, 0, 0, 0] % 10)
    np.testing.assert_array_equal(ds.y_test, test[:, 0, 0, 0] % 10)


def test_cifar10_from_the_parent_folder_and_environment(tmp_path, monkeypatch):
    write_cifar(tmp_path / "parent" / "cifar-10-batches-py")
    monkeypatch.setenv("JAXNET_CIFAR10_DIR", str(tmp_path / "parent"))
    assert load_dataset("cifar10", val_size=2).x_train.shape == (18, 32, 32, 3)
    write_cifar(tmp_path / "other", per_batch=2)
    assert load_dataset("cifar10", data_dir=tmp_path / "other", val_size=2).x_train.shape == (8, 32, 32, 3)


def test_cifar10_missing_batch_is_named(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder)
    (folder / "data_batch_4").unlink()
    with pytest.raises(DataError, match="missing data_batch_4") as info:
        load_dataset("cifar10", data_dir=folder, val_size=0)
    assert data.CIFAR10_URL in str(info.value)


class Boom:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


@pytest.mark.parametrize(
    "payload, match",
    [
        (pickle.dumps({b"data": Boom()}), "refusing to load .* asks to load (posix|os|nt).system"),
        (b"\x80\x04garbage", "not a readable CIFAR-10 batch"),
        (pickle.dumps([1, 2]), "holds a list, not a dict"),
        (pickle.dumps({b"data": np.zeros((4, 3072), np.uint8)}), "lacks the b'data' or b'labels'"),
        (pickle.dumps({b"data": np.zeros((4, 1024), np.uint8), b"labels": [0] * 4}), r"uint8 array \(N, 3072\)"),
        (pickle.dumps({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0] * 3}), "must hold 4 integers"),
        (pickle.dumps({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, 10]}), "label 10 at index 3"),
    ],
    ids=["malicious", "garbage", "not a dict", "no labels", "wrong row size", "label count", "label range"],
)
def test_cifar10_bad_batch_is_named(tmp_path, monkeypatch, payload, match):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder, overrides={"data_batch_3": payload})
    with pytest.raises(DataError, match=match) as info:
        load_dataset("cifar10", data_dir=folder, val_size=0)
    assert str(folder / "data_batch_3") in str(info.value)
    assert not (tmp_path / "pwned").exists()


def test_cifar10_offline_fails_fast_with_instructions(monkeypatch):
    probed = []
    monkeypatch.setattr(data, "network_available", lambda host, *a, **k: probed.append(host) or False)
    start = time.perf_counter()
    with pytest.raises(DataError) as info:
        load_dataset("cifar10")
    assert time.perf_counter() - start < 5
    assert probed == ["www.cs.toronto.edu"]
    message = str(info.value)
    for needed in ("cannot be reached", data.CIFAR10_URL, "cifar-10-batches-py", "JAXNET_CIFAR10_DIR", "--data-dir"):
        assert needed in message


def cifar_archive(folder: Path, extra_member: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
        if extra_member:
            info = tarfile.TarInfo(extra_member)
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
    return buffer.getvalue()


def test_cifar10_online_downloads_checks_and_extracts(tmp_path, monkeypatch):
    _, test = write_cifar(tmp_path / "src" / "cifar-10-batches-py")
    archive = cifar_archive(tmp_path / "src" / "cifar-10-batches-py", extra_member="../escaped")
    monkeypatch.setattr(data, "network_available", lambda *a, **k: True)
    monkeypatch.setattr(data, "CIFAR10_ARCHIVE_MD5", hashlib.md5(archive).hexdigest())
    downloads = []
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda url, timeout: downloads.append(url) or io.BytesIO(archive))
    ds = load_dataset("cifar10", val_size=0)
    np.testing.assert_array_equal(ds.x_test, test)
    assert downloads == [data.CIFAR10_URL]
    datasets = Path(os.environ["JAXNET_CACHE_DIR"]) / "datasets"
    assert (datasets / "cifar-10-batches-py" / "test_batch").is_file()
    assert not (datasets.parent / "escaped").exists()
    load_dataset("cifar10", val_size=0)  # the downloaded copy is found again
    assert downloads == [data.CIFAR10_URL]


def test_cifar10_damaged_download_is_refused(monkeypatch):
    monkeypatch.setattr(data, "network_available", lambda *a, **k: True)
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(b"not the archive"))
    with pytest.raises(DataError, match="download of .* is damaged"):
        load_dataset("cifar10")
    assert not list((Path(os.environ["JAXNET_CACHE_DIR"]) / "datasets").iterdir())  # no partial files left


# --------------------------------------------------------------------------------------------------
# tensorflow-datasets, through tfds.testing.mock_data
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, shape, classes", [("mnist", (28, 28, 1), 10), ("svhn_cropped", (32, 32, 3), 10)])
def test_tfds_dataset_through_mock_data(monkeypatch, name, shape, classes):
    tfds = pytest.importorskip("tensorflow_datasets")
    monkeypatch.setattr(data, "network_available", lambda *a, **k: True)  # mock_data never downloads
    with tfds.testing.mock_data(num_examples=30):
        ds = load_dataset(name, val_size=5, seed=1)
    assert ds.name == name
    assert ds.x_train.shape == (25, *shape) and ds.x_val.shape == (5, *shape) and ds.x_test.shape == (30, *shape)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int32 and ds.y_test.dtype == np.int32
    assert ds.num_classes == classes and 0 <= ds.y_train.min() and ds.y_train.max() < classes
    assert ds.x_test.std() > 0  # real pixel values came through, not zeros


def test_tfds_offline_fails_fast_with_instructions(tmp_path, monkeypatch):
    pytest.importorskip("tensorflow_datasets")
    monkeypatch.setattr(data, "network_available", lambda *a, **k: False)
    start = time.perf_counter()
    with pytest.raises(DataError) as info:
        load_dataset("mnist", data_dir=tmp_path / "tfds")
    assert time.perf_counter() - start < 10
    message = str(info.value)
    assert "mnist is not prepared" in message and "cannot be reached" in message and "data_dir" in message


def test_tfds_unknown_name_suggests_close_ones():
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(DataError, match=r"unknown dataset 'fashion_mnsit'.*Did you mean 'fashion_mnist'"):
        load_dataset("tfds:fashion_mnsit")


def test_tfds_non_image_dataset_is_refused(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(DataError, match="imdb_reviews: the input feature 'text' is not an image"):
        load_dataset("imdb_reviews", data_dir=tmp_path / "tfds")


# --------------------------------------------------------------------------------------------------
# Network probe
# --------------------------------------------------------------------------------------------------


def test_network_probe_gives_up_after_its_timeout(monkeypatch):
    def hang(*args, **kwargs):  # a connection that never answers (and fails when it finally gives up)
        time.sleep(5)
        raise OSError("timed out")

    monkeypatch.setattr(socket, "create_connection", hang)
    monkeypatch.setattr(data.urllib.request, "getproxies", lambda: {})
    start = time.perf_counter()
    assert REAL_PROBE("example.invalid", timeout=0.2) is False
    assert time.perf_counter() - start < 2


# --------------------------------------------------------------------------------------------------
# BatchSampler
# --------------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 300), batch_size=st.integers(1, 64), seed=st.integers(0, 2**32), epoch=st.integers(0, 1000))
def test_sampler_covers_every_index_once_per_epoch(n, batch_size, seed, epoch):
    sampler = BatchSampler(n, batch_size, seed)
    batches = sampler.epoch(epoch)
    assert len(batches) == sampler.num_batches == -(-n // batch_size)
    assert all(b.dtype == np.int32 for b in batches)
    assert all(len(b) == batch_size for b in batches[:-1])
    flat = np.concatenate(batches) if batches else np.zeros(0, np.int32)
    assert sorted(flat.tolist()) == list(range(n))
    np.testing.assert_array_equal(flat, sampler.permutation(epoch))


def test_sampler_partial_last_batch_reshuffles_and_reproduces():
    sampler = BatchSampler(10, 4, seed=7)
    assert [len(b) for b in sampler.epoch(0)] == [4, 4, 2]
    assert not np.array_equal(sampler.permutation(0), sampler.permutation(1))
    again = BatchSampler(10, 4, seed=7)
    for e0, e1 in zip(sampler.epoch(3), again.epoch(3)):
        np.testing.assert_array_equal(e0, e1)
    assert not np.array_equal(BatchSampler(10, 4, seed=8).permutation(0), sampler.permutation(0))
    assert BatchSampler(8, 4).num_batches == 2 and BatchSampler(0, 4).epoch(0) == []


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True, "4"])
def test_sampler_rejects_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        BatchSampler(10, batch_size)


def test_sampler_rejects_bad_counts_and_epochs():
    with pytest.raises(ValueError, match="num_examples must be a non-negative integer"):
        BatchSampler(-1, 4)
    with pytest.raises(ValueError, match="epoch must be a non-negative integer"):
        BatchSampler(10, 4).epoch(-1)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        BatchSampler(10, 4, seed=-3)
