"""Image files in, Fashion-MNIST-shaped arrays out: what ``jaxnet predict RUN_DIR IMAGE...`` reads.

:func:`load_grayscale_28` reads any files Pillow can decode and returns them as uint8 (N, 28, 28, 1),
together with one error message per file that could not be read and one warning line per image that had
to be converted. Nothing is printed and nothing goes through ``warnings.warn``: the caller (the CLI)
decides how to show them, one line per file, and the readable images are returned whatever the others do.

Conversions, each reported in the image's warning:

- colour (RGB, palette, CMYK, ...) -> grayscale with Pillow's ITU-R 601-2 luma ``L = 0.299 R + 0.587 G +
  0.114 B``; an alpha channel is composited over black (the Fashion-MNIST background); 16-bit grayscale is
  scaled to 8 bits;
- other sizes -> the longest side resized to 28 (Lanczos), the aspect ratio kept, and the short side
  padded to 28, centred, with the median of the resized image's border pixels;
- only the first frame of an animated or multi-page file; EXIF orientation is applied.

Fashion-MNIST articles are light on a black background. Images are never inverted, but one whose border is
mostly light gets a warning saying so, since its prediction will mean little.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

SIZE = 28
"""Height and width of the images :func:`load_grayscale_28` returns."""


class ImageReadError(ValueError):
    """An image file that cannot be read; the message names the file."""


class LoadedImages(NamedTuple):
    """What :func:`load_grayscale_28` returns.

    Attributes:
      images: uint8 (N, 28, 28, 1), one per readable path, in the order given: ``images[i]`` belongs to
        the i-th path that is not in ``errors``.
      errors: path -> message, for each file that could not be read. The message names the file.
      warnings: path -> one line naming the file and what was converted, for each image not already
        28x28 8-bit grayscale, or with a light background.
    """

    images: np.ndarray
    errors: dict[str, str]
    warnings: dict[str, str]


def read_image(path: str | os.PathLike) -> Image.Image:
    """Opens and fully decodes one image file with Pillow: its first frame, EXIF orientation applied.

    Raises :class:`ImageReadError` with a message that names the file and says what is wrong (missing,
    a folder, not an image, truncated, too large).
    """
    name = os.fsdecode(os.fspath(path))
    try:
        with Image.open(path) as opened:
            frames = getattr(opened, "n_frames", 1)
            opened.seek(0)
            opened.load()
            image = ImageOps.exif_transpose(opened)  # a decoded copy, independent of the file
            image.info["n_frames"] = frames
            return image
    except FileNotFoundError:
        raise ImageReadError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ImageReadError(f"{name}: is a folder, not an image file") from None
    except PermissionError:
        raise ImageReadError(f"{name}: permission denied") from None
    except UnidentifiedImageError:
        empty = os.path.isfile(path) and os.path.getsize(path) == 0
        what = "an empty file" if empty else "not an image format Pillow can read"
        raise ImageReadError(f"{name}: {what}") from None
    except Image.DecompressionBombError as error:
        raise ImageReadError(f"{name}: too large to decode safely ({error})") from None
    except OSError as error:
        raise ImageReadError(f"{name}: could not be decoded, it may be truncated or corrupt ({error})") from None
    except Exception as error:  # any other failure inside a format plugin: still this file's error
        raise ImageReadError(f"{name}: could not be read ({type(error).__name__}: {error})") from None


def _grayscale_uint8(image: Image.Image) -> tuple[np.ndarray, list[str]]:
    """Any Pillow image -> uint8 (H, W) grayscale array, and notes on what was converted."""
    mode = image.mode
    if mode == "L":
        return np.asarray(image, np.uint8), []
    if mode == "1":
        return np.asarray(image.convert("L"), np.uint8), []
    if mode.startswith("I;16"):
        values = np.asarray(image).astype(np.float64) / 257.0
        return np.clip(np.rint(values), 0, 255).astype(np.uint8), ["16-bit grayscale scaled to 8 bits"]
    if mode in ("I", "F"):
        values = np.asarray(image).astype(np.float64)
        top = float(values.max()) if values.size else 0.0
        if mode == "F" and top <= 1.0:
            values, note = values * 255.0, "float grayscale in [0, 1] scaled to 8 bits"
        elif top > 255.0:
            values, note = values / 257.0, f"{mode} grayscale scaled from 16 to 8 bits"
        else:
            note = f"{mode} grayscale converted to 8 bits"
        return np.clip(np.rint(values), 0, 255).astype(np.uint8), [note]

    has_alpha = mode in ("LA", "La", "PA", "RGBA", "RGBa") or (mode == "P" and "transparency" in image.info)
    if mode in ("LA", "La"):
        gray = np.asarray(image.convert("LA"))[..., 0].astype(np.float64)
        notes = []
    else:
        gray = np.asarray(image.convert("RGB").convert("L")).astype(np.float64)
        notes = [f"colour ({mode}) converted to grayscale"]
    if has_alpha:
        alpha = np.asarray(image.convert("RGBA" if mode not in ("LA", "La") else "LA"))[..., -1]
        gray = gray * (alpha.astype(np.float64) / 255.0)
        notes.append("transparency composited over black")
    return np.clip(np.rint(gray), 0, 255).astype(np.uint8), notes


def _border_median(gray: np.ndarray) -> int:
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    return int(np.median(border))


def to_grayscale_28(image: Image.Image) -> tuple[np.ndarray, list[str]]:
    """One Pillow image -> uint8 (28, 28, 1) and the notes on what was converted (empty if nothing was).

    See the module docstring for the conversions.
    """
    gray, notes = _grayscale_uint8(image)
    frames = image.info.get("n_frames", 1)
    if frames > 1:
        notes.append(f"{frames} frames, the first used")
    h, w = gray.shape
    if (h, w) != (SIZE, SIZE):
        scale = SIZE / max(h, w)
        new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
        resized = np.asarray(Image.fromarray(gray, "L").resize((new_w, new_h), Image.Resampling.LANCZOS))
        fill = _border_median(resized)
        canvas = np.full((SIZE, SIZE), fill, np.uint8)
        top, left = (SIZE - new_h) // 2, (SIZE - new_w) // 2
        canvas[top : top + new_h, left : left + new_w] = resized
        if (new_w, new_h) == (SIZE, SIZE):
            notes.append(f"resized from {w}x{h} to 28x28")
        else:
            notes.append(f"resized from {w}x{h} to {new_w}x{new_h} (aspect ratio kept) and padded to 28x28")
        gray = canvas
    background = _border_median(gray)
    if background > 127:
        notes.append(
            f"light background (border median {background}): Fashion-MNIST articles are light on black, "
            f"so invert the image for a meaningful prediction"
        )
    return gray[:, :, None], notes


def load_grayscale_28(paths: Iterable[str | os.PathLike]) -> LoadedImages:
    """Reads image files as Fashion-MNIST-shaped arrays; unreadable files do not stop the others.

    Args:
      paths: image files of any size and mode Pillow reads (PNG, JPEG, GIF, BMP, TIFF, WebP, ...).

    Returns:
      ``LoadedImages(images, errors, warnings)`` (a named tuple): images uint8 (N, 28, 28, 1) for the N
      readable files, in order; errors and warnings keyed by the path as a string, each message a single
      line that starts with the path. See :class:`LoadedImages`.

    Raises ``TypeError`` if ``paths`` is one path rather than a list of them.
    """
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise TypeError(f"paths must be a list of image paths, got the single path {paths!r}; pass [path]")
    images: list[np.ndarray] = []
    errors: dict[str, str] = {}
    warnings: dict[str, str] = {}
    for path in paths:
        name = os.fsdecode(os.fspath(path))
        try:
            image = read_image(path)
        except ImageReadError as error:
            errors[name] = str(error)
            continue
        try:
            array, notes = to_grayscale_28(image)
        except Exception as error:  # a mode Pillow decodes but cannot convert (rare): this file's error only
            errors[name] = f"{name}: could not convert its {image.mode} pixels to grayscale ({error})"
            continue
        images.append(array)
        if notes:
            warnings[name] = f"{name}: " + "; ".join(notes)
    stacked = np.stack(images) if images else np.zeros((0, SIZE, SIZE, 1), np.uint8)
    return LoadedImages(stacked, errors, warnings)
