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

from jaxnet.cache import atomic_write_bytes

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
    """Runs ``parts`` (default: all, in order) and writes ``out_dir/REPORT.md``; returns its path.

    Each part's section is kept in ``out_dir/parts/NAME.md`` (with when, where and how long it ran), and
    REPORT.md is assembled from every section there, in the parts' order: running one part again updates
    its section and keeps the others. REPORT.md is rewritten after every part, so an interrupted run keeps
    what is done.
    """
    import jax

    out_dir.mkdir(parents=True, exist_ok=True)
    sections = out_dir / "parts"
    sections.mkdir(exist_ok=True)
    names = list(PARTS) if parts is None else parts
    devices = ", ".join(str(d) for d in jax.devices())
    path = out_dir / "REPORT.md"
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
        when = datetime.datetime.now().isoformat(timespec="seconds")
        stamp = f"_{status} in {seconds:.1f} s on {devices}, {when}{' (--quick)' if quick else ''}_"
        atomic_write_bytes(sections / f"{name}.md", f"## {title}\n\n{stamp}\n\n{body}\n".encode())
        print(f"   {status} in {seconds:.1f} s", flush=True)
        atomic_write_bytes(path, _assemble(sections).encode())
    return path


def _assemble(sections: Path) -> str:
    lines = ["# jaxnet: the assignment, generated", "",
             "Each part says when and on which devices it ran; `jaxnet report PART` redoes one part.", ""]
    for name in PARTS:
        section = sections / f"{name}.md"
        lines.append(section.read_text() if section.exists() else f"## {PARTS[name][0]}\n\n_not run yet_\n")
    return "\n".join(lines)
