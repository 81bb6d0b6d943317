"""The assignment's part 5: the CNN on Fashion-MNIST (50k train / 10k validation / 10k test).

Writes OUT/cnn.md with the hyperparameters, the loss/accuracy plot and the test accuracy (measured once).
Run: .venv/bin/python experiments/cnn.py --out results/cnn [--epochs 15]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jaxnet  # noqa: F401  (sets XLA's CPU flags before jax is imported)
from jaxnet import configs, runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/cnn", help="output folder (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=configs.cnn().epochs, help="default: %(default)s")
    parser.add_argument("--data-dir", default=None, help="folder with the Fashion-MNIST IDX files")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    markdown = runs.cnn_experiment(out, epochs=args.epochs, data_dir=args.data_dir, progress=True)
    (out / "cnn.md").write_text(f"{runs.provenance()}\n\n# CNN on Fashion-MNIST\n\n" + markdown + "\n")
    print(f"wrote {out / 'cnn.md'}")


if __name__ == "__main__":
    main()
