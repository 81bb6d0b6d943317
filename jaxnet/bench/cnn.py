"""Training images per second for the assignment's CNN: what ``jaxnet train cnn`` runs vs PyTorch eager on CPU.

One epoch of Fashion-MNIST's 60,000 training images at each batch size (default 64 and 256), with the CNN
config's optimizer (``jaxnet.configs.cnn()``: Adam), every version on the same batches of one
shuffled copy of the data (partial last batch included). Versions:

- jaxnet: the training loop's path (``jaxnet.train.fit``): data on the device, the epoch cut by
  ``epoch_blocks`` into blocks of the config's ``steps_per_call`` batches, each block one compiled call of
  ``make_train_chunk(unroll=True)``, the losses fetched after every call as ``fit`` does;
- jaxnet per-batch step: ``make_train_step`` jitted alone, each batch sliced on the host and sent;
- PyTorch: the original network (``jaxnet.models.cnn.torch_reference``), eager, NCHW, as many threads as
  the process may use, the same optimizer (``torch.optim.AdamW`` with the config's weight decay).

The machine's speed drifts, so all are measured in one run, interleaved: the epoch's blocks are cut into
segments, the versions take turns on each segment (their order rotated every round), and a float32
2048x2048 matmul probe (jnp, jitted) runs after every segment. Compilation and warm-up (every block shape)
come before the clock. FLOPs per training image are counted from the layer shapes
(``jaxnet.models.cnn.flops_per_image``).

Targets (issue 4): jaxnet at least 2x PyTorch's images/s, and at least 50% of the matmul rate.
PyTorch is optional (``pip install -e '.[bench]'``); without it only jaxnet and the matmul rate are measured.

Run: ``jaxnet bench cnn`` or ``python -m jaxnet.bench.cnn [--batch-sizes 64 256] [--segments 8] [--limit N]``.
"""

from __future__ import annotations

import dataclasses
import statistics

import jaxnet  # noqa: F401  (sets XLA's CPU flags before jax is imported)

import numpy as np

from jaxnet.bench import common
from jaxnet.bench.common import BenchResult, Target

NAME = "cnn"
TITLE = "CNN training images/s: jaxnet's training loop vs a per-batch jitted step vs PyTorch eager"
DEFAULTS = {"batch_sizes": (64, 256), "segments": 8, "limit": None, "steps_per_call": None, "seed": 0,
            "torch_threads": None}
QUICK = {"batch_sizes": (64,), "segments": 2, "limit": 512, "steps_per_call": 2,  # 2 steps per call compile fast
         "torch_threads": 1}  # PyTorch stays quick on a busy machine
TARGET_VS_TORCH, TARGET_SHARE = 2.0, 50.0
FIT, STEP, TORCH = "jaxnet (jaxnet train cnn's loop)", "jaxnet per-batch step", "PyTorch eager"


class Contender:
    """One way to train: ``warm_up()`` before the clock, then ``run(segment_index)`` per segment."""

    def __init__(self, name: str, warm_up, run):
        self.name, self.warm_up, self.run = name, warm_up, run
        self.losses: list[np.ndarray] = []

    def mean_loss(self) -> float:
        if not self.losses:
            return float("nan")
        return float(np.mean(np.concatenate([np.ravel(np.asarray(x)) for x in self.losses])))


def _rows(block: np.ndarray) -> list[slice]:
    """The batches of an index block as slices (the blocks of ``arange`` are contiguous runs)."""
    return [slice(int(row[0]), int(row[-1]) + 1) for row in block]


def fit_contender(config, images, labels, segments: list[list[np.ndarray]]) -> Contender:
    """``fit()``'s path: the data on the device, one compiled call per block of batches."""
    import jax

    from jaxnet import train
    from jaxnet.models import cnn

    classifier = cnn.cnn_classifier()
    optimizer = train.make_optimizer(config)
    chunk = train.make_train_chunk(classifier, optimizer, unroll=config.unroll, microbatch_size=config.microbatch_size)
    holder = {"state": train.init_state(classifier, optimizer, jax.random.key(config.seed))}
    d_images, d_labels = jax.device_put(images), jax.device_put(labels)

    def warm_up():
        shapes = {}
        for block in (b for segment in segments for b in segment):
            shapes.setdefault(block.shape, block)
        for block in shapes.values():  # every compiled shape: full blocks, leftover batches, the partial batch
            holder["state"], losses = chunk(holder["state"], d_images, d_labels, block)
        np.asarray(losses)

    def run(r):
        state = holder["state"]
        for block in segments[r]:
            state, losses = chunk(state, d_images, d_labels, block)
            contender.losses.append(np.asarray(losses))  # fit() fetches them after every call
        holder["state"] = state
        return state

    contender = Contender(FIT, warm_up, run)
    return contender


