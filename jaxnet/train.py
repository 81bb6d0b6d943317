"""The one training loop: every model (a :class:`jaxnet.models.Classifier`), every dataset.

How an epoch runs, and why:

- The whole (uint8) training set is put on the device(s) once. Each epoch draws a permutation from
  ``(seed, epoch)`` on the host and sends only the index matrix; batches are gathered inside the jitted
  code, so no shuffled copy of the data is built per epoch.
- One compiled call runs ``steps_per_call`` SGD steps with ``lax.scan`` (the MLP runs a whole slice of an
  epoch per call, with no per-step host work). On XLA:CPU a convolution inside a loop is 10-25x slower
  (jax-ml/jax#12868), so convolutional models unroll the scan instead (``unroll=True``).
- Full batches run ``steps_per_call`` at a time, the leftover full batches in one shorter call and the
  partial last batch in its own: at most three programs, each compiled once, whatever the number of epochs.
- ``microbatch_size`` splits a step's batch into equal micro-batches whose gradients are averaged: the
  same gradient and update, computed on fewer images at a time. On CPU the CNN's activations at batch 256
  overflow the caches; in micro-batches of 64 the same step runs about 10% faster.
- The learning rate lives in the optimizer state (``optax.inject_hyperparams``), so a decay or a new rate
  on resume changes no compiled program.
- Data parallel: a 1-D mesh over all devices (of every process, after :func:`jaxnet.distributed.initialize`);
  the batch is split across it, params replicated. XLA inserts the gradient all-reduce. One device is the
  same code path. With several processes each holds the same host data and puts only its own devices'
  shards; process 0 alone writes files and shows progress.

After every epoch the state, the metrics and the config go to ``RUN_DIR/checkpoint.msgpack`` (atomically)
and ``RUN_DIR/metrics.json``; ``resume=True`` continues from the last finished epoch. A NaN or inf loss
stops the run with :class:`TrainingDiverged`, leaving the last good checkpoint as it was.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxnet import checkpoint, distributed, layers
from jaxnet.cache import atomic_write_bytes
from jaxnet.models import Classifier


class TrainingDiverged(Exception):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class ConfigError(ValueError):
    """A training configuration that cannot work; the message says which value and why."""


@dataclasses.dataclass
class TrainConfig:
    """Every hyperparameter of a run. Saved with its checkpoint and metrics; overridable from the CLI."""

    model: str = "two_layer"  # a key of MODELS: "two_layer", "linear" or "cnn"
    dataset: str = "fashion_mnist"
    data_dir: str | None = None
    val_size: int | None = None  # default: the dataset's (10k for Fashion-MNIST)
    train_size: int | None = None  # keep only this many training images (the overfit experiment)
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"  # "sgd", "momentum" or "adam"
    learning_rate: float = 0.1
    lr_decay: float = 1.0  # the rate is multiplied by this after every epoch
    momentum: float = 0.9  # for "momentum"
    weight_decay: float = 0.0  # decoupled weight decay (AdamW style), for models without an L2 term (the CNN)
    seed: int = 0
    # the fc models (two_layer, linear); hidden_dim is two_layer's alone
    hidden_dim: int = 256
    weight_scale: float = 1e-2
    reg: float = 1e-4
    # how the loop runs
    steps_per_call: int = 64  # SGD steps per compiled call (at most; see the module docstring)
    unroll: bool = False  # unroll those steps instead of looping (True for convolutional models on CPU)
    microbatch_size: int | None = None  # compute each step's gradient this many images at a time (None: all)
    train_eval_size: int = 10_000  # train accuracy is measured on this many (fixed) training images
    eval_batch_size: int = 1000

    def validate(self) -> None:
        positive = ["epochs", "batch_size", "steps_per_call", "train_eval_size", "eval_batch_size", "hidden_dim"]
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.microbatch_size is not None and self.microbatch_size < 1:
            raise ConfigError(f"microbatch_size must be at least 1 (or None for whole batches), got "
                              f"{self.microbatch_size}")
        if not self.learning_rate > 0 or not math.isfinite(self.learning_rate):
            raise ConfigError(f"learning_rate must be a positive number, got {self.learning_rate}")
        if not 0 < self.lr_decay <= 1:
            raise ConfigError(f"lr_decay must be in (0, 1], got {self.lr_decay}")
        if self.reg < 0:
            raise ConfigError(f"reg must be >= 0, got {self.reg}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not self.weight_scale > 0:
            raise ConfigError(f"weight_scale must be positive, got {self.weight_scale}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.optimizer not in ("sgd", "momentum", "adam"):
            raise ConfigError(f"optimizer must be sgd, momentum or adam, got {self.optimizer!r}")
        if self.model not in MODELS:
            raise ConfigError(f"model must be one of {', '.join(MODELS)}, got {self.model!r}")


class TrainState(struct.PyTreeNode):
    params: Any
    opt_state: Any
    step: jax.Array


# --------------------------------------------------------------------------------------------------
# Models and optimizers from a config
# --------------------------------------------------------------------------------------------------


def _two_layer(config: TrainConfig, image_shape: tuple[int, ...], num_classes: int, mean: float, std: float):
    from jaxnet.models import two_layer

    return two_layer.classifier(image_shape, num_classes, config.hidden_dim, config.weight_scale, config.reg,
                                mean=mean, std=std)


def _linear(config: TrainConfig, image_shape: tuple[int, ...], num_classes: int, mean: float, std: float):
    from jaxnet.models import linear

    return linear.classifier(image_shape, num_classes, config.weight_scale, config.reg, mean=mean, std=std)


def _cnn(config: TrainConfig, image_shape: tuple[int, ...], num_classes: int, mean: float, std: float):
    from jaxnet.models import cnn

    if tuple(image_shape) != tuple(cnn.IMAGE_SHAPE):
        raise ConfigError(f"the CNN takes {cnn.IMAGE_SHAPE} images; dataset images are {tuple(image_shape)}")
    return cnn.cnn_classifier(num_classes)


#: model name -> builder(config, image_shape, num_classes, pixel mean, pixel std) -> Classifier
MODELS: dict[str, Callable[..., Classifier]] = {"two_layer": _two_layer, "linear": _linear, "cnn": _cnn}


def build_classifier(config: TrainConfig, image_shape: tuple[int, ...], num_classes: int,
                     mean: float = 0.0, std: float = 1.0) -> Classifier:
    """The :class:`Classifier` a config names. ``mean``/``std`` of pixels in [0, 1] normalize the MLP's input."""
    return MODELS[config.model](config, tuple(image_shape), num_classes, mean, std)


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """SGD, SGD with momentum or Adam(W), the learning rate held in the state (changing it recompiles nothing)."""
    if config.optimizer == "adam":
        return optax.inject_hyperparams(optax.adamw)(learning_rate=config.learning_rate,
                                                     weight_decay=config.weight_decay)
    momentum = config.momentum if config.optimizer == "momentum" else None
    if not config.weight_decay:
        return optax.inject_hyperparams(optax.sgd)(learning_rate=config.learning_rate, momentum=momentum)

    def sgd_with_weight_decay(learning_rate, weight_decay):
        return optax.chain(optax.add_decayed_weights(weight_decay), optax.sgd(learning_rate, momentum))

    return optax.inject_hyperparams(sgd_with_weight_decay)(learning_rate=config.learning_rate,
                                                           weight_decay=config.weight_decay)


