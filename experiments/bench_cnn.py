"""CNN training images/s: jaxnet train cnn's loop vs a per-batch step vs PyTorch eager (jaxnet.bench.cnn).

The benchmark lives in the library; this script runs it alone. ``--help`` lists its sizes, ``--quick`` runs it
small. ``jaxnet bench`` runs every benchmark and writes benchmarks.md.
Run: .venv/bin/python experiments/bench_cnn.py [--quick] [options]
"""

from jaxnet.bench.cnn import main

if __name__ == "__main__":
    raise SystemExit(main())
