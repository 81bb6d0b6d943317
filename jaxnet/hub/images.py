"""Reading photos with Pillow, and each model's preprocessing.

:func:`read_rgb` turns a file of any Pillow mode (1, L, LA, P, RGB, RGBA, CMYK, I;16, I, F, ...) and any
size into an upright RGB image: decoded by :func:`jaxnet.images.read_image` (EXIF orientation applied,
first frame, errors that name the file), transparency composited onto white, 16- and 32-bit grey scaled
to 8 bits. :class:`Preprocessing` crops and resizes it on the host to a uint8
(size, size, 3) array; the float normalization runs on the device, inside the model's jitted function.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
from PIL import Image

from jaxnet.images import ImageReadError, read_image

_RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How a model wants its images.

    A centred square of side ``crop_fraction * min(height, width)`` is resized to ``size`` x ``size``
    (``resample``): the same as resizing the short side to ``size / crop_fraction`` and cropping the
    centre ``size`` x ``size``. The model then sees ``(pixel - mean) / std`` per RGB channel, pixels in 0-255.
    """

    size: int
    crop_fraction: float
    resample: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __post_init__(self) -> None:
        if self.resample not in _RESAMPLE:
            raise ValueError(f"resample must be one of {', '.join(_RESAMPLE)}, got {self.resample!r}")
        if not 0 < self.crop_fraction <= 1:
            raise ValueError(f"crop_fraction must be in (0, 1], got {self.crop_fraction}")

    def crop_box(self, width: int, height: int) -> tuple[float, float, float, float]:
        """The centred square the model sees, as (left, top, right, bottom) in the image's pixels."""
        side = self.crop_fraction * min(width, height)
        left, top = (width - side) / 2, (height - side) / 2
        return left, top, left + side, top + side

    def prepare(self, image: Image.Image) -> np.ndarray:
        """An RGB image of any size -> the model's uint8 input (size, size, 3), cropped and resized."""
        box = self.crop_box(*image.size)
        resized = image.resize((self.size, self.size), _RESAMPLE[self.resample], box=box)
        return np.asarray(resized, dtype=np.uint8)


def read_rgb(path: str | os.PathLike) -> Image.Image:
    """Reads an image file as an upright 8-bit RGB Pillow image (decoding by :func:`jaxnet.images.read_image`).

    Raises:
      ImageReadError: the file is missing, is not an image, is truncated or cannot be decoded; the
        message names the file.
    """
    image = read_image(path)
    try:
        return to_rgb(image)
    except (ValueError, OSError) as error:  # a mode Pillow decodes but cannot convert (rare)
        raise ImageReadError(f"{os.fspath(path)}: cannot convert its {image.mode} pixels to RGB ({error})") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB: alpha composited onto white, 16/32-bit grey scaled to 0-255."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        image = Image.fromarray(_grey_to_uint8(np.asarray(image), image.mode))  # 2-D uint8: mode L
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("LA", "La", "PA", "RGBa"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("RGB") if image.mode != "RGB" else image


def _grey_to_uint8(pixels: np.ndarray, mode: str) -> np.ndarray:
    pixels = pixels.astype(np.float64)
    if mode.startswith("I;16"):
        top = 65535.0
    elif mode == "F" and np.nanmax(pixels, initial=0) <= 1.0:
        top = 1.0  # float images in [0, 1]
    else:  # 32-bit integer or float: 8-bit values stay as they are, wider ones are scaled to their range
        high = np.nanmax(pixels, initial=0)
        top = 255.0 if high <= 255 else (65535.0 if high <= 65535 else high)
    return np.clip(np.nan_to_num(pixels / top * 255.0) + 0.5, 0, 255).astype(np.uint8)
