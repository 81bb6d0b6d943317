"""EfficientNet-Lite0 inference images/s: jaxnet.hub vs PyTorch eager (jaxnet.bench.pretrained).

The benchmark lives in the library; this script runs it alone. ``--help`` lists its sizes, ``--quick`` runs it
small. ``jaxnet bench`` runs every benchmark and writes benchmarks.md.
Run: .venv/bin/python experiments/bench_pretrained.py [--quick] [options]
"""

from jaxnet.bench.pretrained import main

if __name__ == "__main__":
    raise SystemExit(main())
