"""Runs one benchmark in this process and writes its result as JSON: the child process of ``jaxnet bench``.

``python -m jaxnet.bench._worker MODULE --json FILE [--quick]`` imports MODULE, calls its ``run(quick=...)``
and writes ``{"result": BenchResult.to_json()}`` to FILE, or ``{"error": ..., "traceback": ...}`` and exits
with status 1 if it raised.
"""

from __future__ import annotations

import argparse
import importlib
import json
import traceback
from pathlib import Path

import jaxnet  # noqa: F401  (sets XLA's CPU flags before jax is imported)

from jaxnet.cache import atomic_write_bytes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module")
    parser.add_argument("--json", required=True, type=Path)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    try:
        result = importlib.import_module(args.module).run(quick=args.quick)
        payload, status = {"result": result.to_json()}, 0
    except Exception as error:  # reported by the parent; the other benchmarks still run
        payload = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
        status = 1
    atomic_write_bytes(args.json, json.dumps(payload, indent=1).encode())
    return status


if __name__ == "__main__":
    raise SystemExit(main())
