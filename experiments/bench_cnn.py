"""Training images per second for the assignment's CNN: jaxnet's jitted Flax step vs PyTorch eager on CPU.

One epoch of Fashion-MNIST's 60,000 training images at each batch size (default 64 and 256), Adam lr 1e-3,
every version on the same shuffled batches (partial last batch included), PyTorch with as many threads as
the process may use. The machine's speed drifts (see ../shared/facts/performance.md), so everything is
measured in one run and interleaved: each epoch is cut into segments, the versions take turns on each
segment (their order rotated every round), and a float32 2048x2048 matmul probe (jnp, jitted) runs after
every segment. Compilation and warm-up steps (the full and the partial last batch) come before the clock.

The jaxnet step is the training loop's ``jaxnet.train.make_train_step`` (uint8 images in, preprocessing
inside the jitted step, the loop's own Adam) when it exists, else a stand-in that does the same and says
so. ``--chunk K`` also times ``fit()``'s path: the data on the device and K unrolled steps per compiled
call (``make_train_chunk(unroll=True)``), over the segments' whole blocks of K batches. FLOPs per training
image are counted from the layer shapes (``jaxnet.models.cnn.flops_per_image``).

Targets (issue 4): jaxnet at least 2x PyTorch's images/s, and at least 50% of the matmul rate.
PyTorch is optional (``pip install torch==2.13.0``); without it only jaxnet and the matmul rate are measured.

Run: .venv/bin/python experiments/bench_cnn.py [--batch-sizes 64 256] [--segments 8] [--chunk K] [--limit N]
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import statistics
import struct
import time
from pathlib import Path

import jaxnet  # noqa: F401  (sets XLA's CPU flags before jax is imported)
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnet.models import cnn

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
LEARNING_RATE = 1e-3
MATMUL_SIZE = 2048


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


def _read_idx(path: Path, magic: int) -> np.ndarray:
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    found, ndim = struct.unpack(">I", data[:4])[0], data[3]
    if found != magic:
        raise ValueError(f"{path}: not an IDX file with magic {magic} (got {found})")
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_train_split() -> tuple[np.ndarray, np.ndarray, str]:
    """Fashion-MNIST's 60,000 training images uint8 (N, 28, 28, 1) and int32 labels, and where they came from."""
    try:
        from jaxnet.data import load_dataset
    except ImportError:
        images = _read_idx(FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz", 2051)[..., None]
        labels = _read_idx(FASHION_MNIST_DIR / "train-labels-idx1-ubyte.gz", 2049).astype(np.int32)
        return images, labels, f"IDX files in {FASHION_MNIST_DIR}"
    data = load_dataset("fashion_mnist", val_size=0)
    return data.x_train, data.y_train, "jaxnet.data.load_dataset('fashion_mnist', val_size=0)"


# --------------------------------------------------------------------------------------------------
# The steps
# --------------------------------------------------------------------------------------------------


def _loop_parts():
    """``(jaxnet.train, None)``, or ``(None, why)`` if it does not offer what this benchmark calls (yet)."""
    try:
        from jaxnet import train
    except ImportError as missing:
        return None, f"ImportError: {missing}"
    absent = [n for n in ("init_state", "make_train_step", "make_train_chunk") if not hasattr(train, n)]
    if absent:
        return None, f"jaxnet.train has no {', '.join(absent)}"
    return train, None


def _optimizer(train):
    """Adam at LEARNING_RATE, built as the training loop builds it when it can."""
    if train is not None and hasattr(train, "make_optimizer") and hasattr(train, "TrainConfig"):
        return train.make_optimizer(train.TrainConfig(model="cnn", optimizer="adam", learning_rate=LEARNING_RATE))
    return optax.adam(LEARNING_RATE)


def make_jaxnet_step(seed: int):
    """(step, state, where): jaxnet's jitted ``step(state, images_uint8, labels) -> (state, loss)``."""
    classifier = cnn.cnn_classifier()
    train, missing = _loop_parts()
    optimizer = _optimizer(train)
    key = jax.random.key(seed)
    if train is not None:
        step = train.make_train_step(classifier, optimizer)
        return step, train.init_state(classifier, optimizer, key), "jaxnet.train.make_train_step"

    params = classifier.init(key)

    @jax.jit
    def step(state, images, labels):
        params, opt_state = state
        loss, grads = classifier.loss_and_grads(params, classifier.preprocess(images), labels)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    return step, (params, optimizer.init(params)), f"a stand-in for jaxnet.train.make_train_step ({missing})"


def make_torch_step(torch, seed: int):
    """(step, model): PyTorch eager ``step(images_uint8_nchw, labels) -> loss`` on the same network."""
    nn, F = torch.nn, torch.nn.functional
    torch.manual_seed(seed)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 64, 3, stride=2, padding=1)
            self.conv2 = nn.Conv2d(64, 64, 3, stride=1, padding=1)
            self.conv3 = nn.Conv2d(64, 16, 3, stride=2, padding=1)
            self.fc = nn.Linear(256, 10)

        def forward(self, x):
            x = F.avg_pool2d(F.leaky_relu(self.conv1(x), 0.01), 2, 2)
            x = F.leaky_relu(self.conv2(x), 0.01)
            x = F.leaky_relu(self.conv3(x), 0.01)
            return self.fc(x.flatten(1))

    model = Net()
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)

    def step(images, labels):
        x = (images.float() / 255.0 - cnn.FASHION_MNIST_MEAN) / cnn.FASHION_MNIST_STD
        loss = F.cross_entropy(model(x), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step, model


def converter_check(torch, model, images: np.ndarray) -> float:
    """Largest |logit difference| between the PyTorch model and jaxnet with its converted weights."""
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    params = cnn.from_torch_state_dict(state)
    x = cnn.preprocess(images)
    ours = np.asarray(cnn.cnn_classifier().apply(params, x))
    with torch.no_grad():
        theirs = model(torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy())).numpy()
    return float(np.abs(ours - theirs).max())