def set_learning_rate(state: TrainState, learning_rate: float) -> TrainState:
    """Returns ``state`` with a new learning rate (an array in the optimizer state: no recompilation)."""
    hyperparams = dict(state.opt_state.hyperparams)
    old = hyperparams["learning_rate"]
    hyperparams["learning_rate"] = distributed.global_array(jnp.asarray(learning_rate, old.dtype), old.sharding)
    return state.replace(opt_state=state.opt_state._replace(hyperparams=hyperparams))


# --------------------------------------------------------------------------------------------------
# Compiled steps
# --------------------------------------------------------------------------------------------------


def init_state(classifier: Classifier, optimizer: optax.GradientTransformation, key: jax.Array) -> TrainState:
    """Fresh params from ``key`` and a fresh optimizer state."""
    params = classifier.init(key)
    return TrainState(params=params, opt_state=optimizer.init(params), step=jnp.zeros((), jnp.int32))


def num_microbatches(batch_size: int, microbatch_size: int | None) -> int:
    """How many equal micro-batches a batch is split into: ``batch_size / microbatch_size`` when that divides
    evenly, else 1 (a batch that does not split evenly, such as an epoch's partial last one, runs whole)."""
    if microbatch_size is None or batch_size <= microbatch_size or batch_size % microbatch_size:
        return 1
    return batch_size // microbatch_size


