"""jaxnet.hub weight files: the torch-free .pth reader (zip and legacy), its refusal of code, downloads with
checksums and a fast offline failure, and SqueezeNet 1.1 from a zip .pth written here without torch."""

from __future__ import annotations

import functools
import hashlib
import http.server
import importlib.util
import os
import pickle
import struct
import threading
import time
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet import hub
from jaxnet.hub import registry, sources
from jaxnet.hub.convert import check_matches, convert_state_dict, flax_path
from jaxnet.hub.errors import HubError, UnsafePickleError
from jaxnet.hub.pth import LEGACY_MAGIC, read_state_dict
from jaxnet.hub.squeezenet import SqueezeNet11

EFFICIENTNET_FILE = registry.MODELS["efficientnet_lite0"].source.fetch

# ------------------------------------------------------------------------------------------------
# Writing PyTorch's zip format without torch: pickle protocol 2 opcodes, the way torch.save emits them.
# ------------------------------------------------------------------------------------------------

_STORAGE = {np.dtype(np.float32): "FloatStorage", np.dtype(np.float16): "HalfStorage",
            np.dtype(np.int64): "LongStorage", np.dtype(np.bool_): "BoolStorage"}


def _text(s: str) -> bytes:
    data = s.encode()
    return b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE


def _int(n: int) -> bytes:
    return b"J" + struct.pack("<i", n)  # BININT


def _ints(values) -> bytes:
    return b"(" + b"".join(_int(v) for v in values) + b"t"  # MARK ... TUPLE


def _state_dict_pickle(tensors: dict[str, tuple], numels: dict[str, int]) -> bytes:
    """``{name: (storage key, dtype, offset, size, stride)}`` -> the data.pkl that torch.save writes."""
    out = b"\x80\x02" + b"ccollections\nOrderedDict\n)R("  # PROTO 2; OrderedDict(); MARK
    for name, (key, dtype, offset, size, stride) in tensors.items():
        out += _text(name) + b"ctorch._utils\n_rebuild_tensor_v2\n("
        out += b"(" + _text("storage") + f"ctorch\n{_STORAGE[dtype]}\n".encode() + _text(key) + _text("cpu")
        out += _int(numels[key]) + b"tQ"  # the persistent id tuple, BINPERSID
        out += _int(offset) + _ints(size) + _ints(stride) + b"\x89" + b"ccollections\nOrderedDict\n)R"
        out += b"tR"  # the argument tuple, REDUCE
    return out + b"u."  # SETITEMS, STOP


def _c_strides(shape) -> tuple[int, ...]:
    return tuple(int(np.prod(shape[i + 1 :])) for i in range(len(shape)))


def write_zip_pth(path, arrays: dict[str, np.ndarray], shared: tuple[str, str] | None = None) -> None:
    """Writes ``arrays`` as a zip-format .pth file, as torch.save would. A 2-D array is stored transposed
    (strides (1, rows)); ``shared=(a, b)`` stores b in a's storage, after a (a storage offset)."""
    tensors, blobs = {}, {}
    for name, array in arrays.items():
        if shared and name == shared[1]:
            continue
        key = str(len(blobs))
        if array.ndim == 2:
            flat, stride = array.T.reshape(-1), (1, array.shape[0])
        else:
            flat, stride = array.reshape(-1), _c_strides(array.shape)
        tensors[name] = (key, array.dtype, 0, array.shape, stride)
        if shared and name == shared[0]:
            other = arrays[shared[1]]
            tensors[shared[1]] = (key, other.dtype, flat.size, other.shape, _c_strides(other.shape))
            flat = np.concatenate([flat, other.reshape(-1)])
        blobs[key] = flat.astype(flat.dtype.newbyteorder("<"))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", _state_dict_pickle(tensors, {k: b.size for k, b in blobs.items()}))
        archive.writestr("archive/byteorder", "little")
        for key, blob in blobs.items():
            archive.writestr(f"archive/data/{key}", blob.tobytes())
        archive.writestr("archive/version", "3\n")