def step_contender(config, images, labels, segments: list[list[np.ndarray]]) -> Contender:
    """``make_train_step`` jitted alone: one call per batch, each batch sent from the host."""
    import jax

    from jaxnet import train
    from jaxnet.models import cnn

    classifier = cnn.cnn_classifier()
    optimizer = train.make_optimizer(config)
    step = train.make_train_step(classifier, optimizer, microbatch_size=config.microbatch_size)
    holder = {"state": train.init_state(classifier, optimizer, jax.random.key(config.seed))}
    batches = [s for segment in segments for block in segment for s in _rows(block)]

    def warm_up():
        for s in [batches[0], batches[-1]] + batches[1:4]:  # the partial last batch compiles its own program
            holder["state"], loss = step(holder["state"], images[s], labels[s])
        jax.block_until_ready(loss)

    def run(r):
        state = holder["state"]
        for block in segments[r]:
            for s in _rows(block):
                state, loss = step(state, images[s], labels[s])
                contender.losses.append(loss)
        holder["state"] = state
        return state

    contender = Contender(STEP, warm_up, run)
    return contender


def torch_optimizer(torch, config, parameters):
    """The config's optimizer in PyTorch: AdamW (Adam with decoupled weight decay, as optax.adamw) or SGD."""
    if config.optimizer == "adam":
        return torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    momentum = config.momentum if config.optimizer == "momentum" else 0.0
    return torch.optim.SGD(parameters, lr=config.learning_rate, momentum=momentum, weight_decay=config.weight_decay)


def torch_contender(torch, config, images, labels, segments: list[list[np.ndarray]]) -> Contender:
    """The original network in PyTorch eager, on uint8 NCHW batches as a PyTorch loader gives them."""
    from jaxnet.models import cnn

    F = torch.nn.functional
    torch.manual_seed(config.seed)
    model = cnn.torch_reference()
    optimizer = torch_optimizer(torch, config, model.parameters())
    t_images = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
    t_labels = torch.from_numpy(labels.astype(np.int64))
    batches = [s for segment in segments for block in segment for s in _rows(block)]

    def step(s):
        x = (t_images[s].float() / 255.0 - cnn.FASHION_MNIST_MEAN) / cnn.FASHION_MNIST_STD
        loss = F.cross_entropy(model(x), t_labels[s])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    def warm_up():
        for s in [batches[0], batches[-1]] + batches[1:4]:
            step(s)

    def run(r):
        for block in segments[r]:
            for s in _rows(block):
                contender.losses.append(step(s).numpy())

    contender = Contender(TORCH, warm_up, run)
    return contender


def converter_check(torch, images: np.ndarray, seed: int = 0) -> float:
    """Largest |logit difference| between the PyTorch network and jaxnet with its converted weights."""
    from jaxnet.models import cnn

    torch.manual_seed(seed)
    model = cnn.torch_reference()
    params = cnn.from_torch_state_dict({k: v.detach().numpy() for k, v in model.state_dict().items()})
    x = cnn.preprocess(images)
    ours = np.asarray(cnn.cnn_classifier().apply(params, x))
    with torch.no_grad():
        theirs = model(torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy())).numpy()
    return float(np.abs(ours - theirs).max())


def split_epoch(n: int, batch: int, steps_per_call: int, segments: int) -> list[list[np.ndarray]]:
    """The epoch's index blocks (``jaxnet.train.epoch_blocks`` of ``arange(n)``) cut into segments."""
    from jaxnet import train

    blocks = train.epoch_blocks(np.arange(n, dtype=np.int32), batch, steps_per_call)
    segments = max(1, min(segments, len(blocks)))
    bounds = np.linspace(0, len(blocks), segments + 1).round().astype(int)
    return [blocks[bounds[i]:bounds[i + 1]] for i in range(segments)]