# --------------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------------


def matmul_probe(calls: int = 3) -> float:
    """GFLOP/s of a jitted float32 2048x2048 matmul (the machine's ceiling now)."""
    n = MATMUL_SIZE
    a = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(2), (n, n), jnp.float32)
    matmul = _MATMUL
    matmul(a, b).block_until_ready()
    start = time.perf_counter()
    jax.block_until_ready([matmul(a, b) for _ in range(calls)])  # every call, not only the last one
    return 2 * n**3 * calls / (time.perf_counter() - start) / 1e9


_MATMUL = jax.jit(jnp.matmul)


class Contender:
    """One way to train: ``warm_up()`` before the clock, then ``run(segment) -> images`` per segment."""

    def __init__(self, name, warm_up, run):
        self.name, self.warm_up, self.run = name, warm_up, run
        self.seconds, self.images, self.losses = 0.0, 0, []

    def mean_loss(self) -> float:
        if not self.losses:
            return float("nan")
        return float(np.mean(np.concatenate([np.ravel(np.asarray(x)) for x in self.losses])))


def jaxnet_contender(batch, images, labels, starts, seed) -> tuple[Contender, str]:
    step, state, where = make_jaxnet_step(seed)
    holder = {"state": state}

    def warm_up():
        for s in [starts[0], starts[-1]] + starts[1:4]:  # the partial last batch compiles its own program
            holder["state"], loss = step(holder["state"], images[s : s + batch], labels[s : s + batch])
        jax.block_until_ready((holder["state"], loss))

    def run(segment):
        state = holder["state"]
        for s in segment:
            state, loss = step(state, images[s : s + batch], labels[s : s + batch])
            contender.losses.append(loss)
        holder["state"] = jax.block_until_ready(state)
        return sum(len(labels[s : s + batch]) for s in segment)

    contender = Contender("jaxnet", warm_up, run)
    return contender, where


def chunk_contender(batch, images, labels, starts, seed, k) -> Contender:
    """``fit()``'s path: data on the device, K unrolled steps per call gathering batches by index."""
    train, _ = _loop_parts()
    classifier = cnn.cnn_classifier()
    optimizer = _optimizer(train)
    chunk = train.make_train_chunk(classifier, optimizer, unroll=True)
    holder = {"state": train.init_state(classifier, optimizer, jax.random.key(seed))}
    d_images, d_labels = jax.device_put(images), jax.device_put(labels)

    def blocks(segment):
        full = [s for s in segment if s + batch <= len(labels)]
        full = full[: len(full) // k * k]
        return [np.stack([np.arange(s, s + batch) for s in full[i : i + k]]).astype(np.int32)
                for i in range(0, len(full), k)]

    def warm_up():
        holder["state"], losses = chunk(holder["state"], d_images, d_labels, blocks(starts[:k])[0])
        jax.block_until_ready((holder["state"], losses))

    def run(segment):
        state, count = holder["state"], 0
        for block in blocks(segment):
            state, losses = chunk(state, d_images, d_labels, block)
            contender.losses.append(losses)
            count += block.size
        holder["state"] = jax.block_until_ready(state)
        return count

    contender = Contender(f"jaxnet fit() path ({k} unrolled steps per call)", warm_up, run)
    return contender


def torch_contender(torch, batch, images, labels, starts, seed) -> Contender:
    step, _ = make_torch_step(torch, seed)
    t_images = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())  # NCHW uint8, like a PyTorch loader's
    t_labels = torch.from_numpy(labels.astype(np.int64))

    def warm_up():
        for s in [starts[0], starts[-1]] + starts[1:4]:
            step(t_images[s : s + batch], t_labels[s : s + batch])

    def run(segment):
        for s in segment:
            contender.losses.append(step(t_images[s : s + batch], t_labels[s : s + batch]).numpy())
        return sum(len(t_labels[s : s + batch]) for s in segment)

    contender = Contender("pytorch", warm_up, run)
    return contender


