"""Seconds per epoch of the two-layer net on Fashion-MNIST: jaxnet vs NumPy vs jax.grad, in one run.

784 -> 256 -> 10, batch 128, SGD (lr 0.1, L2 1e-4), all 60,000 training images. Versions, measured in
interleaved rounds (A B C D A B C D ...) since this machine's speed drifts:

- jaxnet: the training loop's compiled chunk (hand-written backward, data on the device, steps scanned);
- jax.grad: the same loop with gradients from jax.value_and_grad instead of the hand-written pass;
- jitted step per batch: the hand-written step jitted alone, batches sliced on the host and sent each step;
- NumPy: the assignment's way, hand-written forward/backward in NumPy, batches sliced on the host.

It also measures a float32 matmul (2048 x 2048, jitted) in the same rounds and reports each version's
GFLOP/s as a share of it. Run: .venv/bin/python experiments/bench_two_layer.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import jaxnet  # noqa: F401  (sets XLA's CPU flags before jax is imported)
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnet import data, train
from jaxnet.models import Classifier, two_layer

HIDDEN, CLASSES, BATCH, LR, REG = 256, 10, 128, 0.1, 1e-4


def flops_per_image(din: int) -> int:
    """Forward (2 matmuls) and backward (grad_W2, grad_a, grad_W1; no gradient for the images)."""
    forward = 2 * din * HIDDEN + 2 * HIDDEN * CLASSES
    backward = 2 * HIDDEN * CLASSES * 2 + 2 * din * HIDDEN
    return forward + backward


def numpy_epoch(params, x, y, order):
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    dataset = data.load_dataset("fashion_mnist", val_size=0)
    images, labels = dataset.x_train, dataset.y_train
    n, din = len(images), int(np.prod(images.shape[1:]))
    pixels_np = (images.reshape(n, din).astype(np.float32) / 255.0)

    hand = two_layer.classifier(dataset.image_shape, CLASSES, HIDDEN, reg=REG)

    def autodiff_loss(params, x, y):
        scores = two_layer.forward(params, x)[0]
        data_loss = optax.softmax_cross_entropy_with_integer_labels(scores, y).mean()
        return data_loss + 0.5 * REG * (jnp.sum(params["W1"] ** 2) + jnp.sum(params["W2"] ** 2))

    auto = Classifier("two_layer", hand.init, hand.apply, jax.value_and_grad(autodiff_loss), hand.preprocess)
    optimizer = optax.sgd(LR)
    mesh = train.data_mesh()
    device_images, device_labels = jax.device_put(images), jax.device_put(labels)

    def loop_epoch(classifier):
        chunk = train.make_train_chunk(classifier, optimizer)
        state = train.init_state(classifier, optimizer, jax.random.key(0))

        def run(epoch):
            nonlocal state
            order = np.random.default_rng([0, epoch]).permutation(n).astype(np.int32)
            for block in train.epoch_blocks(order, BATCH, 64):
                state, losses = chunk(state, device_images, device_labels, block)
            return losses

        return run

    step = train.make_train_step(hand, optimizer)
    step_state = train.init_state(hand, optimizer, jax.random.key(0))

    def per_batch_epoch(epoch):
        nonlocal step_state
        order = np.random.default_rng([0, epoch]).permutation(n)
        for start in range(0, n, BATCH):
            idx = order[start:start + BATCH]
            step_state, loss = step(step_state, images[idx], labels[idx])
        return loss

    np_params = {k: np.array(v) for k, v in hand.init(jax.random.key(0)).items()}

    def np_epoch(epoch):
        numpy_epoch(np_params, pixels_np, labels, np.random.default_rng([0, epoch]).permutation(n))

    a = jnp.ones((2048, 2048), jnp.float32)
    matmul = jax.jit(lambda a: a @ a)

    def matmul_rate():
        matmul(a).block_until_ready()
        start = time.perf_counter()
        for _ in range(10):
            out = matmul(a)
        out.block_until_ready()
        return 10 * 2 * 2048**3 / (time.perf_counter() - start) / 1e9

    versions = {
        "jaxnet (hand-written, loop's compiled chunk)": loop_epoch(hand),
        "jax.grad (same loop)": loop_epoch(auto),
        "jitted step per batch, host batches": per_batch_epoch,
        "NumPy, hand-written": np_epoch,
    }
    for fn in versions.values():  # compile and warm up
        jax.block_until_ready(fn(1000))

    seconds = {name: [] for name in versions}
    rates = []
    for r in range(args.rounds):
        rates.append(matmul_rate())
        for name, fn in versions.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(r))
            seconds[name].append(time.perf_counter() - start)
    rates.append(matmul_rate())

    gflop = flops_per_image(din) * n / 1e9
    peak = statistics.median(rates)
    print(f"two-layer {din} -> {HIDDEN} -> {CLASSES}, batch {BATCH}, {n} images, {gflop:.1f} GFLOP per epoch; "
          f"{jax.devices()[0].device_kind}, median of {args.rounds} interleaved rounds")
    print(f"float32 matmul 2048x2048 (jit): {peak:.0f} GFLOP/s (range {min(rates):.0f}-{max(rates):.0f}); "
          f"FLOP floor {gflop / peak:.2f} s per epoch")
    print("| version | s per epoch | GFLOP/s | % of matmul | speed vs NumPy |")
    print("| --- | ---: | ---: | ---: | ---: |")
    numpy_s = statistics.median(seconds["NumPy, hand-written"])
    for name, times in seconds.items():
        t = statistics.median(times)
        print(f"| {name} | {t:.3f} | {gflop / t:.0f} | {100 * gflop / t / peak:.0f}% | {numpy_s / t:.2f}x |")


if __name__ == "__main__":
    main()
