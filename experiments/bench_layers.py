"""Hand-written backward pass vs jax.grad for fc -> relu -> fc -> softmax loss (jaxnet.bench.layers).

The benchmark lives in the library; this script runs it alone. ``--help`` lists its sizes, ``--quick`` runs it
small. ``jaxnet bench`` runs every benchmark and writes benchmarks.md.
Run: .venv/bin/python experiments/bench_layers.py [--quick] [options]
"""

from jaxnet.bench.layers import main

if __name__ == "__main__":
    raise SystemExit(main())
