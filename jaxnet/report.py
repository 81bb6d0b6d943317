"""The main job: runs the assignment's parts and writes one REPORT.md.

Each part is a function ``(out_dir, quick) -> markdown``. A part that raises is reported as failed,
with its error, and the other parts still run.
"""

from __future__ import annotations

import datetime
import time
import traceback
from collections.abc import Callable
from pathlib import Path

Part = Callable[[Path, bool], str]


def gradcheck_part(out_dir: Path, quick: bool) -> str:
    import jax.numpy as jnp

    from jaxnet import gradcheck
    from jaxnet.cli import format_gradcheck_table

    sections = []
    for name, dtype, tolerance in [
        ("float64", jnp.float64, gradcheck.FLOAT64_TOLERANCE),
        ("float32", jnp.float32, gradcheck.FLOAT32_TOLERANCE),
    ]:
        sections.append(format_gradcheck_table(gradcheck.run_standard_checks(dtype), name, tolerance))
    return "\n\n".join(sections)


def two_layer_part(out_dir: Path, quick: bool) -> str:
    from jaxnet import runs

    return runs.two_layer_experiment(out_dir / "two_layer", quick=quick).replace("](two_layer_", "](two_layer/two_layer_")


def pretrained_part(out_dir: Path, quick: bool) -> str:
    from jaxnet.hub import report

    return report.pretrained_part(out_dir, quick)


def cnn_part(out_dir: Path, quick: bool) -> str:
    from jaxnet import runs

    epochs = runs.CNN_QUICK_EPOCHS if quick else runs.CNN_REPORT_EPOCHS
    return runs.cnn_experiment(out_dir / "cnn", epochs=epochs).replace("](cnn.png", "](cnn/cnn.png")


PARTS: dict[str, tuple[str, Part]] = {
    "gradcheck": ("Parts 1-2: computational graphs and layers, gradient checks", gradcheck_part),
    "two_layer": ("Parts 3-4: two-layer net trained with the hand-written gradients", two_layer_part),
    "cnn": ("Part 5: the CNN on Fashion-MNIST", cnn_part),
    "pretrained": ("Part 6: a pretrained ImageNet classifier (EfficientNet-Lite0 in Flax) on photos", pretrained_part),
}


def write_report(out_dir: Path, parts: list[str] | None = None, quick: bool = False) -> Path:
    """Runs ``parts`` (default: all, in order) and writes ``out_dir/REPORT.md``; returns its path."""
    import jax

    out_dir.mkdir(parents=True, exist_ok=True)
    names = list(PARTS) if parts is None else parts
    devices = ", ".join(str(d) for d in jax.devices())
    lines = [
        "# jaxnet: the assignment, generated",
        "",
        f"Generated {datetime.datetime.now().isoformat(timespec='seconds')} on {devices}"
        f"{' (--quick)' if quick else ''}.",
        "",
    ]
    for name in names:
        title, part = PARTS[name]
        print(f"== {title}", flush=True)
        start = time.perf_counter()
        try:
            body = part(out_dir, quick)
            status = "done"
        except Exception as error:  # a failed part must not stop the others
            body = f"**This part failed:** `{type(error).__name__}: {error}`\n\n```\n{traceback.format_exc()}```"
            status = "FAILED"
        seconds = time.perf_counter() - start
        lines += [f"## {title}", "", f"_{status} in {seconds:.1f} s_", "", body, ""]
        print(f"   {status} in {seconds:.1f} s", flush=True)
    path = out_dir / "REPORT.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines))
    tmp.replace(path)
    return path
