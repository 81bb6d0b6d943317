"""Seconds per epoch of the two-layer net: jaxnet's loop vs jax.grad vs NumPy (jaxnet.bench.two_layer).

The benchmark lives in the library; this script runs it alone. ``--help`` lists its sizes, ``--quick`` runs it
small. ``jaxnet bench`` runs every benchmark and writes benchmarks.md.
Run: .venv/bin/python experiments/bench_two_layer.py [--quick] [options]
"""

from jaxnet.bench.two_layer import main

if __name__ == "__main__":
    raise SystemExit(main())