def bench_batch_size(batch: int, images, labels, segments: int, torch, seed: int, chunk: int) -> dict:
    starts = list(range(0, len(labels), batch))
    bounds = np.linspace(0, len(starts), segments + 1).round().astype(int)
    jaxnet_c, where = jaxnet_contender(batch, images, labels, starts, seed)
    contenders = [jaxnet_c]
    if torch is not None:
        contenders.append(torch_contender(torch, batch, images, labels, starts, seed))
    if chunk:
        contenders.append(chunk_contender(batch, images, labels, starts, seed, chunk))
    for c in contenders:
        c.warm_up()

    probes = []
    for r in range(segments):
        segment = starts[bounds[r] : bounds[r + 1]]
        for c in contenders[r % len(contenders) :] + contenders[: r % len(contenders)]:  # rotate the order
            start = time.perf_counter()
            c.images += c.run(segment)
            c.seconds += time.perf_counter() - start
        probes.append(matmul_probe())
    return {"batch": batch, "where": where, "probes": probes, "contenders": contenders}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--segments", type=int, default=8, help="interleaved segments per epoch")
    parser.add_argument("--chunk", type=int, default=0, metavar="K",
                        help="also time fit()'s path: K unrolled steps per compiled call (default: off)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images (quick check)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        import torch
    except ImportError:
        torch = None
        torch_note = "PyTorch not installed (pip install torch==2.13.0): measuring jaxnet and the matmul rate only"
    else:
        torch.set_num_threads(threads)
        torch_note = f"torch {torch.__version__}, eager, NCHW, {torch.get_num_threads()} threads"
    if args.chunk and _loop_parts()[0] is None:
        parser.error(f"--chunk needs jaxnet.train.make_train_chunk ({_loop_parts()[1]})")

    images, labels, source = load_train_split()
    order = np.random.default_rng(args.seed).permutation(len(labels))  # one shuffle, the same for all
    images, labels = np.ascontiguousarray(images[order]), np.ascontiguousarray(labels[order])
    if args.limit:
        images, labels = images[: args.limit], labels[: args.limit]

    flops = cnn.flops_per_image()
    load_before = os.getloadavg()[0]
    print(f"# CNN training throughput, one epoch of {len(labels):,} Fashion-MNIST images ({source})")
    print(f"{platform.machine()}, {threads} CPU threads, load average {load_before:.1f} at the start; "
          f"jax {jax.__version__} ({jax.devices()[0].platform}), XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; "
          f"{torch_note}")
    print(f"{flops['training'] / 1e6:.2f} MFLOP per training image, counted from the layers "
          f"(forward {flops['forward'] / 1e6:.2f}); Adam lr {LEARNING_RATE}")

    results = []
    for batch in args.batch_sizes:
        print(f"batch {batch}: ...", flush=True)
        results.append(bench_batch_size(batch, images, labels, args.segments, torch, args.seed, args.chunk))
    print(f"jaxnet step: {results[0]['where']}; load average {os.getloadavg()[0]:.1f} at the end")
    if torch is not None:
        _, model = make_torch_step(torch, args.seed)
        print(f"converter check: PyTorch vs jaxnet with from_torch_state_dict weights, max |logit difference| "
              f"{converter_check(torch, model, images[:64]):.1e}")

    probes = [p for r in results for p in r["probes"]]
    print()
    print(f"float32 {MATMUL_SIZE}x{MATMUL_SIZE} matmul (jnp, jit), probed after every segment: median "
          f"{statistics.median(probes):.0f} GFLOP/s (range {min(probes):.0f}-{max(probes):.0f}, {len(probes)} probes)")
    print()
    print("| batch | version | images/s | x PyTorch | GFLOP/s | % of matmul | mean loss |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    verdicts = []
    for r in results:
        ceiling = statistics.median(r["probes"])
        by_name = {c.name: c for c in r["contenders"]}
        theirs = by_name.get("pytorch")
        for c in r["contenders"]:
            if not c.images:
                print(f"| {r['batch']} | {c.name} | too few batches per segment to time | | | | |")
                continue
            ips = c.images / c.seconds
            gflops = ips * flops["training"] / 1e9
            share = 100 * gflops / ceiling
            ratio = ips / (theirs.images / theirs.seconds) if theirs is not None else None
            row = [str(r["batch"]), c.name, f"{ips:,.0f}", "-" if ratio is None else f"{ratio:.2f}x",
                   f"{gflops:.1f}", f"{share:.0f}%", f"{c.mean_loss():.3f}"]
            print("| " + " | ".join(row) + " |")
            if c.name == "jaxnet":
                if ratio is not None:
                    verdicts.append(f"batch {r['batch']}: jaxnet {ratio:.2f}x PyTorch "
                                    f"({'met' if ratio >= 2 else 'MISSED'}, target 2x)")
                verdicts.append(f"batch {r['batch']}: jaxnet at {share:.0f}% of the matmul rate "
                                f"({'met' if share >= 50 else 'MISSED'}, target 50%)")
    print()
    print("% of matmul: against the median probe of the same batch size's rounds. Mean loss: over the timed epoch.")
    for line in verdicts:
        print(f"- {line}")


if __name__ == "__main__":
    main()
