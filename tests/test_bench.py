"""`jaxnet bench`: every benchmark runs (small sizes) and lands in benchmarks.md; a failing one is reported.

Speed itself is measured by the benchmarks, never asserted here.
"""

import json
import os
import re
import time

import pytest

from jaxnet import bench, cli
from jaxnet.bench import common

SECTIONS = {
    "layers": "hand-written / jax.grad time",
    "two_layer": "jaxnet / NumPy speed",
    "cnn": "batch 64: jaxnet share of the matmul rate",
    "pretrained": "| jaxnet (Flax, jit) |",
}


def test_quick_bench_writes_every_section(tmp_path, capsys):
    start = time.perf_counter()
    assert cli.main(["bench", "--quick", "--out", str(tmp_path)]) == 0
    seconds = time.perf_counter() - start
    text = (tmp_path / "benchmarks.md").read_text()
    assert re.search(r"^Machine: .+ CPUs usable, .*devices cpu:0.*jax 0\.\d+.*XLA_FLAGS=.*load average", text, re.M)
    assert "--quick: small sizes" in text
    headings = re.findall(r"^## (\w+)$", text, re.M)
    assert headings == list(bench.BENCHMARKS)
    for name, expected in SECTIONS.items():
        section = text.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
        assert expected in section, name
        assert f"Reproduce: `jaxnet bench --quick {name}`" in section
        assert f"experiments/bench_{name}.py" in section
        assert re.search(r"^\| -+:? \|", section, re.M), f"{name}: no table"
        if "PyTorch not measured" not in section:  # without torch (no `.[bench]`) there is nothing to compare with
            assert re.search(r"^- target .*: .* (met|MISSED) \(target [<>]= ", section, re.M), f"{name}: no target"
        assert f"| {name} | done |" in text
    assert "FAILED" not in text
    print(f"jaxnet bench --quick: {seconds:.0f} s")  # shown with -s; not asserted (see the module docstring)


def test_failing_benchmark_is_reported_and_the_others_still_written(tmp_path, monkeypatch):
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "boom_bench.py").write_text(
        "def run(quick=False):\n    raise RuntimeError('simulated benchmark failure')\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(modules), os.environ.get("PYTHONPATH")])))
    monkeypatch.setattr(bench, "BENCHMARKS", {"boom": "boom_bench", "layers": bench.BENCHMARKS["layers"]})

    out = tmp_path / "out"
    assert cli.main(["bench", "--quick", "--out", str(out), "boom", "layers"]) == 1
    text = (out / "benchmarks.md").read_text()
    assert "| boom | FAILED |" in text and "| layers | done |" in text
    boom = text.split("## boom\n", 1)[1].split("\n## ", 1)[0]
    assert "**Failed:** `RuntimeError: simulated benchmark failure`" in boom
    assert "Traceback" in boom and "boom_bench.py" in boom
    assert "hand-written / jax.grad time" in text.split("## layers\n", 1)[1]


def test_crashing_benchmark_process_is_reported(tmp_path, monkeypatch):
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "crash_bench.py").write_text(
        "import os, sys\n\ndef run(quick=False):\n    print('about to die', file=sys.stderr)\n    os._exit(3)\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(modules), os.environ.get("PYTHONPATH")])))
    outcome = bench.run_in_subprocess("crash", "crash_bench", quick=True)
    assert outcome.failed
    assert outcome.error == "the benchmark's process ended with exit status 3"
    assert "about to die" in outcome.detail


def test_unknown_benchmark_is_a_user_error(tmp_path, capsys):
    assert cli.main(["bench", "--out", str(tmp_path), "nonesuch"]) == 2
    err = capsys.readouterr().err
    assert "unknown benchmark(s) nonesuch" in err and "layers, two_layer, cnn, pretrained" in err
    assert not (tmp_path / "benchmarks.md").exists()


def test_result_round_trips_through_json_and_formats_targets():
    result = common.BenchResult(
        name="x", title="X", markdown="| a |\n| --- |",
        ratios={"a / b": 1.5},
        targets=[common.Target("a / b", 1.5, 2.0), common.Target("share", 61.0, 60.0, unit="%"),
                 common.Target("time", 1.2, 1.1, at_least=False)],
        options={"rounds": 3}, quick=True, seconds=1.0, load=(0.5, 0.7))
    again = common.BenchResult.from_json(json.loads(json.dumps(result.to_json())))
    assert again == result
    lines = again.ratio_lines()
    assert lines == ["- a / b: 1.5",
                     "- target a / b: 1.50x MISSED (target >= 2.00x)",
                     "- target share: 61% met (target >= 60%)",
                     "- target time: 1.20x MISSED (target <= 1.10x)"]


def test_options_quick_sizes_and_unknown_names():
    defaults, quick = {"rounds": 10, "batch": 32}, {"rounds": 2}
    assert common.settle("b", defaults, quick, False, {}) == {"rounds": 10, "batch": 32}
    assert common.settle("b", defaults, quick, True, {"batch": None}) == {"rounds": 2, "batch": 32}
    assert common.settle("b", defaults, quick, True, {"rounds": 5}) == {"rounds": 5, "batch": 32}
    with pytest.raises(TypeError, match="benchmark 'b' has no option size; options: rounds, batch"):
        common.settle("b", defaults, quick, False, {"size": 1})


def test_machine_description():
    machine = common.describe_machine()
    assert machine["cpu"] and machine["cpus_usable"] >= 1 and machine["devices"]
    assert machine["versions"]["jax"] and machine["versions"]["jaxlib"]
    line = common.machine_line(machine)
    assert "XLA_FLAGS=" in line and "load average" in line and machine["cpu"] in line
