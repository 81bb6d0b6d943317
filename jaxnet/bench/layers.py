"""Hand-written backward pass vs jax.grad for fc -> relu -> fc -> softmax loss, CIFAR-10-sized.

Both are jitted and compute the same loss and gradients (their largest difference is reported); times are
medians of interleaved rounds (A B A B ..., the order rotated every round) so that the machine's drift hits
both alike, with a float32 matmul probe after every round for the GFLOP/s share.

Target (issue 2): the hand-written path within 1.1x of jax.grad's time, or faster.

Run: ``jaxnet bench layers`` or ``python -m jaxnet.bench.layers [--rounds 30] [--calls 20]``.
"""

from __future__ import annotations

import statistics

import jaxnet  # noqa: F401  (sets XLA's CPU flags before jax is imported)

from jaxnet.bench import common
from jaxnet.bench.common import BenchResult, Target

NAME = "layers"
TITLE = "Layers: hand-written backward pass vs jax.grad (fc -> relu -> fc -> softmax loss)"
DEFAULTS = {"n": 128, "din": 3072, "hidden": 512, "classes": 10, "rounds": 30, "calls": 20}
QUICK = {"rounds": 5, "calls": 3}
TARGET_RATIO = 1.1


def hand_written(params, x, y):
    """Loss and gradients of (W1, b1, W2, b2) from jaxnet.layers' hand-written backward passes."""
    from jaxnet import layers

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
    """The same loss in plain jax.numpy, for jax.grad."""
    import jax
    import jax.numpy as jnp

    w1, b1, w2, b2 = params
    scores = jax.nn.relu(x @ w1 + b1) @ w2 + b2
    return -jnp.mean(jax.nn.log_softmax(scores)[jnp.arange(x.shape[0]), y])


def flops_per_step(n: int, din: int, hidden: int, classes: int) -> int:
    """Forward and backward matmuls (the input gets a gradient too, as in fc_backward)."""
    return 2 * 2 * n * hidden * (din + classes) + 2 * n * hidden * classes


def run(quick: bool = False, **options) -> BenchResult:
    """Times both versions; options: n, din, hidden, classes, rounds, calls (calls per timing in a round)."""
    import jax
    import jax.numpy as jnp

    clock = common.Stopwatch()
    o = common.settle(NAME, DEFAULTS, QUICK, quick, options)
    n, din, hidden, classes = o["n"], o["din"], o["hidden"], o["classes"]
    k = jax.random.split(jax.random.key(0), 4)
    params = (
        0.01 * jax.random.normal(k[0], (din, hidden)),
        jnp.zeros(hidden),
        0.01 * jax.random.normal(k[1], (hidden, classes)),
        jnp.zeros(classes),
    )
    x = jax.random.normal(k[2], (n, din))
    y = jax.random.randint(k[3], (n,), 0, classes)

    hand_name, auto_name = "hand-written forward + backward (jit)", "jax.value_and_grad (jit)"
    functions = {hand_name: jax.jit(hand_written), auto_name: jax.jit(jax.value_and_grad(plain_loss))}
    (loss_a, grads_a), (loss_b, grads_b) = (fn(params, x, y) for fn in functions.values())  # compile, compare
    diff = max(float(jnp.abs(a - b).max()) for a, b in zip(grads_a, grads_b))
    loss_diff = abs(float(loss_a) - float(loss_b))

    def repeat(fn):
        def timed(_round):
            for _ in range(o["calls"]):
                out = fn(params, x, y)
            return out

        return timed

    probe = common.MatmulProbe(calls=1 if quick else 3)
    timings = common.interleave({name: repeat(fn) for name, fn in functions.items()}, o["rounds"], probe)

    flops = flops_per_step(n, din, hidden, classes)
    ceiling = probe.median()
    lines = [
        f"N={n}, Din={din}, H={hidden}, C={classes}, float32, {jax.devices()[0].platform}; median of "
        f"{o['rounds']} interleaved rounds of {o['calls']} calls each. Largest difference between the two: "
        f"gradients {diff:.2e}, loss {loss_diff:.2e}. {probe.summary()}.",
        "",
        "| version | ms per step | GFLOP/s | % of matmul |",
        "| --- | ---: | ---: | ---: |",
    ]
    medians = {name: timings.median(name) / o["calls"] for name in functions}
    for name, t in medians.items():
        lines.append(f"| {name} | {1e3 * t:.3f} | {flops / t / 1e9:.1f} | {100 * flops / t / 1e9 / ceiling:.0f}% |")
    ratio = medians[hand_name] / medians[auto_name]
    paired = timings.paired(hand_name, auto_name)
    return BenchResult(
        name=NAME,
        title=TITLE,
        markdown="\n".join(lines),
        ratios={"hand-written / jax.grad time (medians)": ratio,
                "hand-written / jax.grad time, round by round (median)": statistics.median(paired)},
        targets=[Target("hand-written / jax.grad time", ratio, TARGET_RATIO, at_least=False)],
        options=o,
        quick=quick,
        **clock.stamp(),
    )


def main(argv: list[str] | None = None) -> int:
    parser = common.parser(__doc__)
    for name, default in DEFAULTS.items():
        parser.add_argument(f"--{name}", type=int, default=None, help=f"default: {default}")
    return common.run_main(run, parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