def microbatched(loss_and_grads, microbatch_size: int | None):
    """``loss_and_grads(params, x, y)`` computed in equal micro-batches of ``microbatch_size``, averaged.

    The mean of equal micro-batches' mean losses and gradients is the whole batch's: the result equals
    ``loss_and_grads`` on the whole batch up to float rounding. Micro-batch ``i`` holds rows ``i, i + k,
    i + 2k, ...`` (k micro-batches), so that each device's rows of a batch split across devices stay on it.
    """

    def wrapped(params, x, y):
        n = x.shape[0]
        k = num_microbatches(n, microbatch_size)
        if k == 1:
            return loss_and_grads(params, x, y)
        xs, ys = x.reshape(n // k, k, *x.shape[1:]), y.reshape(n // k, k)
        total = None
        for i in range(k):  # unrolled: XLA:CPU runs convolutions inside loops far slower
            result = loss_and_grads(params, xs[:, i], ys[:, i])
            total = result if total is None else jax.tree.map(jnp.add, total, result)
        return jax.tree.map(lambda t: t / k, total)

    return wrapped


def _sgd_step(classifier: Classifier, optimizer: optax.GradientTransformation, microbatch_size: int | None = None):
    loss_and_grads = microbatched(classifier.loss_and_grads, microbatch_size)

    def step(state: TrainState, images: jax.Array, labels: jax.Array) -> tuple[TrainState, jax.Array]:
        loss, grads = loss_and_grads(state.params, classifier.preprocess(images), labels)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return TrainState(params=params, opt_state=opt_state, step=state.step + 1), loss

    return step


def make_train_step(classifier: Classifier, optimizer: optax.GradientTransformation,
                    microbatch_size: int | None = None):
    """``step(state, images, labels) -> (state, loss)``, jitted: one update on one batch of uint8 images
    (its gradient computed ``microbatch_size`` images at a time, see :func:`microbatched`)."""
    return jax.jit(_sgd_step(classifier, optimizer, microbatch_size), donate_argnums=0)


def make_train_chunk(classifier: Classifier, optimizer: optax.GradientTransformation, unroll: bool = False,
                     microbatch_size: int | None = None):
    """``chunk(state, images, labels, batch_indices) -> (state, losses)``, jitted.

    Runs one update per row of ``batch_indices`` (K, B), gathering each batch from the device-resident
    ``images`` (N, H, W, C) uint8 and ``labels`` (N,); returns the K losses. ``microbatch_size``: see
    :func:`microbatched`.
    """
    step = _sgd_step(classifier, optimizer, microbatch_size)

    def chunk(state, images, labels, batch_indices):
        if unroll or batch_indices.shape[0] == 1:
            # Straight-line code, no loop: XLA:CPU lays out convolutions for speed only outside loops.
            losses = []
            for indices in batch_indices:
                state, loss = step(state, images[indices], labels[indices])
                losses.append(loss)
            return state, jnp.stack(losses)

        def body(state, indices):
            return step(state, images[indices], labels[indices])

        return jax.lax.scan(body, state, batch_indices)

    return jax.jit(chunk, donate_argnums=0)


def make_predict(classifier: Classifier):
    """``predict(params, images) -> predicted class indices``, jitted."""
    return jax.jit(lambda params, images: jnp.argmax(classifier.apply(params, classifier.preprocess(images)), -1))


# --------------------------------------------------------------------------------------------------
# Devices
# --------------------------------------------------------------------------------------------------


def data_mesh(devices: list[jax.Device] | None = None) -> jax.sharding.Mesh:
    """A 1-D mesh named ``data`` over ``devices`` (default: all devices of the default backend, of every process)."""
    devices = jax.devices() if devices is None else devices
    return jax.sharding.Mesh(np.array(devices), ("data",))


def _batch_sharding(mesh: jax.sharding.Mesh, batch_size: int, batch_axis: int = 0) -> NamedSharding:
    """Splits axis ``batch_axis`` across the mesh when it divides evenly, else replicates."""
    if batch_size % mesh.size:
        return NamedSharding(mesh, P())
    spec = [None] * (batch_axis + 1)
    spec[batch_axis] = "data"
    return NamedSharding(mesh, P(*spec))


# --------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------


def accuracy(predict, params, images: np.ndarray, labels: np.ndarray, batch_size: int = 1000,
             mesh: jax.sharding.Mesh | None = None) -> float:
    """Fraction of ``images`` whose predicted class equals ``labels``. The last batch is padded, so one
    compiled shape serves every batch."""
    n = len(images)
    if n == 0:
        return float("nan")
    mesh = mesh or data_mesh()
    batch_size = min(batch_size, n)
    batch_size += (-batch_size) % mesh.size
    sharding = _batch_sharding(mesh, batch_size)
    correct = 0
    for start in range(0, n, batch_size):
        batch = images[start:start + batch_size]
        size = len(batch)
        if size < batch_size:
            batch = np.concatenate([batch, np.zeros((batch_size - size, *batch.shape[1:]), batch.dtype)])
        predicted = distributed.host_array(predict(params, distributed.global_array(batch, sharding)))[:size]
        correct += int((predicted == labels[start:start + size]).sum())
    return correct / n


# --------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------


def epoch_blocks(order: np.ndarray, batch_size: int, steps_per_call: int) -> list[np.ndarray]:
    """Splits an epoch's permutation into index blocks of shape (K, B), one compiled call each.

    Full batches come in blocks of ``steps_per_call``, the full batches left over in one shorter block,
    and a partial last batch in a (1, r) block: at most three shapes, the same every epoch.
    """
    full_batches, partial = divmod(len(order), batch_size)
    batches = order[:full_batches * batch_size].reshape(full_batches, batch_size)
    blocks = [batches[i:i + steps_per_call] for i in range(0, full_batches, steps_per_call)]
    if partial:
        blocks.append(order[full_batches * batch_size:].reshape(1, partial))
    return blocks


def _write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=1) + "\n").encode())