def run(quick: bool = False, **options) -> BenchResult:
    """Times the versions at each batch size.

    Options: batch_sizes, segments (interleaved per epoch), limit (first N images), steps_per_call (default:
    the config's), seed, torch_threads (default: every CPU the process may use, as jaxnet).
    """
    from jaxnet import configs, data
    from jaxnet.models import cnn

    clock = common.Stopwatch()
    o = common.settle(NAME, DEFAULTS, QUICK, quick, options)
    base = configs.cnn()
    base = dataclasses.replace(base, seed=o["seed"], steps_per_call=o["steps_per_call"] or base.steps_per_call)
    o["steps_per_call"], o["batch_sizes"] = base.steps_per_call, list(o["batch_sizes"])
    threads = common.cpu_count()
    try:
        import torch
    except ImportError as missing:
        torch = None
        torch_note = f"PyTorch not measured ({missing}; pip install -e '.[bench]')"
    else:
        torch.set_num_threads(o["torch_threads"] or threads)
        torch_note = f"PyTorch {torch.__version__} eager, NCHW, {common.threads(torch.get_num_threads())}"

    dataset = data.load_dataset("fashion_mnist", val_size=0)
    shuffle = np.random.default_rng(o["seed"]).permutation(len(dataset.y_train))  # one shuffle, the same for all
    images = np.ascontiguousarray(dataset.x_train[shuffle][:o["limit"]])
    labels = np.ascontiguousarray(dataset.y_train[shuffle][:o["limit"]])
    flops = cnn.flops_per_image()
    probe = common.MatmulProbe(calls=1 if quick else 3)

    rows, ratios, targets = [], {}, []
    for batch in o["batch_sizes"]:
        config = dataclasses.replace(base, batch_size=batch)
        segments = split_epoch(len(labels), batch, config.steps_per_call, o["segments"])
        contenders = [fit_contender(config, images, labels, segments),
                      step_contender(config, images, labels, segments)]
        if torch is not None:
            contenders.append(torch_contender(torch, config, images, labels, segments))
        common.progress(f"{NAME}: batch {batch}: compiling and warming up")
        for c in contenders:
            c.warm_up()
        common.progress(f"{NAME}: batch {batch}: {len(segments)} interleaved segments")
        before = len(probe.rates)
        timings = common.interleave({c.name: c.run for c in contenders}, len(segments), probe)
        ceiling = statistics.median(probe.rates[before:])
        speed = {c.name: len(labels) / timings.total(c.name) for c in contenders}
        for c in contenders:
            gflops = speed[c.name] * flops["training"] / 1e9
            vs_torch = f"{speed[c.name] / speed[TORCH]:.2f}x" if TORCH in speed else "-"
            rows.append(f"| {batch} | {c.name} | {speed[c.name]:,.0f} | {vs_torch} | {gflops:.1f} | "
                        f"{100 * gflops / ceiling:.0f}% | {c.mean_loss():.3f} |")
        share = 100 * speed[FIT] * flops["training"] / 1e9 / ceiling
        if TORCH in speed:
            ratio = speed[FIT] / speed[TORCH]
            ratios[f"batch {batch}: jaxnet / PyTorch images/s"] = ratio
            ratios[f"batch {batch}: jaxnet / PyTorch, segment by segment (median)"] = statistics.median(
                timings.paired(TORCH, FIT))
            ratios[f"batch {batch}: per-batch step / PyTorch images/s"] = speed[STEP] / speed[TORCH]
            targets.append(Target(f"batch {batch}: jaxnet / PyTorch images/s", ratio, TARGET_VS_TORCH))
            # What the speed target asks of the hardware: PyTorch's rate times the target, as a share of the probe.
            ratios[f"batch {batch}: % of the matmul rate that {TARGET_VS_TORCH:g}x PyTorch takes"] = (
                100 * TARGET_VS_TORCH * speed[TORCH] * flops["training"] / 1e9 / ceiling)
        ratios[f"batch {batch}: jaxnet % of the matmul rate"] = share
        ratios[f"batch {batch}: jaxnet / per-batch step images/s"] = speed[FIT] / speed[STEP]
        targets.append(Target(f"batch {batch}: jaxnet share of the matmul rate", share, TARGET_SHARE, unit="%"))

    several = torch is not None and torch.get_num_threads() > 1
    busy = common.busy_warning(clock.load, "PyTorch" if several else "", "--torch-threads 1")
    check = ""
    if torch is not None:
        check = (f" Converter check: the PyTorch network and jaxnet with its weights (from_torch_state_dict) differ "
                 f"by at most {converter_check(torch, images[:64], o['seed']):.1e} in the logits.")
    lines = [
        f"One epoch of {len(labels):,} Fashion-MNIST training images per batch size, {base.optimizer} lr "
        f"{base.learning_rate} (jaxnet.configs.cnn()); jaxnet's loop runs {base.steps_per_call} unrolled steps per "
        f"compiled call; {torch_note}. {flops['training'] / 1e6:.2f} MFLOP per training image, counted from the "
        f"layers (forward {flops['forward'] / 1e6:.2f}). {probe.summary()}; % of matmul against the median probe "
        f"of the same batch size's segments. Mean loss: over the timed epoch.{check}{busy}",
        "",
        "| batch | version | images/s | x PyTorch | GFLOP/s | % of matmul | mean loss |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
        *rows,
    ]
    return BenchResult(name=NAME, title=TITLE, markdown="\n".join(lines), ratios=ratios, targets=targets,
                       options=o, quick=quick, **clock.stamp())


def main(argv: list[str] | None = None) -> int:
    parser = common.parser(__doc__)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None, help="default: 64 256")
    parser.add_argument("--segments", type=int, default=None, help="interleaved segments per epoch (default: 8)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images (default: all)")
    parser.add_argument("--steps-per-call", type=int, default=None,
                        help="batches per compiled call of jaxnet's loop (default: jaxnet.configs.cnn()'s)")
    parser.add_argument("--seed", type=int, default=None, help="default: 0")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="PyTorch's threads (default: every CPU the process may use, as jaxnet)")
    return common.run_main(run, parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
