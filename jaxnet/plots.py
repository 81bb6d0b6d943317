"""Training curves: loss per iteration (raw and smoothed) beside train/validation accuracy per epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def smooth(values: Any, window: int) -> np.ndarray:
    """Moving average over ``window`` points (shorter at the start, so it has one value per point)."""
    values = np.asarray(values, np.float64)
    if len(values) == 0:
        return values
    cumsum = np.cumsum(np.insert(values, 0, 0.0))
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(0, ends - window)
    return (cumsum[ends] - cumsum[starts]) / (ends - starts)


def plot_training(metrics: dict[str, Any], path: str | Path, title: str = "") -> list[Path]:
    """Writes ``path`` as PNG and PDF (the suffix is replaced); returns both paths."""
    # A Figure without pyplot: no global backend switch, so a notebook's inline plots keep working.
    from matplotlib.figure import Figure

    loss = np.asarray(metrics["loss"], np.float64)
    train_acc = metrics["train_accuracy"]
    val_acc = metrics["val_accuracy"]
    fig = Figure(figsize=(11, 4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    steps = np.arange(1, len(loss) + 1)
    ax_loss.plot(steps, loss, ".", markersize=1.5, alpha=0.3, color="tab:blue", label="per iteration")
    window = max(1, len(loss) // 50)
    ax_loss.plot(steps, smooth(loss, window), color="tab:red", linewidth=1.5, label=f"moving average ({window})")
    ax_loss.set_xlabel("iteration")
    ax_loss.set_ylabel("training loss")
    ax_loss.set_yscale("log")
    ax_loss.legend()
    epochs = np.arange(1, len(train_acc) + 1)
    ax_acc.plot(epochs, train_acc, "o-", label="train")
    ax_acc.plot(epochs, val_acc, "s-", label="validation")
    ax_acc.set_xlabel("epoch")
    ax_acc.xaxis.get_major_locator().set_params(integer=True)
    ax_acc.set_ylabel("accuracy")
    ax_acc.grid(alpha=0.3)
    ax_acc.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    written = []
    for suffix in (".png", ".pdf"):
        out = path.with_suffix(suffix)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=120)
        written.append(out)
    return written