# torchvision's squeezenet1_1 state_dict: names and shapes.
SQUEEZENET_FIRES = {3: (64, 16, 64), 4: (128, 16, 64), 6: (128, 32, 128), 7: (256, 32, 128),
                    9: (256, 48, 192), 10: (384, 48, 192), 11: (384, 64, 256), 12: (512, 64, 256)}


def squeezenet_state_dict(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    shapes = {"features.0.weight": (64, 3, 3, 3), "features.0.bias": (64,)}
    for i, (cin, squeeze, expand) in SQUEEZENET_FIRES.items():
        shapes |= {f"features.{i}.squeeze.weight": (squeeze, cin, 1, 1), f"features.{i}.squeeze.bias": (squeeze,),
                   f"features.{i}.expand1x1.weight": (expand, squeeze, 1, 1), f"features.{i}.expand1x1.bias": (expand,),
                   f"features.{i}.expand3x3.weight": (expand, squeeze, 3, 3), f"features.{i}.expand3x3.bias": (expand,)}
    shapes |= {"classifier.1.weight": (1000, 512, 1, 1), "classifier.1.bias": (1000,)}
    out = {}
    for name, shape in shapes.items():
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        scale = np.sqrt(2.0 / fan_in) if len(shape) > 1 else 0.01
        out[name] = (rng.standard_normal(shape) * scale).astype(np.float32)
    return out


# ------------------------------------------------------------------------------------------------
# The reader
# ------------------------------------------------------------------------------------------------


def test_zip_format_round_trips_dtypes_strides_offsets_and_scalars(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "conv.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "fc.weight": rng.standard_normal((5, 7)).astype(np.float32),  # stored transposed
        "fc.bias": rng.standard_normal(5).astype(np.float32),  # shares fc.weight's storage, at an offset
        "half": rng.standard_normal(6).astype(np.float16),
        "bn.num_batches_tracked": np.array(7, np.int64),
        "mask": np.array([True, False, True]),
    }
    path = tmp_path / "weights.pth"
    write_zip_pth(path, arrays, shared=("fc.weight", "fc.bias"))
    loaded = read_state_dict(path)
    assert list(loaded) == ["conv.weight", "fc.weight", "fc.bias", "half", "bn.num_batches_tracked", "mask"]
    for name, array in arrays.items():
        assert loaded[name].dtype == array.dtype and loaded[name].shape == array.shape, name
        np.testing.assert_array_equal(loaded[name], array, err_msg=name)
        assert loaded[name].flags.c_contiguous and loaded[name].flags.owndata


def test_legacy_format_reads_the_real_efficientnet_file():
    state = read_state_dict(EFFICIENTNET_FILE())
    assert len(state) == 296
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.1._depthwise_conv.weight"].shape == (96, 1, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    trainable = sum(a.size for k, a in state.items() if not k.endswith(buffers))
    assert trainable == 4_652_008
    assert all(np.isfinite(a).all() for a in state.values())


class _RunsCode:
    """Unpickling this calls os.system: what a malicious weight file does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _legacy_file(path, main_pickle: bytes) -> None:
    head = pickle.dumps(LEGACY_MAGIC, 2) + pickle.dumps(1001, 2) + pickle.dumps({"little_endian": True}, 2)
    path.write_bytes(head + main_pickle + pickle.dumps([], 2))


@pytest.mark.parametrize("container", ["zip", "legacy"])
def test_a_pickle_that_would_run_code_is_refused(tmp_path, container):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"weight": _RunsCode(marker)}, protocol=2)
    path = tmp_path / "evil.pth"
    if container == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", payload)
    else:
        _legacy_file(path, payload)
    with pytest.raises(UnsafePickleError, match=r"evil\.pth.*refused.*(posix|os)\.system"):
        read_state_dict(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "module, name", [("builtins", "eval"), ("torch", "load"), ("torch._utils", "_rebuild_qtensor")]
)
def test_every_name_outside_the_allowed_few_is_refused(tmp_path, module, name):
    path = tmp_path / "other.pth"
    _legacy_file(path, b"\x80\x02c" + f"{module}\n{name}\n".encode() + b")R.")
    with pytest.raises(UnsafePickleError, match=f"{module}.{name}"):
        read_state_dict(path)


def test_truncated_and_foreign_files_give_a_clear_error(tmp_path):
    good = tmp_path / "good.pth"
    write_zip_pth(good, {"w": np.ones((3, 3), np.float32)})
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    legacy_cut = tmp_path / "legacy_cut.pth"
    legacy_cut.write_bytes(EFFICIENTNET_FILE().read_bytes()[:5_000_000])
    text = tmp_path / "notes.pth"
    text.write_text("not weights")
    for path in (cut, legacy_cut, text):
        with pytest.raises(HubError, match=path.name):
            read_state_dict(path)
    with pytest.raises(HubError, match="no such weight file"):
        read_state_dict(tmp_path / "missing.pth")
    with pytest.raises(HubError, match="truncated"):
        read_state_dict(legacy_cut)


def test_torch_reads_what_the_test_writer_writes_and_the_reader_reads_torch_save(tmp_path):
    torch = pytest.importorskip("torch")
    arrays = {"a.weight": np.arange(12, dtype=np.float32).reshape(3, 4), "a.bias": np.arange(3, dtype=np.float32),
              "n": np.array(5, np.int64)}
    ours = tmp_path / "ours.pth"
    write_zip_pth(ours, arrays, shared=("a.weight", "a.bias"))
    loaded = torch.load(ours, weights_only=True)
    for name, array in arrays.items():
        np.testing.assert_array_equal(loaded[name].numpy(), array)
    theirs = tmp_path / "theirs.pth"
    torch.save({k: torch.from_numpy(v) for k, v in arrays.items()}, theirs)
    for name, array in read_state_dict(theirs).items():
        np.testing.assert_array_equal(array, arrays[name])


def test_flax_path_names_follow_the_pytorch_modules():
    assert flax_path("_blocks.3._expand_conv") == ("blocks_3", "expand_conv")
    assert flax_path("features.3.squeeze") == ("features_3", "squeeze")
    assert flax_path("_bn0") == ("bn0",)


# ------------------------------------------------------------------------------------------------
# SqueezeNet 1.1 from a zip .pth, and downloads
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def squeezenet_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("squeezenet") / "squeezenet1_1-random.pth"
    write_zip_pth(path, squeezenet_state_dict())
    return path


def test_squeezenet_converts_to_the_tree_of_a_fresh_init(squeezenet_file):
    variables = convert_state_dict(read_state_dict(squeezenet_file))
    # init's shapes, without computing its random arrays (eager init compiles each op: seconds)
    fresh = jax.eval_shape(SqueezeNet11().init, jax.random.key(0), jnp.zeros((1, 224, 224, 3)))
    assert jax.tree.structure(variables) == jax.tree.structure(fresh)
    assert jax.tree.map(np.shape, variables) == jax.tree.map(np.shape, fresh)


def test_squeezenet_loads_offline_from_a_weights_file_and_classifies(squeezenet_file, tmp_path):
    from PIL import Image

    from jaxnet.hub.classify import classify_files

    model = hub.load("squeezenet1_1", weights=squeezenet_file)
    assert model.preprocessing.resample == "bilinear" and len(model.class_names) == 1000
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (300, 400, 3), np.uint8)).save(tmp_path / "x.png")
    [result] = classify_files(model, [tmp_path / "x.png"], top=3)
    assert result.error is None and len(result.top) == 3
    probs = [p.probability for p in result.top]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6


@pytest.mark.parametrize("size, pooled", [(111, 55), (55, 27), (27, 13), (8, 4), (7, 3)])
def test_max_pool_uses_pytorchs_ceil_mode(size, pooled):
    from jaxnet.hub.squeezenet import max_pool_ceil

    x = jnp.arange(size * size, dtype=jnp.float32).reshape(1, size, size, 1)
    out = max_pool_ceil(x)
    assert out.shape == (1, pooled, pooled, 1)
    assert out[0, -1, -1, 0] == x[0, -1, -1, 0]  # the last, partial window holds the corner


def test_squeezenet_matches_the_same_network_in_pytorch(squeezenet_file):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    state = {k: torch.from_numpy(v) for k, v in squeezenet_state_dict().items()}

    def conv(x, name, **kw):
        return F.relu(F.conv2d(x, state[f"{name}.weight"], state[f"{name}.bias"], **kw))

    def fire(x, i):
        x = conv(x, f"features.{i}.squeeze")
        return torch.cat([conv(x, f"features.{i}.expand1x1"), conv(x, f"features.{i}.expand3x3", padding=1)], 1)

    def torch_squeezenet(x):  # torchvision's squeezenet1_1, in eval mode
        pool = functools.partial(F.max_pool2d, kernel_size=3, stride=2, ceil_mode=True)
        x = pool(conv(x, "features.0", stride=2))
        x = pool(fire(fire(x, 3), 4))
        x = pool(fire(fire(x, 6), 7))
        for i in (9, 10, 11, 12):
            x = fire(x, i)
        return conv(x, "classifier.1").mean((2, 3))

    x = np.random.default_rng(2).standard_normal((2, 224, 224, 3)).astype(np.float32)
    with torch.no_grad():
        expected = torch_squeezenet(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    variables = convert_state_dict(read_state_dict(squeezenet_file))
    got = np.asarray(jax.jit(SqueezeNet11().apply)(variables, x))
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_weights_of_another_model_are_refused_with_what_does_not_fit():
    with pytest.raises(HubError, match=r"do not fit the model.*missing.*another model"):
        hub.load("squeezenet1_1", weights=EFFICIENTNET_FILE())


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_download_fails_within_seconds_saying_what_to_do(monkeypatch):
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    spec = registry.MODELS["squeezenet1_1"]
    unreachable = sources.Download(f"http://127.0.0.1:{_closed_port()}/squeezenet1_1-b8a52dc0.pth", spec.source.sha256)
    monkeypatch.setitem(registry.MODELS, "squeezenet1_1", registry.dataclasses.replace(spec, source=unreachable))
    start = time.perf_counter()
    expected = r"no network.*download http://127\.0\.0\.1.*copy it to .*squeezenet1_1-b8a52dc0\.pth"
    with pytest.raises(HubError, match=expected):
        hub.load("squeezenet1_1")
    assert time.perf_counter() - start < 5


@pytest.fixture
def http_server(tmp_path, monkeypatch):
    """Serves tmp_path/www over HTTP on localhost; yields (folder, base url)."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "www"
    folder.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_is_checked_saved_once_and_converted(http_server, squeezenet_file, monkeypatch):
    folder, base = http_server
    data = squeezenet_file.read_bytes()
    (folder / "squeezenet1_1-test.pth").write_bytes(data)
    spec = registry.MODELS["squeezenet1_1"]

    bad = sources.Download(f"{base}/squeezenet1_1-test.pth", "0" * 64)
    monkeypatch.setitem(registry.MODELS, "squeezenet1_1", registry.dataclasses.replace(spec, source=bad))
    with pytest.raises(HubError, match="sha256.*expected 0000"):
        hub.load("squeezenet1_1")
    assert not (sources.cache_dir("hub", "downloads") / "squeezenet1_1-test.pth").exists()

    good = sources.Download(f"{base}/squeezenet1_1-test.pth", hashlib.sha256(data).hexdigest())
    monkeypatch.setitem(registry.MODELS, "squeezenet1_1", registry.dataclasses.replace(spec, source=good))
    model = hub.load("squeezenet1_1")
    saved = sources.cache_dir("hub", "downloads") / "squeezenet1_1-test.pth"
    assert saved.read_bytes() == data
    check_matches(model.variables, convert_state_dict(read_state_dict(squeezenet_file)), "test")
    (folder / "squeezenet1_1-test.pth").unlink()  # the server no longer has it: the cache must serve
    hub.load("squeezenet1_1")


def test_registry_sources_are_as_published():
    sq = registry.MODELS["squeezenet1_1"].source
    assert sq.url == "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth"
    assert sq.sha256.startswith("b8a52dc0")  # torch.hub's hash prefix in the file name
    eff = registry.MODELS["efficientnet_lite0"].source
    assert eff.sha256.startswith("57934424") and importlib.util.find_spec(eff.package) is not None