@dataclasses.dataclass
class RunResult:
    """What :func:`fit` returns: the trained params and everything recorded."""

    params: Any
    metrics: dict[str, Any]
    classifier: Classifier
    run_dir: Path


def fit(config: TrainConfig, run_dir: str | Path, *, dataset=None, resume: bool = False, overwrite: bool = False,
        progress: bool = True, verbose: bool = True, mesh: jax.sharding.Mesh | None = None,
        on_epoch: Callable[[int, dict[str, Any]], None] | None = None) -> RunResult:
    """Trains ``config.model`` on ``config.dataset``; writes checkpoint and metrics into ``run_dir``.

    Args:
      config: the hyperparameters.
      run_dir: output folder (created). Holds ``checkpoint.msgpack`` and ``metrics.json``.
      dataset: a loaded :class:`jaxnet.data.Dataset`, to skip loading (experiments that train many
        models load it once); default: ``load_dataset`` from the config.
      resume: continue from ``run_dir``'s checkpoint (its model config must match).
      overwrite: start afresh even if ``run_dir`` holds a run (else that is an error, so that a forgotten
        ``--resume`` does not replace a trained model).
      progress: show a progress bar with the epoch's mean loss so far (process 0 only).
      verbose: without the bar, print one line per epoch (process 0 only).
      mesh: devices to train on (default: all devices, of every process).
      on_epoch: called after each epoch with ``(epoch, metrics)``.
    """
    from jaxnet import data as data_lib

    config.validate()
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is a file: the run folder must be a folder (new or a run's)")
    if not resume and not overwrite and (run_dir / checkpoint.CHECKPOINT_NAME).exists():
        raise ConfigError(f"{run_dir} already holds a run: add --resume to continue it, --overwrite to start "
                          "it again from scratch, or choose another --out")
    main = distributed.is_main_process()  # the one process that writes files and prints (it creates run_dir)
    if dataset is None:
        dataset = data_lib.load_dataset(config.dataset, data_dir=config.data_dir, val_size=config.val_size,
                                        train_size=config.train_size, seed=config.seed)
    layers.check_labels(dataset.y_train, dataset.num_classes)
    mesh = mesh or data_mesh()
    if config.batch_size % mesh.size:
        raise ConfigError(f"batch_size {config.batch_size} must be a multiple of the number of devices ({mesh.size})")

    pixels = dataset.x_train.astype(np.float32) / 255.0
    mean, std = float(pixels.mean()), float(pixels.std())
    del pixels
    classifier = build_classifier(config, dataset.image_shape, dataset.num_classes, mean, std)
    optimizer = make_optimizer(config)
    key = jax.random.key(config.seed)
    replicated = NamedSharding(mesh, P())
    state = distributed.global_array(init_state(classifier, optimizer, jax.random.fold_in(key, 0)), replicated)
    meta = {"model": classifier.name, "model_config": classifier.config, "config": dataclasses.asdict(config),
            "class_names": list(dataset.class_names)}

    metrics: dict[str, Any] = {"config": dataclasses.asdict(config), "model": classifier.name,
                               "model_config": classifier.config, "loss": [], "train_accuracy": [],
                               "val_accuracy": [], "learning_rate": [], "epoch_seconds": [],
                               "devices": [str(d) for d in mesh.devices.flat]}
    start_epoch = 0
    ckpt_file = run_dir / checkpoint.CHECKPOINT_NAME
    if resume:
        def restore():  # on process 0, the one that wrote the checkpoint
            if not ckpt_file.exists():
                raise checkpoint.CheckpointError(
                    f"--resume: {run_dir} has no {checkpoint.CHECKPOINT_NAME} to resume from")
            return checkpoint.restore(ckpt_file, jax.device_get(state), classifier.name, classifier.config)

        restored, saved_meta = distributed.from_main_process(restore)
        state = distributed.global_array(restored, replicated)
        metrics.update({k: saved_meta["metrics"][k] for k in ("loss", "train_accuracy", "val_accuracy",
                                                                   "learning_rate", "epoch_seconds")})
        start_epoch = saved_meta["epoch"] + 1
        if start_epoch >= config.epochs:
            raise ConfigError(f"{run_dir} has already trained {start_epoch} of {config.epochs} epochs: "
                              f"ask for more (--epochs) to continue it")

    # The data, once, on every device; batches are gathered on the device.
    train_images = distributed.global_array(dataset.x_train, replicated)
    train_labels = distributed.global_array(dataset.y_train.astype(np.int32), replicated)
    rng = np.random.default_rng(config.seed)
    eval_count = min(config.train_eval_size, len(dataset.x_train))
    eval_subset = np.sort(rng.choice(len(dataset.x_train), eval_count, replace=False))

    n = len(dataset.x_train)
    chunk = make_train_chunk(classifier, optimizer, unroll=config.unroll, microbatch_size=config.microbatch_size)
    predict = make_predict(classifier)
    sampler = data_lib.BatchSampler(n, config.batch_size, config.seed)  # reshuffles every epoch, from (seed, epoch)
    steps_per_epoch = sampler.num_batches

    if main:  # now, not earlier: a run that fails to load its data leaves no empty folder behind
        run_dir.mkdir(parents=True, exist_ok=True)
    bar = None
    if progress and main:
        from tqdm.auto import tqdm

        bar = tqdm(total=(config.epochs - start_epoch) * steps_per_epoch, unit="step",
                   dynamic_ncols=True, leave=True)
    try:
        for epoch in range(start_epoch, config.epochs):
            started = time.perf_counter()
            lr = config.learning_rate * config.lr_decay**epoch
            state = set_learning_rate(state, lr)
            order = sampler.permutation(epoch)
            epoch_losses = []
            for block in epoch_blocks(order, config.batch_size, config.steps_per_call):
                sharding = _batch_sharding(mesh, block.shape[1], batch_axis=1)
                state, losses = chunk(state, train_images, train_labels, distributed.global_array(block, sharding))
                losses = distributed.host_array(losses)
                if not np.all(np.isfinite(losses)):
                    bad = len(metrics["loss"]) + len(epoch_losses) + int(np.argmin(np.isfinite(losses)))
                    raise TrainingDiverged(
                        f"the loss became {losses[~np.isfinite(losses)][0]} at iteration {bad} (epoch {epoch + 1}); "
                        f"training stopped. The last good checkpoint "
                        f"({'epoch ' + str(epoch) if epoch > 0 else 'none yet'}) is kept in {run_dir}. "
                        f"Try a smaller learning rate (now {lr:g}) or weight scale."
                    )
                epoch_losses.extend(losses.tolist())
                if bar is not None:
                    bar.set_postfix(epoch=f"{epoch + 1}/{config.epochs}", epoch_loss=f"{np.mean(epoch_losses):.4f}",
                                    refresh=False)
                    bar.update(len(losses))
            params = state.params
            train_acc = accuracy(predict, params, dataset.x_train[eval_subset], dataset.y_train[eval_subset],
                                 config.eval_batch_size, mesh)
            val_acc = accuracy(predict, params, dataset.x_val, dataset.y_val, config.eval_batch_size, mesh)
            metrics["loss"].extend(epoch_losses)
            metrics["train_accuracy"].append(train_acc)
            metrics["val_accuracy"].append(val_acc)
            metrics["learning_rate"].append(lr)
            metrics["epoch_seconds"].append(time.perf_counter() - started)
            host_state = distributed.host_array(state)  # on every process: it may take a collective
            if main:
                checkpoint.save(ckpt_file, host_state, {**meta, "epoch": epoch, "metrics": metrics})
                _write_json(run_dir / "metrics.json", metrics)
            line = (f"epoch {epoch + 1}/{config.epochs}: loss {np.mean(epoch_losses):.4f}, "
                    f"train acc {train_acc:.4f}, val acc {val_acc:.4f}")
            if bar is not None:
                bar.write(line)
            elif main and verbose:
                print(line, flush=True)
            if on_epoch is not None:
                on_epoch(epoch, metrics)
    finally:
        if bar is not None:
            bar.close()
    return RunResult(params=state.params, metrics=metrics, classifier=classifier, run_dir=run_dir)


def saved_config(run_dir_or_checkpoint: str | Path) -> TrainConfig | None:
    """The config a run was trained with (from its checkpoint), or None when it has no checkpoint yet."""
    path = checkpoint.checkpoint_path(run_dir_or_checkpoint)
    if not path.exists():
        return None
    meta, _ = checkpoint.read_meta(path)
    return TrainConfig(**meta["config"])


def load_run(run_dir_or_checkpoint: str | Path) -> tuple[Classifier, Any, dict[str, Any]]:
    """Loads a trained model: returns ``(classifier, params, meta)`` from a run folder or checkpoint file."""
    path = checkpoint.checkpoint_path(run_dir_or_checkpoint)
    meta, _ = checkpoint.read_meta(path)
    config = TrainConfig(**meta["config"])
    model_config = meta["model_config"]
    classifier = build_classifier(config, tuple(model_config.get("input_shape", (28, 28, 1))),
                                  model_config["num_classes"], model_config.get("mean", 0.0),
                                  model_config.get("std", 1.0))
    template = jax.eval_shape(lambda: init_state(classifier, make_optimizer(config), jax.random.key(0)))
    template = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), template)
    state, meta = checkpoint.restore(path, template, classifier.name, classifier.config)
    return classifier, state.params, meta


