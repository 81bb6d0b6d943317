"""The assignment's part 4: hyperparameter search, best model (tested once), overfit model, linear baseline.

Writes OUT/two_layer.md with the search table, both plots, the hyperparameters and the test accuracy.
The same script runs on CIFAR-10 for a user who has it (--dataset cifar10 --data-dir .../cifar-10-batches-py).

Run: .venv/bin/python experiments/two_layer.py --out results/two_layer [--quick] [--dataset cifar10]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jaxnet  # noqa: F401  (sets XLA's CPU flags before jax is imported)
from jaxnet import runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/two_layer", help="output folder (default: %(default)s)")
    parser.add_argument("--dataset", default="fashion_mnist", help="default: %(default)s")
    parser.add_argument("--data-dir", default=None, help="folder with the dataset's files")
    parser.add_argument("--quick", action="store_true", help="a smaller grid and fewer epochs")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    markdown = runs.two_layer_experiment(out, quick=args.quick, dataset_name=args.dataset, data_dir=args.data_dir,
                                         progress=True)
    (out / "two_layer.md").write_text(f"{runs.provenance()}\n\n# Two-layer net\n\n" + markdown + "\n")
    print(f"wrote {out / 'two_layer.md'}")


if __name__ == "__main__":
    main()
