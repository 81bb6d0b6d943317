"""Seconds per epoch of the two-layer net on Fashion-MNIST: jaxnet vs jax.grad vs NumPy, in one run.

784 -> 256 -> 10, batch 128, SGD (lr 0.1, L2 1e-4), all 60,000 training images. Versions, measured in
interleaved rounds (one epoch each, their order rotated every round), since this machine's speed drifts:

- jaxnet: what ``jaxnet train two-layer`` runs: the loop's compiled chunk (``make_train_chunk``, hand-written
  backward, data on the device, the config's ``steps_per_call`` steps scanned per call, ``epoch_blocks``);
- jax.grad: the same loop with gradients from ``jax.value_and_grad`` instead of the hand-written pass;
- jitted step per batch: the hand-written step (``make_train_step``) alone, batches sliced on the host;
- NumPy: the assignment's way, hand-written forward/backward in NumPy, batches sliced on the host.

Every timed epoch comes right after an untimed epoch of the same version (``interleave``'s ``lead_in``):
the seconds per epoch of a training run past its first epoch, not slowed by the threads of the version
that ran before (NumPy's OpenBLAS threads keep spinning after its last call).

A float32 2048x2048 matmul (jitted) is probed in the same rounds; each version's GFLOP/s is reported as a
share of it. Targets (issue 3): jaxnet at least 1.6x NumPy's speed, at 60% or more of the matmul rate.

Run: ``jaxnet bench two_layer`` or ``python -m jaxnet.bench.two_layer [--rounds 5] [--limit N]``.
"""

from __future__ import annotations

import dataclasses

import jaxnet  # noqa: F401  (sets XLA's CPU flags before jax is imported)

import numpy as np

from jaxnet.bench import common
from jaxnet.bench.common import BenchResult, Target

NAME = "two_layer"
TITLE = "Two-layer net: seconds per epoch, jaxnet's training loop vs jax.grad vs NumPy"
HIDDEN, CLASSES, BATCH, LR, REG = 256, 10, 128, 0.1, 1e-4
DEFAULTS = {"rounds": 5, "limit": None, "steps_per_call": None}
QUICK = {"rounds": 2, "limit": 6_400}
TARGET_SPEEDUP, TARGET_SHARE = 1.6, 60.0
JAXNET = "jaxnet (hand-written, the loop's compiled chunk)"
NUMPY = "NumPy, hand-written"


def flops_per_image(din: int) -> int:
    """Forward (2 matmuls) and backward (grad_W2, grad_a, grad_W1; no gradient for the images)."""
    forward = 2 * din * HIDDEN + 2 * HIDDEN * CLASSES
    backward = 2 * HIDDEN * CLASSES * 2 + 2 * din * HIDDEN
    return forward + backward


def numpy_epoch(params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, order: np.ndarray) -> None:
    """One epoch of SGD in NumPy with the hand-written backward pass, updating ``params`` in place."""
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    for start in range(0, len(order), BATCH):
        idx = order[start:start + BATCH]
        X, yb = x[idx], y[idx]
        n = len(idx)
        h = X @ W1 + b1
        a = np.maximum(h, 0)
        s = a @ W2 + b2
        s -= s.max(axis=1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(n), yb] -= 1
        ds = p / n
        dW2 = a.T @ ds + REG * W2
        db2 = ds.sum(0)
        da = ds @ W2.T
        da[h <= 0] = 0
        dW1 = X.T @ da + REG * W1
        db1 = da.sum(0)
        W1 -= LR * dW1
        b1 -= LR * db1
        W2 -= LR * dW2
        b2 -= LR * db2


