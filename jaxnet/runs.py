"""Experiment recipes shared by the scripts in ``experiments/`` and the main job (``jaxnet report``).

- :func:`search`: a grid search on the validation set, one short run per grid point.
- :func:`two_layer_experiment`: the assignment's part 4 end to end: search, best model trained in full and
  tested once, overfit model, and the linear classifier as a baseline; returns the markdown section with plots
  and tables.
- :func:`cnn_experiment`: part 5: the CNN trained on Fashion-MNIST (50k/10k/10k), tested once.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path
from typing import Any

import jax

from jaxnet import configs, plots, train
from jaxnet.train import TrainConfig

#: The two-layer search grid (learning rate, hidden width, L2 strength).
TWO_LAYER_GRID = {"learning_rate": [0.03, 0.1, 0.2], "hidden_dim": [256, 512], "reg": [1e-4, 1e-3]}
TWO_LAYER_QUICK_GRID = {"learning_rate": [0.03, 0.1], "hidden_dim": [256], "reg": [1e-4]}


def provenance() -> str:
    """One markdown line saying which command wrote a results file, when, and on what machine."""
    import datetime
    import shlex
    import sys

    from jaxnet.bench.common import cpu_count, cpu_model

    command = shlex.join([Path(sys.executable).name, *sys.argv])
    when = datetime.datetime.now().isoformat(timespec="seconds")
    return (f"Written {when} by `{command}` on {cpu_count()} CPU cores ({cpu_model()[0]}); "
            f"JAX devices: {', '.join(str(d) for d in jax.devices())}.")


def search(base: TrainConfig, grid: dict[str, list[Any]], out_dir: Path, dataset, epochs: int,
           progress: bool = False) -> list[dict[str, Any]]:
    """Trains ``base`` for ``epochs`` at every point of ``grid``; returns rows sorted by best val accuracy."""
    names = list(grid)
    rows = []
    for i, values in enumerate(itertools.product(*(grid[n] for n in names))):
        point = dict(zip(names, values))
        config = dataclasses.replace(base, epochs=epochs, **point)
        result = train.fit(config, out_dir / f"point-{i:02d}", dataset=dataset, progress=progress, verbose=False, overwrite=True)
        val = result.metrics["val_accuracy"]
        rows.append({**point, "val_accuracy": max(val), "final_val_accuracy": val[-1],
                     "train_accuracy": result.metrics["train_accuracy"][-1]})
        print(f"   search {i + 1}: {point} -> val {max(val):.4f}", flush=True)
    rows.sort(key=lambda r: -r["val_accuracy"])
    return rows


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def cell(column, value):
        if "accuracy" in column:
            return f"{value:.4f}"
        return f"{value:g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(cell(c, row[c]) for c in columns) + " |")
    return "\n".join(lines)


def _hyperparameters(config: TrainConfig) -> str:
    fields = ["epochs", "batch_size", "optimizer", "learning_rate", "lr_decay", "train_size", "seed"]
    if config.optimizer == "momentum":
        fields.insert(3, "momentum")
    if config.weight_decay:
        fields.insert(3, "weight_decay")
    if config.model == "two_layer":
        fields += ["hidden_dim", "weight_scale", "reg"]
    elif config.model == "linear":
        fields += ["weight_scale", "reg"]
    return ", ".join(f"{f} = {getattr(config, f)}" for f in fields if getattr(config, f) is not None)


def two_layer_experiment(out_dir: Path, quick: bool = False, dataset_name: str = "fashion_mnist",
                         data_dir: str | None = None, progress: bool = False) -> str:
    """Search, best model (tested once) and overfit model for the two-layer net, and the linear classifier
    (``configs.linear()``, tested once) as a baseline; returns markdown.

    Writes under ``out_dir``: ``search/``, ``best/``, ``overfit/`` and ``linear/`` run folders,
    ``two_layer_best.png`` and ``two_layer_overfit.png`` (and PDFs), ``two_layer_search.json``.
    """
    from jaxnet import data

    out_dir = Path(out_dir)
    base = dataclasses.replace(configs.two_layer(), dataset=dataset_name, data_dir=data_dir)
    dataset = data.load_dataset(dataset_name, data_dir=data_dir, seed=base.seed)

    grid = TWO_LAYER_QUICK_GRID if quick else TWO_LAYER_GRID
    rows = search(base, grid, out_dir / "search", dataset, epochs=2 if quick else 5, progress=progress)
    (out_dir / "two_layer_search.json").write_text(json.dumps(rows, indent=1))
    chosen = {k: rows[0][k] for k in grid}
    best_config = dataclasses.replace(base, epochs=5 if quick else base.epochs, **chosen)
    best = train.fit(best_config, out_dir / "best", dataset=dataset, progress=progress, overwrite=True)
    test_accuracy = train.evaluate_run(out_dir / "best", "test", dataset=dataset)  # measured once, here
    plots.plot_training(best.metrics, out_dir / "two_layer_best.png", title=f"two-layer net, best model ({dataset_name})")

    overfit_config = dataclasses.replace(configs.two_layer_overfit(), dataset=dataset_name, data_dir=data_dir,
                                         **({"epochs": 30} if quick else {}))
    small = data.load_dataset(dataset_name, data_dir=data_dir, train_size=overfit_config.train_size,
                              seed=overfit_config.seed)
    overfit = train.fit(overfit_config, out_dir / "overfit", dataset=small, progress=progress, verbose=False, overwrite=True)
    plots.plot_training(overfit.metrics, out_dir / "two_layer_overfit.png",
                        title=f"two-layer net, overfit on {overfit_config.train_size} images ({dataset_name})")

    linear_config = dataclasses.replace(configs.linear(), dataset=dataset_name, data_dir=data_dir,
                                        **({"epochs": 5} if quick else {}))
    linear = train.fit(linear_config, out_dir / "linear", dataset=dataset, progress=progress, verbose=False,
                       overwrite=True)
    linear_test_accuracy = train.evaluate_run(out_dir / "linear", "test", dataset=dataset)

    search_columns = [*grid, "val_accuracy", "train_accuracy"]
    m_best, m_over, m_linear = best.metrics, overfit.metrics, linear.metrics
    return "\n".join([
        f"### Hyperparameter search ({dataset_name}, validation set of {len(dataset.x_val)} images)",
        "",
        f"Grid search, {2 if quick else 5} epochs per point, other settings as the best model below; "
        "best validation accuracy over the epochs. Sorted best first.",
        "",
        _table(rows, search_columns),
        "",
        "### Best model",
        "",
        f"Hyperparameters: {_hyperparameters(best_config)}.",
        "",
        f"Final train accuracy {m_best['train_accuracy'][-1]:.4f}, validation accuracy {m_best['val_accuracy'][-1]:.4f}, "
        f"**test accuracy {test_accuracy:.4f}** (measured once, on the {len(dataset.x_test)} test images).",
        "",
        "![two-layer best model](two_layer_best.png)",
        "",
        "### Overfit model",
        "",
        f"Hyperparameters: {_hyperparameters(overfit_config)}.",
        "",
        f"Train accuracy {m_over['train_accuracy'][-1]:.4f} on its {overfit_config.train_size} training images, "
        f"validation accuracy {m_over['val_accuracy'][-1]:.4f}: it memorized the training set.",
        "",
        "![two-layer overfit model](two_layer_overfit.png)",
        "",
        "### Baseline: the linear classifier",
        "",
        "Softmax regression (one fc layer, `jaxnet train linear`), trained by the same loop with the same "
        f"hand-written layers. Hyperparameters: {_hyperparameters(linear_config)}.",
        "",
        f"Final train accuracy {m_linear['train_accuracy'][-1]:.4f}, validation accuracy "
        f"{m_linear['val_accuracy'][-1]:.4f}, **test accuracy {linear_test_accuracy:.4f}** (measured once): the "
        f"hidden layer adds {100 * (test_accuracy - linear_test_accuracy):.1f} points.",
    ])


#: Epochs of the CNN in the main job (a few minutes on 2 CPU cores) and in the full experiment.
CNN_REPORT_EPOCHS = 4
CNN_QUICK_EPOCHS = 1


def cnn_experiment(out_dir: Path, epochs: int | None = None, data_dir: str | None = None,
                   progress: bool = False) -> str:
    """Trains the assignment's CNN (``configs.cnn()``, ``epochs`` overriding), tests it once; returns markdown.

    Writes ``out_dir/run/`` (checkpoint, metrics) and ``out_dir/cnn.png`` (and PDF).
    """
    from jaxnet.models import cnn

    out_dir = Path(out_dir)
    config = configs.cnn()
    config = dataclasses.replace(config, data_dir=data_dir, **({"epochs": epochs} if epochs else {}))
    result = train.fit(config, out_dir / "run", progress=progress, overwrite=True)
    test_accuracy = train.evaluate_run(out_dir / "run", "test")  # measured once, here
    plots.plot_training(result.metrics, out_dir / "cnn.png", title="CNN on Fashion-MNIST")
    m = result.metrics
    seconds = sum(m["epoch_seconds"])
    num_params = sum(leaf.size for leaf in jax.tree.leaves(result.params))
    return "\n".join([
        "Architecture: conv1 1->64 k3 s2 p1 -> LeakyReLU(0.01) -> AvgPool 2x2 -> conv2 64->64 k3 s1 p1 -> LeakyReLU "
        f"-> conv3 64->16 k3 s2 p1 -> LeakyReLU -> flatten 256 -> Dense 10 ({num_params:,} parameters); "
        f"inputs normalized with mean {cnn.FASHION_MNIST_MEAN} and std {cnn.FASHION_MNIST_STD}.",
        "",
        f"Hyperparameters: {_hyperparameters(config)}.",
        "",
        f"Trained on {len(m['loss'])} batches in {seconds:.0f} s on {', '.join(m['devices'])}. "
        f"Final train accuracy {m['train_accuracy'][-1]:.4f}, validation accuracy {m['val_accuracy'][-1]:.4f}, "
        f"**test accuracy {test_accuracy:.4f}** (measured once, on the 10000 test images).",
        "",
        "![CNN training](cnn.png)",
    ])
