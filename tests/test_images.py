"""jaxnet.images: image files of any kind to uint8 (N, 28, 28, 1), with per-file errors and warnings."""

import numpy as np
import pytest
from PIL import Image

from jaxnet.images import ImageReadError, LoadedImages, load_grayscale_28, read_image, to_grayscale_28


def _article(seed=0):
    """A 28x28 uint8 image like Fashion-MNIST's: a light blob on black."""
    rng = np.random.default_rng(seed)
    image = np.zeros((28, 28), np.uint8)
    image[6:22, 8:20] = rng.integers(100, 256, size=(16, 12))
    return image


def _save(path, array):
    Image.fromarray(array).save(path)
    return str(path)


def test_grayscale_28_is_read_exactly_without_warning(tmp_path):
    a, b = _article(0), _article(1)
    paths = [_save(tmp_path / "a.png", a), _save(tmp_path / "b.bmp", b)]
    images, errors, warnings = load_grayscale_28(paths)
    assert images.dtype == np.uint8 and images.shape == (2, 28, 28, 1)
    np.testing.assert_array_equal(images[..., 0], np.stack([a, b]))
    assert errors == {} and warnings == {}


def test_colour_is_converted_to_luma_with_a_warning(tmp_path):
    rgb = np.zeros((28, 28, 3), np.uint8)
    rgb[4:24, 4:24] = (200, 100, 50)
    path = _save(tmp_path / "colour.png", rgb)
    result = load_grayscale_28([path])
    assert isinstance(result, LoadedImages)
    luma = round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)
    assert abs(int(result.images[0, 10, 10, 0]) - luma) <= 1
    assert result.images[0, 0, 0, 0] == 0
    assert result.warnings == {path: f"{path}: colour (RGB) converted to grayscale"}


def test_transparency_is_composited_over_black(tmp_path):
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., :3] = 255  # white everywhere, but only the centre is opaque
    rgba[10:18, 10:18, 3] = 255
    path = _save(tmp_path / "cutout.png", rgba)
    images, _, warnings = load_grayscale_28([path])
    assert images[0, 0, 0, 0] == 0 and images[0, 12, 12, 0] == 255
    assert "transparency composited over black" in warnings[path]


def test_other_sizes_are_resized_with_a_warning(tmp_path):
    big = np.kron(_article(), np.ones((2, 2), np.uint8))  # 56x56, each pixel a 2x2 block
    path = _save(tmp_path / "big.png", big)
    images, _, warnings = load_grayscale_28([path])
    assert images.shape == (1, 28, 28, 1)
    assert np.abs(images[0, ..., 0].astype(int) - _article().astype(int)).mean() < 20
    assert warnings == {path: f"{path}: resized from 56x56 to 28x28"}


def test_aspect_ratio_is_kept_and_the_short_side_padded(tmp_path):
    wide = np.zeros((30, 60), np.uint8)
    wide[5:25, 10:50] = 255
    path = _save(tmp_path / "wide.png", wide)
    images, _, warnings = load_grayscale_28([path])
    image = images[0, ..., 0]
    assert warnings[path] == f"{path}: resized from 60x30 to 28x14 (aspect ratio kept) and padded to 28x28"
    assert image[:7].max() == 0 and image[21:].max() == 0  # padding above and below, with the black border
    assert image[14, 14] > 200


def test_light_background_is_warned_about_not_inverted(tmp_path):
    dark_on_light = 255 - _article()
    path = _save(tmp_path / "photo.png", dark_on_light)
    images, _, warnings = load_grayscale_28([path])
    np.testing.assert_array_equal(images[0, ..., 0], dark_on_light)
    assert "light background (border median 255)" in warnings[path]
    assert "invert the image" in warnings[path]


def test_16_bit_grayscale_is_scaled(tmp_path):
    deep = (_article().astype(np.uint16) * 257).astype(np.uint16)
    path = _save(tmp_path / "deep.png", deep)
    images, _, warnings = load_grayscale_28([path])
    np.testing.assert_array_equal(images[0, ..., 0], _article())
    assert "16-bit grayscale scaled to 8 bits" in warnings[path]


def test_first_frame_of_an_animation(tmp_path):
    first, second = _article(0), _article(1)
    path = str(tmp_path / "anim.gif")
    Image.fromarray(first).save(path, save_all=True, append_images=[Image.fromarray(second)])
    images, _, warnings = load_grayscale_28([path])
    assert np.abs(images[0, ..., 0].astype(int) - first.astype(int)).max() <= 8  # GIF palette rounding
    assert "2 frames, the first used" in warnings[path]


def test_exif_orientation_is_applied(tmp_path):
    image = Image.fromarray(_article())
    exif = Image.Exif()
    exif[0x0112] = 3  # rotated 180 degrees
    path = str(tmp_path / "rotated.png")
    image.save(path, exif=exif)
    images, _, _ = load_grayscale_28([path])
    np.testing.assert_array_equal(images[0, ..., 0], _article()[::-1, ::-1])


def test_unreadable_files_are_errors_and_the_others_still_load(tmp_path):
    good = _save(tmp_path / "good.png", _article())
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    truncated = tmp_path / "cut.png"
    Image.fromarray(_article(2)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:80])
    folder = tmp_path / "folder.png"
    folder.mkdir()
    missing = tmp_path / "missing.png"
    colour = _save(tmp_path / "colour.png", np.zeros((28, 28, 3), np.uint8))

    paths = [str(text), good, str(empty), str(truncated), str(folder), str(missing), colour]
    images, errors, warnings = load_grayscale_28(paths)
    assert images.shape == (2, 28, 28, 1)  # good.png, then colour.png
    np.testing.assert_array_equal(images[0, ..., 0], _article())
    assert [p for p in paths if p not in errors] == [good, colour]
    assert errors == {
        str(text): f"{text}: not an image format Pillow can read",
        str(empty): f"{empty}: an empty file",
        str(truncated): errors[str(truncated)],
        str(folder): f"{folder}: is a folder, not an image file",
        str(missing): f"{missing}: no such file",
    }
    assert errors[str(truncated)].startswith(f"{truncated}: could not be decoded, it may be truncated or corrupt")
    assert list(warnings) == [colour]


def test_read_image_raises_naming_the_file(tmp_path):
    with pytest.raises(ImageReadError, match=r"nothing\.png: no such file"):
        read_image(tmp_path / "nothing.png")
    assert issubclass(ImageReadError, ValueError)


def test_path_objects_and_an_empty_list(tmp_path):
    path = tmp_path / "a.png"
    _save(path, _article())
    images, errors, warnings = load_grayscale_28([path])
    assert images.shape == (1, 28, 28, 1) and errors == {} and warnings == {}
    images, errors, warnings = load_grayscale_28([])
    assert images.shape == (0, 28, 28, 1) and images.dtype == np.uint8


def test_a_single_path_is_refused(tmp_path):
    with pytest.raises(TypeError, match=r"list of image paths.*pass \[path\]"):
        load_grayscale_28(str(tmp_path / "a.png"))


def test_to_grayscale_28_on_an_image_in_memory():
    array, notes = to_grayscale_28(Image.new("RGB", (10, 10), (255, 0, 0)))
    assert array.shape == (28, 28, 1) and array.dtype == np.uint8
    assert notes == ["colour (RGB) converted to grayscale", "resized from 10x10 to 28x28"]
    assert abs(int(array[14, 14, 0]) - 76) <= 1  # 0.299 * 255