def run(quick: bool = False, **options) -> BenchResult:
    """Times the four versions; options: rounds, limit (first N training images), steps_per_call."""
    import jax
    import jax.numpy as jnp
    import optax

    from jaxnet import configs, data, train
    from jaxnet.models import Classifier, two_layer

    clock = common.Stopwatch()
    o = common.settle(NAME, DEFAULTS, QUICK, quick, options)
    # The set-up (plain SGD, as the NumPy version), run the way the loop runs the two-layer config.
    config = dataclasses.replace(configs.two_layer(), hidden_dim=HIDDEN, reg=REG, optimizer="sgd", learning_rate=LR,
                                 weight_decay=0.0, batch_size=BATCH,
                                 **({"steps_per_call": o["steps_per_call"]} if o["steps_per_call"] else {}))
    o["steps_per_call"] = config.steps_per_call
    dataset = data.load_dataset("fashion_mnist", val_size=0)
    images, labels = dataset.x_train[:o["limit"]], dataset.y_train[:o["limit"]]
    n, din = len(images), int(np.prod(images.shape[1:]))
    pixels = images.reshape(n, din).astype(np.float32) / 255.0

    hand = two_layer.classifier(dataset.image_shape, CLASSES, HIDDEN, reg=REG)

    def autodiff_loss(params, x, y):
        scores = two_layer.forward(params, x)[0]
        data_loss = optax.softmax_cross_entropy_with_integer_labels(scores, y).mean()
        return data_loss + 0.5 * REG * (jnp.sum(params["W1"] ** 2) + jnp.sum(params["W2"] ** 2))

    auto = Classifier("two_layer", hand.init, hand.apply, jax.value_and_grad(autodiff_loss), hand.preprocess)
    optimizer = train.make_optimizer(config)
    device_images, device_labels = jax.device_put(images), jax.device_put(labels)

    def order(epoch: int) -> np.ndarray:
        return np.random.default_rng([0, epoch]).permutation(n).astype(np.int32)

    def loop_epoch(classifier):
        chunk = train.make_train_chunk(classifier, optimizer, unroll=config.unroll)
        state = train.init_state(classifier, optimizer, jax.random.key(0))

        def epoch(r):
            nonlocal state
            for block in train.epoch_blocks(order(r), BATCH, config.steps_per_call):
                state, losses = chunk(state, device_images, device_labels, block)
                losses = np.asarray(losses)  # as fit() does after every call (it checks the loss)
            return losses

        return epoch

    step = train.make_train_step(hand, optimizer)
    step_state = train.init_state(hand, optimizer, jax.random.key(0))

    def per_batch_epoch(r):
        nonlocal step_state
        idx = order(r)
        for start in range(0, n, BATCH):
            batch = idx[start:start + BATCH]
            step_state, loss = step(step_state, images[batch], labels[batch])
        return loss

    np_params = {k: np.array(v) for k, v in hand.init(jax.random.key(0)).items()}

    def np_epoch(r):
        numpy_epoch(np_params, pixels, labels, order(r))

    versions = {
        JAXNET: loop_epoch(hand),
        "jax.grad (the same loop)": loop_epoch(auto),
        "jitted step per batch, host batches": per_batch_epoch,
        NUMPY: np_epoch,
    }
    common.progress(f"{NAME}: compiling and warming up (one epoch each)")
    for fn in versions.values():
        jax.block_until_ready(fn(1000))
    probe = common.MatmulProbe(calls=1 if quick else 3)
    probe()
    common.progress(f"{NAME}: {o['rounds']} interleaved rounds")
    timings = common.interleave(versions, o["rounds"], probe, lead_in=True)

    gflop = flops_per_image(din) * n / 1e9
    peak = probe.median()
    lines = [
        f"{din} -> {HIDDEN} -> {CLASSES}, batch {BATCH}, {n:,} Fashion-MNIST images, SGD lr {LR}, L2 {REG}; "
        f"{gflop:.1f} GFLOP per epoch; jaxnet's loop runs {config.steps_per_call} steps per compiled call. "
        f"Median of {o['rounds']} interleaved rounds, each timed epoch right after an untimed one of the same "
        f"version. {probe.summary()}; FLOP floor {gflop / peak:.2f} s per epoch."
        + common.busy_warning(clock.load, "NumPy (OpenBLAS)", "OPENBLAS_NUM_THREADS=1"),
        "",
        "| version | s per epoch | GFLOP/s | % of matmul | speed vs NumPy |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    numpy_s = timings.median(NUMPY)
    for name in versions:
        t = timings.median(name)
        lines.append(f"| {name} | {t:.3f} | {gflop / t:.0f} | {100 * gflop / t / peak:.0f}% | {numpy_s / t:.2f}x |")
    speedup = numpy_s / timings.median(JAXNET)
    share = 100 * gflop / timings.median(JAXNET) / peak
    return BenchResult(
        name=NAME,
        title=TITLE,
        markdown="\n".join(lines),
        ratios={
            "jaxnet / NumPy speed": speedup,
            "jaxnet % of the matmul rate": share,
            "jax.grad / jaxnet time (same loop)": timings.median("jax.grad (the same loop)") / timings.median(JAXNET),
            "per-batch step / jaxnet time": timings.median("jitted step per batch, host batches")
            / timings.median(JAXNET),
            # What the speed target asks of the hardware, as a share of the probe.
            f"% of the matmul rate that {TARGET_SPEEDUP:g}x NumPy takes": 100 * gflop / (numpy_s / TARGET_SPEEDUP) / peak,
        },
        targets=[Target("jaxnet / NumPy speed", speedup, TARGET_SPEEDUP),
                 Target("jaxnet share of the matmul rate", share, TARGET_SHARE, unit="%")],
        options=o,
        quick=quick,
        **clock.stamp(),
    )


def main(argv: list[str] | None = None) -> int:
    parser = common.parser(__doc__)
    parser.add_argument("--rounds", type=int, default=None, help=f"interleaved epochs per version "
                        f"(default: {DEFAULTS['rounds']})")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training images "
                        "(default: all 60,000)")
    parser.add_argument("--steps-per-call", type=int, default=None,
                        help="steps per compiled call of the loop (default: jaxnet.configs.two_layer()'s)")
    return common.run_main(run, parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