def evaluate_run(run_dir_or_checkpoint: str | Path, split: str = "test", dataset=None,
                 data_dir: str | None = None, record: bool = True) -> float:
    """Accuracy of a trained run on ``split`` ("test" or "val") of its dataset.

    The data is loaded as the run loaded it (same split and seed), from ``data_dir`` if given (a run moved
    to another machine), else from where the run found it. The test accuracy is recorded in metrics.json
    as ``test_accuracy``; validation accuracy is already there per epoch and is left as it is.
    """
    from jaxnet import data as data_lib

    classifier, params, meta = load_run(run_dir_or_checkpoint)
    config = TrainConfig(**meta["config"])
    if dataset is None:
        dataset = data_lib.load_dataset(config.dataset, data_dir=data_dir or config.data_dir,
                                        val_size=config.val_size, train_size=config.train_size, seed=config.seed)
    images, labels = (dataset.x_test, dataset.y_test) if split == "test" else (dataset.x_val, dataset.y_val)
    if len(images) == 0:
        raise data_lib.DataError(f"the run's {split} split is empty (it was trained with val_size=0)")
    acc = accuracy(make_predict(classifier), params, images, labels, config.eval_batch_size)
    metrics_file = checkpoint.checkpoint_path(run_dir_or_checkpoint).parent / "metrics.json"
    if record and split == "test" and metrics_file.exists():
        metrics = json.loads(metrics_file.read_text())
        metrics["test_accuracy"] = acc
        _write_json(metrics_file, metrics)
    return acc
