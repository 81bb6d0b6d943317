"""The ``jaxnet`` command (also ``python -m jaxnet``).

Each subcommand is a function ``_cmd_<name>(args) -> int`` registered in :func:`build_parser`. Heavy
modules are imported inside the commands, so ``jaxnet --help`` answers at once. Errors a user can fix
(bad arguments, missing files) are printed as one line and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import sys


class UserError(Exception):
    """An error the user can fix; the CLI prints its message and exits with status 2."""


def _cmd_gradcheck(args: argparse.Namespace) -> int:
    import jax.numpy as jnp

    from jaxnet import gradcheck

    dtype = {"float64": jnp.float64, "float32": jnp.float32}[args.dtype]
    tolerance = gradcheck.FLOAT64_TOLERANCE if args.dtype == "float64" else gradcheck.FLOAT32_TOLERANCE
    results = gradcheck.run_standard_checks(dtype, seed=args.seed)
    print(format_gradcheck_table(results, args.dtype, tolerance))
    failed = [check.name for check, result in results if not _passes(result, args.dtype, tolerance)]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from jaxnet import report

    unknown = [p for p in args.parts or [] if p not in report.PARTS]
    if unknown:
        raise UserError(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(report.PARTS)}")
    path = report.write_report(Path(args.out), args.parts, quick=args.quick)
    print(f"wrote {path}")
    return 0


def _passes(result, dtype_name: str, tolerance: float) -> bool:
    # In float32 finite differences are too coarse to hold to a tolerance (see jaxnet.gradcheck).
    error = result.max_error if dtype_name == "float64" else result.vjp_error
    return error < tolerance


def format_gradcheck_table(results, dtype_name: str, tolerance: float) -> str:
    """A markdown table of :func:`jaxnet.gradcheck.run_standard_checks` results."""
    held = "both errors" if dtype_name == "float64" else "the jax.grad error"
    lines = [
        f"Gradient checks in {dtype_name}: relative error of each hand-written backward pass; "
        f"pass when {held} < {tolerance:g}.",
        "",
        "| check | shapes | vs jax.grad (vjp) | vs numeric | result |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    for check, result in results:
        verdict = "pass" if _passes(result, dtype_name, tolerance) else "FAIL"
        lines.append(
            f"| {check.name} | {check.shapes} | {result.vjp_error:.2e} | {result.numeric_error:.2e} | {verdict} |"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxnet",
        description="Backpropagation by hand, checked against JAX; image classifiers with JAX, Flax and Optax.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "gradcheck",
        help="check every graph and layer's hand-written backward pass against jax.grad and numeric gradients",
        description="Prints a table of relative errors; exits with status 1 if any check fails.",
    )
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64", help="default: %(default)s")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default: %(default)s)")
    p.set_defaults(func=_cmd_gradcheck)

    p = sub.add_parser(
        "report",
        help="run the assignment's parts and write REPORT.md (the main job)",
        description="Runs every part in order (or those named) and writes OUT/REPORT.md with figures and tables.",
    )
    p.add_argument("--out", default="results", help="output folder (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="small sizes: a few minutes in all")
    p.add_argument("parts", nargs="*", metavar="PART", help="parts to run (default: all)")
    p.set_defaults(func=_cmd_report)

    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UserError as error:
        print(f"jaxnet {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"jaxnet {args.command}: interrupted", file=sys.stderr)
        return 130
