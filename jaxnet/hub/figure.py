"""Figures of classified photos: each image (with the square the model saw) beside a bar chart of its top classes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from jaxnet.hub.classify import Classification
from jaxnet.hub.images import Preprocessing, read_rgb

FORMATS = ("png", "jpg", "jpeg", "pdf", "svg")
"""Figure file suffixes :func:`plot_classifications` writes."""


def plot_classifications(
    results: Sequence[Classification],
    preprocessing: Preprocessing,
    path: str | os.PathLike,
    titles: Sequence[str] | None = None,
    top: int = 5,
) -> Path:
    """Writes one row per readable image: the photo with the model's crop outlined, and its top ``top`` classes.

    Args:
      results: from :func:`jaxnet.hub.classify.classify_files`; those with an error are left out.
      preprocessing: the model's, to outline the crop.
      path: the figure file (its suffix picks the format: .png, .pdf, .svg, ...); folders are created.
      titles: one per result (default: the file names).

    Returns:
      The figure's path.
    """
    # A Figure without pyplot: no global backend switch, so a notebook's inline plots keep working.
    import matplotlib.patches as patches
    from matplotlib.figure import Figure

    titles = list(titles) if titles is not None else [Path(r.path).name for r in results]
    rows = [(r, t) for r, t in zip(results, titles, strict=True) if r.error is None]
    if not rows:
        raise ValueError("no image could be read: nothing to plot")
    fig = Figure(figsize=(10, 2.8 * len(rows)))
    axes = fig.subplots(len(rows), 2, squeeze=False, gridspec_kw={"width_ratios": [1, 1.3]})
    for (result, title), (ax_image, ax_bars) in zip(rows, axes):
        image = read_rgb(result.path)
        ax_image.imshow(image)
        left, top_edge, right, bottom = preprocessing.crop_box(*image.size)
        ax_image.add_patch(patches.Rectangle((left, top_edge), right - left, bottom - top_edge,
                                             fill=False, edgecolor="yellow", linewidth=1.5, linestyle="--"))
        ax_image.set_title(title, fontsize=10)
        ax_image.axis("off")
        shown = result.top[:top]
        ax_bars.barh(range(len(shown)), [p.probability for p in shown], color="tab:blue")
        ax_bars.set_yticks(range(len(shown)), [f"{p.name} ({p.index})" for p in shown], fontsize=9)
        ax_bars.invert_yaxis()
        ax_bars.set_xlim(0, 1)
        ax_bars.set_xlabel("probability")
        for y, p in enumerate(shown):
            inside = p.probability > 0.85
            ax_bars.text(p.probability - 0.01 if inside else p.probability + 0.01, y, f"{p.probability:.1%}",
                         va="center", ha="right" if inside else "left", color="white" if inside else "black",
                         fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
