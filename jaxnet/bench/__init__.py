"""Benchmarks: jaxnet against the other ways of doing the same work, each measured in one run, interleaved.

One module per benchmark, each with ``run(quick=False, **options) -> BenchResult`` (the table as markdown,
the key ratios as numbers, the targets met or missed) and ``main()`` (its own command line, also
``python -m jaxnet.bench.NAME``):

- ``layers``: hand-written backward pass vs ``jax.grad`` for fc -> relu -> fc -> softmax loss;
- ``two_layer``: seconds per epoch of the two-layer net: the training loop vs ``jax.grad`` vs NumPy;
- ``cnn``: CNN training images/s: what ``jaxnet train cnn`` runs vs a per-batch step vs PyTorch eager;
- ``pretrained``: EfficientNet-Lite0 inference images/s: ``jaxnet.hub`` vs PyTorch eager.

:func:`run_benchmarks` (``jaxnet bench``) runs them, each in its own process, and writes ``benchmarks.md``.
What they share (matmul probe, interleaved timing, machine description) is in :mod:`jaxnet.bench.common`.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCHMARKS: dict[str, str] = {
    "layers": "jaxnet.bench.layers",
    "two_layer": "jaxnet.bench.two_layer",
    "cnn": "jaxnet.bench.cnn",
    "pretrained": "jaxnet.bench.pretrained",
}
"""Benchmark name -> module with ``run(quick=False) -> BenchResult``; run in this order."""

SCRIPTS = {name: f"experiments/bench_{name}.py" for name in ("layers", "two_layer", "cnn", "pretrained")}
"""The scripts that run the same benchmarks (thin wrappers around each module's ``main()``)."""

REPORT_NAME = "benchmarks.md"
STDERR_LINES = 40
"""Lines of a failed benchmark's stderr kept in the report."""


@dataclasses.dataclass
class Outcome:
    """One benchmark's run: its result, or why it failed."""

    name: str
    module: str
    result: object | None = None  # a BenchResult
    error: str | None = None
    detail: str = ""  # the traceback, or the end of stderr
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.result is None


def run_in_subprocess(name: str, module: str, quick: bool = False) -> Outcome:
    """Runs ``module.run(quick=quick)`` in a new Python process; its stdout passes through, stderr is echoed.

    A benchmark that raises, crashes or is killed comes back as a failed :class:`Outcome` with its error.
    """
    from jaxnet.bench.common import BenchResult

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="jaxnet-bench-") as tmp:
        result_file = Path(tmp) / "result.json"
        command = [sys.executable, "-m", "jaxnet.bench._worker", module, "--json", str(result_file)]
        command += ["--quick"] if quick else []
        tail: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        with subprocess.Popen(command, stderr=subprocess.PIPE, text=True, errors="replace") as process:
            for line in process.stderr:
                sys.stderr.write(line)
                tail.append(line)
            status = process.wait()
        seconds = time.perf_counter() - start
        payload = json.loads(result_file.read_text()) if result_file.exists() else {}
    if "result" in payload and status == 0:
        return Outcome(name, module, result=BenchResult.from_json(payload["result"]), seconds=seconds)
    error = payload.get("error") or f"the benchmark's process ended with exit status {status}"
    detail = payload.get("traceback") or "".join(tail)
    return Outcome(name, module, error=error, detail=detail, seconds=seconds)


def reproduce_command(name: str, quick: bool) -> str:
    """The commands that run one benchmark again."""
    text = f"`jaxnet bench{' --quick' if quick else ''} {name}`"
    if name in SCRIPTS and BENCHMARKS.get(name) == f"jaxnet.bench.{name}":
        text += (f", or `python {SCRIPTS[name]}{' --quick' if quick else ''}` "
                 f"(its sizes: `python {SCRIPTS[name]} --help`)")
    return text


def format_report(machine: dict, outcomes: list[Outcome], pending: list[str], quick: bool) -> str:
    """benchmarks.md: the machine, a summary, then each benchmark's table, ratios and targets."""
    from jaxnet.bench.common import busy_warning, machine_line

    load = machine.get("load_average")
    busy = busy_warning(load[0], threshold=1.0) if load else ""
    lines = [
        "# jaxnet benchmarks",
        "",
        f"Written {datetime.datetime.now().isoformat(timespec='seconds')} by `jaxnet bench"
        f"{' --quick' if quick else ''}`; each benchmark ran in its own process, one after the other.",
    ]
    if quick:
        lines += ["", "**--quick: small sizes, a smoke test of the benchmarks. Its figures mean nothing.**"]
    lines += [
        "",
        f"Machine: {machine_line(machine)}.{busy}",
        "",
        "This machine's speed drifts (up to about 1.7x within minutes), so each benchmark measures its versions in "
        "one run, interleaved, with its own float32 matmul probe: compare the figures within a section, not "
        "absolute times across sections or runs.",
        "",
        "| benchmark | result | targets met | seconds |",
        "| --- | --- | ---: | ---: |",
    ]
    for o in outcomes:
        if o.failed:
            lines.append(f"| {o.name} | FAILED | | {o.seconds:.0f} |")
        else:
            met = sum(t.met for t in o.result.targets)
            lines.append(f"| {o.name} | done | {met} of {len(o.result.targets)} | {o.seconds:.0f} |")
    lines += [f"| {name} | not run yet | | |" for name in pending]
    for o in outcomes:
        lines += ["", f"## {o.name}", ""]
        if o.failed:
            lines += [f"**Failed:** `{o.error}`", "", f"Reproduce: {reproduce_command(o.name, quick)}.", "",
                      "```", o.detail.rstrip(), "```"]
            continue
        r = o.result
        lines += [
            f"**{r.title}**",
            "",
            f"Reproduce: {reproduce_command(o.name, quick)}. Ran {o.seconds:.0f} s (compilation included); "
            f"load average {r.load[0]:.2f} at the start, {r.load[1]:.2f} at the end.",
            "",
            r.to_markdown().rstrip(),
        ]
    return "\n".join(lines) + "\n"


def run_benchmarks(out_dir: str | os.PathLike = "results", names: list[str] | None = None,
                   quick: bool = False) -> tuple[Path, list[Outcome]]:
    """Runs the benchmarks named (default: all of :data:`BENCHMARKS`), each in its own process.

    ``out_dir/benchmarks.md`` is rewritten (atomically) after each one, so an interrupted run keeps the
    finished sections. A failed benchmark is reported in it with its error; the others still run.
    Returns the file's path and the outcomes; raises ``KeyError`` for an unknown name.
    """
    import jaxnet  # noqa: F401  (XLA's CPU flags, before jax is imported: the machine line shows them)
    from jaxnet.bench.common import describe_machine, progress
    from jaxnet.cache import atomic_write_bytes

    names = list(BENCHMARKS) if not names else list(names)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise KeyError(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    path = Path(out_dir) / REPORT_NAME
    machine = describe_machine()
    outcomes: list[Outcome] = []
    for i, name in enumerate(names):
        progress(f"== benchmark {name} ({i + 1} of {len(names)})")
        outcome = run_in_subprocess(name, BENCHMARKS[name], quick)
        if outcome.failed:
            progress(f"== benchmark {name} FAILED: {outcome.error}")
        outcomes.append(outcome)
        atomic_write_bytes(path, format_report(machine, outcomes, names[i + 1:], quick).encode())
    return path, outcomes
