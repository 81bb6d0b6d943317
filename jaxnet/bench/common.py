"""What the benchmarks share: their result, targets, the matmul probe, interleaved timing, the machine.

This machine's speed drifts by up to about 1.7x within minutes, so a benchmark compares only figures it
measured itself in the same run, interleaved (A B A B ...), and measures its own ceiling, a float32 matmul,
in the same rounds (:class:`MatmulProbe`). Absolute times from different runs are not comparable.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import Any

MATMUL_SIZE = 2048
"""Side of the float32 matrices of the matmul probe."""


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Target:
    """A goal for one measured number: ``value >= threshold`` (``at_least``) or ``value <= threshold``."""

    label: str
    value: float
    threshold: float
    at_least: bool = True
    unit: str = "x"

    @property
    def met(self) -> bool:
        return self.value >= self.threshold if self.at_least else self.value <= self.threshold

    def line(self) -> str:
        """E.g. ``batch 64: jaxnet 1.82x PyTorch: MISSED (target >= 2x)``."""
        sign = ">=" if self.at_least else "<="
        return (f"{self.label}: {_fmt(self.value, self.unit)} {'met' if self.met else 'MISSED'} "
                f"(target {sign} {_fmt(self.threshold, self.unit)})")


def _fmt(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value:.0f}%"
    return f"{value:.2f}{unit}" if unit == "x" else f"{value:.3g}{unit}"


@dataclasses.dataclass
class BenchResult:
    """What a benchmark's ``run()`` returns.

    Attributes:
      name: the benchmark's name in :data:`jaxnet.bench.BENCHMARKS`.
      title: one line saying what is compared.
      markdown: the measurements: a line on the set-up, the table, notes (no heading).
      ratios: the key ratios as numbers, by a readable label (e.g. ``"jaxnet / NumPy speed"``).
      targets: the issue's targets for those numbers, each met or missed.
      options: the sizes it ran with (``run(**options)`` repeats them).
      quick: run with the small ``--quick`` sizes (a smoke test: its numbers are not meaningful).
      seconds: wall time of the whole run, compilation included.
      load: the 1-minute load average at the start and at the end.
    """

    name: str
    title: str
    markdown: str
    ratios: dict[str, float] = dataclasses.field(default_factory=dict)
    targets: list[Target] = dataclasses.field(default_factory=list)
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    quick: bool = False
    seconds: float = 0.0
    load: tuple[float, float] = (0.0, 0.0)

    def ratio_lines(self) -> list[str]:
        lines = [f"- {label}: {value:.3g}" for label, value in self.ratios.items()]
        return lines + [f"- target {t.line()}" for t in self.targets]

    def to_markdown(self) -> str:
        """The table and notes, then one line per ratio and target."""
        parts = [self.markdown.rstrip()]
        if self.ratios or self.targets:
            parts.append("\n".join(self.ratio_lines()))
        return "\n\n".join(parts) + "\n"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BenchResult:
        fields = dict(data)
        fields["targets"] = [Target(**t) for t in fields.get("targets", [])]
        fields["load"] = tuple(fields.get("load", (0.0, 0.0)))
        return cls(**fields)


def settle(name: str, defaults: Mapping[str, Any], quick_sizes: Mapping[str, Any], quick: bool,
           options: Mapping[str, Any]) -> dict[str, Any]:
    """The options a run uses: defaults, the quick sizes over them when ``quick``, then the caller's.

    Raises ``TypeError`` naming an option the benchmark does not have.
    """
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise TypeError(f"benchmark {name!r} has no option {', '.join(unknown)}; options: {', '.join(defaults)}")
    return {**defaults, **(quick_sizes if quick else {}), **{k: v for k, v in options.items() if v is not None}}


# --------------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------------


class MatmulProbe:
    """``probe() -> GFLOP/s`` of a jitted float32 ``size x size`` matmul: the machine's ceiling right now.

    Each call times ``calls`` matmuls (after the first one, compiled, in the constructor); the rates are kept
    in ``rates``.
    """

    def __init__(self, size: int = MATMUL_SIZE, calls: int = 3):
        import jax
        import jax.numpy as jnp

        self.size, self.calls, self.rates = size, calls, []
        self._a = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
        self._b = jax.random.normal(jax.random.key(2), (size, size), jnp.float32)
        self._matmul = jax.jit(jnp.matmul)
        self._matmul(self._a, self._b).block_until_ready()

    def __call__(self) -> float:
        import jax

        start = time.perf_counter()
        jax.block_until_ready([self._matmul(self._a, self._b) for _ in range(self.calls)])
        rate = 2 * self.size**3 * self.calls / (time.perf_counter() - start) / 1e9
        self.rates.append(rate)
        return rate

    def median(self) -> float:
        return statistics.median(self.rates)

    def summary(self) -> str:
        """E.g. ``float32 2048x2048 matmul (jnp, jit): median 150 GFLOP/s (range 120-170, 9 probes)``."""
        return (f"float32 {self.size}x{self.size} matmul (jnp, jit): median {self.median():.0f} GFLOP/s "
                f"(range {min(self.rates):.0f}-{max(self.rates):.0f}, {len(self.rates)} probes)")


@dataclasses.dataclass
class Timings:
    """Seconds of each version in each round of :func:`interleave` (``times[name][round]``)."""

    times: dict[str, list[float]]

    def median(self, name: str) -> float:
        return statistics.median(self.times[name])

    def total(self, name: str) -> float:
        return sum(self.times[name])

    def paired(self, slower: str, faster: str) -> list[float]:
        """Round by round ``time[slower] / time[faster]``: each ratio taken at one speed of the machine."""
        return [s / f for s, f in zip(self.times[slower], self.times[faster])]


def interleave(versions: Mapping[str, Callable[[int], Any]], rounds: int,
               probe: Callable[[], float] | None = None, rotate: bool = True,
               lead_in: bool = False) -> Timings:
    """Times ``versions[name](round)`` for every version in every round, the versions taking turns.

    The order of the versions is rotated every round (``rotate``), so none always runs first or last;
    ``probe`` (e.g. a :class:`MatmulProbe`) runs after every round. A version's result is waited for with
    ``jax.block_until_ready`` before its clock stops. Compile and warm up the versions before calling this.

    ``lead_in``: each version also runs once, untimed, right before its timed run, so that it is timed
    after itself rather than after another library. NumPy's OpenBLAS keeps its threads spinning for about
    0.1 s after a call: on 2 cores the version that ran next was 15-25% slower (measured on the two-layer
    benchmark), so without a lead-in the version that follows NumPy pays for NumPy's threads.
    """
    import jax

    names = list(versions)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names) if rotate else 0
        for name in names[shift:] + names[:shift]:
            if lead_in:
                jax.block_until_ready(versions[name](r))
            start = time.perf_counter()
            jax.block_until_ready(versions[name](r))
            times[name].append(time.perf_counter() - start)
        if probe is not None:
            probe()
    return Timings(times)


# --------------------------------------------------------------------------------------------------
# The machine
# --------------------------------------------------------------------------------------------------


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask), else all of them."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cpu_model() -> tuple[str, list[str]]:
    """The CPU's model name and its vector-instruction flags of interest, from /proc/cpuinfo where it exists."""
    model, flags = "", []
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not model:
                    model = value.strip()
                elif key == "flags" and not flags:
                    present = set(value.split())
                    flags = [f for f in ("avx2", "fma", "avx512f", "amx_tile") if f in present]
                if model and flags:
                    break
    except OSError:
        pass
    return model or platform.processor() or platform.machine(), flags


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def describe_machine() -> dict[str, Any]:
    """CPU model and flags, cores, Python, jax/jaxlib/numpy/torch versions, devices, XLA_FLAGS, load average."""
    import jax

    model, flags = cpu_model()
    devices = jax.devices()
    return {
        "cpu": model,
        "cpu_flags": flags,
        "cpus_usable": cpu_count(),
        "cpus_total": os.cpu_count(),
        "machine": platform.machine(),
        "system": platform.system(),
        "python": platform.python_version(),
        "versions": {p: _version(p) for p in ("jax", "jaxlib", "flax", "optax", "numpy", "torch")},
        "devices": [f"{d.platform}:{d.id} ({d.device_kind})" for d in devices],
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def machine_line(machine: Mapping[str, Any]) -> str:
    """One line of :func:`describe_machine`'s description."""
    flags = f" ({', '.join(machine['cpu_flags'])})" if machine["cpu_flags"] else ""
    versions = ", ".join(f"{p} {v}" for p, v in machine["versions"].items() if v)
    load = machine.get("load_average")
    load_text = " / ".join(f"{x:.2f}" for x in load) if load else "unknown"
    return (f"{machine['cpu']}{flags}, {machine['cpus_usable']} of {machine['cpus_total']} CPUs usable, "
            f"{machine['system']} {machine['machine']}; devices {', '.join(machine['devices'])}; "
            f"Python {machine['python']}, {versions}; XLA_FLAGS={machine['xla_flags']!r}; "
            f"load average (1/5/15 min) {load_text}")


def load_average() -> float:
    """The 1-minute load average (0 where the system does not say)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


def busy_warning(load: float, suffers: str = "", hint: str = "", threshold: float | None = None) -> str:
    """A sentence for a run that started busy: a 1-minute load average of at least ``threshold`` (default: the
    number of usable CPUs); empty otherwise. ``suffers`` names a multi-threaded library measured alongside
    (PyTorch's OpenMP, NumPy's OpenBLAS): its threads wait for each other whenever one is descheduled, so a
    busy machine slows it far more than XLA; ``hint`` says how to measure it on one thread."""
    if load < (cpu_count() if threshold is None else threshold):
        return ""
    text = (f" **The machine was busy** (load average {load:.1f} on {cpu_count()} CPUs at the start): other work "
            f"shared the CPUs, so the figures are low and noisy.")
    if suffers:
        text += (f" {suffers} suffers most: its threads wait for each other whenever one is descheduled"
                 f"{f' (compare {hint})' if hint else ''}.")
    return text


def threads(n: int) -> str:
    return f"{n} thread{'' if n == 1 else 's'}"


class Stopwatch:
    """Started when made; :meth:`stamp` gives a :class:`BenchResult`'s ``seconds`` and ``load`` fields."""

    def __init__(self):
        self.start, self.load = time.perf_counter(), load_average()

    def stamp(self) -> dict[str, Any]:
        return {"seconds": time.perf_counter() - self.start, "load": (self.load, load_average())}


# --------------------------------------------------------------------------------------------------
# A benchmark's own command line
# --------------------------------------------------------------------------------------------------


def parser(doc: str) -> argparse.ArgumentParser:
    """The argument parser of a benchmark's ``main()``: ``--quick``; the benchmark adds its sizes."""
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0],
                                epilog="Unset sizes keep their defaults (or the --quick sizes).")
    p.add_argument("--quick", action="store_true", help="small sizes: a few seconds (a smoke test)")
    return p


def run_main(run: Callable[..., BenchResult], args: argparse.Namespace) -> int:
    """Calls ``run`` with the parsed options and prints the machine and the result as markdown."""
    options = {k: v for k, v in vars(args).items() if k != "quick" and v is not None}
    print(f"Machine: {machine_line(describe_machine())}", flush=True)
    result = run(quick=args.quick, **options)
    print(f"\n## {result.title}\n")
    print(result.to_markdown())
    print(f"({result.seconds:.0f} s; load average {result.load[0]:.2f} at the start, {result.load[1]:.2f} at the end)")
    sys.stdout.flush()
    return 0


def progress(message: str) -> None:
    """A progress line on stderr (the result goes to stdout)."""
    print(message, file=sys.stderr, flush=True)
