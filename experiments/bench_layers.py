"""Hand-written backward pass vs jax.grad for fc -> relu -> fc -> softmax loss, CIFAR-10-sized.

Both are jitted; times are medians of interleaved rounds (A B A B ...) so that the machine's drift hits
both alike. Run: .venv/bin/python experiments/bench_layers.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import statistics
import time

import jaxnet  # noqa: F401  (sets XLA's CPU flags before jax is imported)
import jax
import jax.numpy as jnp

from jaxnet import layers


def hand_written(params, x, y):
    w1, b1, w2, b2 = params
    h, fc1 = layers.fc_forward(x, w1, b1)
    a, relu = layers.relu_forward(h)
    scores, fc2 = layers.fc_forward(a, w2, b2)
    loss, grad_scores = layers.softmax_loss(scores, y)
    grad_a, grad_w2, grad_b2 = layers.fc_backward(grad_scores, fc2)
    grad_h = layers.relu_backward(grad_a, relu)
    _, grad_w1, grad_b1 = layers.fc_backward(grad_h, fc1)
    return loss, (grad_w1, grad_b1, grad_w2, grad_b2)


def plain_loss(params, x, y):
    w1, b1, w2, b2 = params
    scores = jax.nn.relu(x @ w1 + b1) @ w2 + b2
    return -jnp.mean(jax.nn.log_softmax(scores)[jnp.arange(x.shape[0]), y])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--din", type=int, default=3072)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=20, help="calls per timing within a round")
    args = parser.parse_args()

    k = jax.random.split(jax.random.key(0), 5)
    params = (
        0.01 * jax.random.normal(k[0], (args.din, args.hidden)),
        jnp.zeros(args.hidden),
        0.01 * jax.random.normal(k[1], (args.hidden, args.classes)),
        jnp.zeros(args.classes),
    )
    x = jax.random.normal(k[2], (args.n, args.din))
    y = jax.random.randint(k[3], (args.n,), 0, args.classes)

    candidates = {
        "hand-written forward + backward (jit)": jax.jit(hand_written),
        "jax.value_and_grad (jit)": jax.jit(jax.value_and_grad(plain_loss)),
    }
    results = {name: fn(params, x, y) for name, fn in candidates.items()}  # compile, and compare
    (loss_a, grads_a), (loss_b, grads_b) = results.values()
    diff = max(float(jnp.abs(a - b).max()) for a, b in zip(grads_a, grads_b))

    times = {name: [] for name in candidates}
    for _ in range(args.rounds):
        for name, fn in candidates.items():
            start = time.perf_counter()
            for _ in range(args.calls):
                out = fn(params, x, y)
            jax.block_until_ready(out)
            times[name].append((time.perf_counter() - start) / args.calls)

    flops = 2 * 2 * args.n * args.hidden * (args.din + args.classes) + 2 * args.n * args.hidden * args.classes
    print(f"fc -> relu -> fc -> softmax loss, N={args.n}, Din={args.din}, H={args.hidden}, C={args.classes}, "
          f"{jax.devices()[0].platform}; median of {args.rounds} interleaved rounds")
    print(f"largest gradient difference between the two: {diff:.2e}")
    print("| version | ms per step | GFLOP/s |")
    print("| --- | ---: | ---: |")
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, t in medians.items():
        print(f"| {name} | {1e3 * t:.3f} | {flops / t / 1e9:.1f} |")
    hand, auto = medians.values()
    print(f"hand-written / jax.grad time ratio: {hand / auto:.3f} (target <= 1.1)")


if __name__ == "__main__":
    main()
