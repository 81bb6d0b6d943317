"""Several processes, one run (jax.distributed, gloo on CPU): two processes on localhost train like one.

Each test that starts processes binds the coordinator to 127.0.0.1 on a free port, gives every process one
CPU device (``XLA_FLAGS`` forcing none), and kills them all if one fails or they take longer than
``TIMEOUT_S``, so that a hang fails the test instead of blocking the suite.
"""

import dataclasses
import json
import os
import re
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from conftest import make_dataset
from jaxnet import cli, configs, distributed, train

TESTS = os.path.dirname(os.path.abspath(__file__))
TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_env() -> dict[str, str]:
    """One CPU device per process, no distributed settings or proxies inherited from the caller."""
    env = {k: v for k, v in os.environ.items()
           if not k.lower().endswith("_proxy") and k not in (distributed.ENV_COORDINATOR, distributed.ENV_NUM_PROCESSES,
                                                            distributed.ENV_PROCESS_ID)}
    flags = re.sub(r"--xla_force_host_platform_device_count=\S+", "", env.get("XLA_FLAGS", "")).strip()
    path = os.pathsep.join(p for p in [TESTS, env.get("PYTHONPATH")] if p)
    env.update({"JAX_PLATFORMS": "cpu", "XLA_FLAGS": flags, "PYTHONPATH": path})
    return env


def run_together(commands: list[list[str]], tmp_path, timeout_s: float = TIMEOUT_S) -> list[tuple[int, str, str]]:
    """Starts every command at once; returns each one's (exit status, stdout, stderr). When one fails, or
    they run past ``timeout_s``, all are killed and the test fails with their output."""
    procs, logs = [], []
    for i, command in enumerate(commands):
        out, err = tmp_path / f"process{i}.out", tmp_path / f"process{i}.err"
        with open(out, "w") as stdout, open(err, "w") as stderr:
            procs.append(subprocess.Popen(command, stdout=stdout, stderr=stderr, env=process_env(), cwd=tmp_path))
        logs.append((out, err))
    deadline = time.monotonic() + timeout_s
    problem = None
    try:
        while problem is None and any(p.poll() is None for p in procs):
            failed = [i for i, p in enumerate(procs) if p.poll() not in (None, 0)]
            if failed:
                problem = f"process {failed[0]} exited with status {procs[failed[0]].returncode}"
            elif time.monotonic() > deadline:
                problem = f"the processes ran past {timeout_s} s"
            else:
                time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    results = [(p.returncode, out.read_text(), err.read_text()) for p, (out, err) in zip(procs, logs)]
    if problem is not None or any(code != 0 for code, _, _ in results):
        details = "\n".join(f"--- process {i} (status {code}):\n{out[-1500:]}\n{err[-3000:]}"
                            for i, (code, out, err) in enumerate(results))
        pytest.fail(f"{problem or 'a process failed'}\n{details}")
    return results


def one_device():
    return train.data_mesh(jax.devices()[:1])


def two_layer_config(**overrides):
    return dataclasses.replace(configs.two_layer(), **{"epochs": 2, "batch_size": 64, "hidden_dim": 32,
                                                       "train_eval_size": 64, "eval_batch_size": 64, **overrides})


def cnn_config():
    return dataclasses.replace(configs.cnn(), epochs=1, batch_size=64, train_eval_size=64, eval_batch_size=64)


# 285 training images, batch 64: 4 full batches split 32/32 across the processes, then a last batch of
# 29 that does not split in two (replicated: both processes compute it whole).
TWO_LAYER_DATA = dict(n_train=285, n_val=64, n_test=16)
CNN_DATA = dict(n_train=256, n_val=64, n_test=16)

SCRIPT = """
import dataclasses, json, sys
from jaxnet import distributed
process_id, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
distributed.initialize("127.0.0.1:" + port, 2, process_id, timeout_s=120)

import jax
from conftest import make_dataset
from test_distributed import CNN_DATA, TWO_LAYER_DATA, cnn_config, two_layer_config
from jaxnet import train
assert jax.process_count() == 2 and jax.device_count() == 2 and jax.local_device_count() == 1, jax.devices()

run = f"{out}/process{process_id}"
dataset = make_dataset(**TWO_LAYER_DATA)
try:  # process 0 finds no checkpoint: every process hears it, none waits for the others
    train.fit(two_layer_config(), run + "/mlp", dataset=dataset, progress=False, resume=True)
except train.checkpoint.CheckpointError as error:
    no_checkpoint = str(error)
# Epoch 1, then a resumed run to epoch 2: process 1 has no checkpoint of its own; process 0 reads it.
first = train.fit(two_layer_config(epochs=1), run + "/mlp", dataset=dataset, progress=False)
second = train.fit(two_layer_config(epochs=2), run + "/mlp", dataset=dataset, progress=False, resume=True)
cnn = train.fit(cnn_config(), run + "/cnn", dataset=make_dataset(**CNN_DATA), progress=False)
with open(f"{out}/result{process_id}.json", "w") as f:
    json.dump({"mlp_first": first.metrics, "mlp": second.metrics, "cnn": cnn.metrics, "no_checkpoint": no_checkpoint},
              f)
"""


def test_two_processes_train_like_one(tmp_path):
    port = str(free_port())
    started = time.perf_counter()
    run_together([[sys.executable, "-c", SCRIPT, str(i), port, str(tmp_path)] for i in range(2)], tmp_path)
    seconds = time.perf_counter() - started
    results = [json.loads((tmp_path / f"result{i}.json").read_text()) for i in range(2)]

    # The same run in this process, on one device.
    mlp = train.fit(two_layer_config(), tmp_path / "one/mlp", dataset=make_dataset(**TWO_LAYER_DATA),
                    progress=False, mesh=one_device())
    cnn = train.fit(cnn_config(), tmp_path / "one/cnn", dataset=make_dataset(**CNN_DATA), progress=False,
                    mesh=one_device())
    assert len(mlp.metrics["loss"]) == 2 * 5 and len(cnn.metrics["loss"]) == 4
    for result in results:
        np.testing.assert_allclose(result["mlp"]["loss"], mlp.metrics["loss"], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(result["cnn"]["loss"], cnn.metrics["loss"], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(result["mlp"]["val_accuracy"], mlp.metrics["val_accuracy"], atol=1 / 64)
        np.testing.assert_allclose(result["cnn"]["val_accuracy"], cnn.metrics["val_accuracy"], atol=1 / 64)
        assert len(result["mlp"]["devices"]) == 2
    assert results[0]["mlp"]["loss"] == results[1]["mlp"]["loss"]  # the processes agree exactly
    assert results[1]["mlp"]["loss"][:5] == results[1]["mlp_first"]["loss"]  # resumed from process 0's file

    # Process 0 alone wrote its files; process 1 wrote nothing.
    written = json.loads((tmp_path / "process0/mlp/metrics.json").read_text())
    assert written["loss"] == results[0]["mlp"]["loss"] and (tmp_path / "process0/cnn/checkpoint.msgpack").exists()
    assert not (tmp_path / "process1").exists()
    assert results[1]["no_checkpoint"] == f"--resume: {tmp_path}/process0/mlp has no checkpoint.msgpack to resume from"
    _, params, _ = train.load_run(tmp_path / "process0/mlp")  # a checkpoint like any other
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(mlp.params)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    for model, one in [("mlp", mlp), ("cnn", cnn)]:
        diff = np.abs(np.array(results[0][model]["loss"]) - np.array(one.metrics["loss"]))
        print(f"{model}: max abs difference {diff.max():.2e}, max rel {(diff / np.abs(one.metrics['loss'])).max():.2e}")
    print(f"two processes: {seconds:.1f} s")


def write_idx_dataset(folder, dataset):
    """``dataset``'s train and test images as Fashion-MNIST's four IDX files."""
    import struct

    folder.mkdir()
    for stem, images, labels in [("train", dataset.x_train, dataset.y_train), ("t10k", dataset.x_test, dataset.y_test)]:
        n = len(images)
        (folder / f"{stem}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
        labels = labels.astype(np.uint8).tobytes()
        (folder / f"{stem}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels)
    return folder


def test_cli_train_on_two_processes(tmp_path, capsys):
    data_dir = write_idx_dataset(tmp_path / "data", make_dataset(n_train=320, n_test=16))
    args = ["train", "two-layer", "--data-dir", str(data_dir), "--val-size", "64", "--epochs", "1",
            "--batch-size", "64", "--hidden-dim", "32", "--no-progress"]
    port = str(free_port())
    results = run_together([[sys.executable, "-m", "jaxnet", *args, "--out", f"out{i}", "--coordinator",
                             f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i)] for i in range(2)],
                           tmp_path)
    assert "final: train acc" in results[0][1] and "epoch 1/1" in results[0][1]
    assert "final" not in results[1][1] and "epoch" not in results[1][1]  # process 0 reports, alone
    for name in ["checkpoint.msgpack", "metrics.json", "training.png"]:
        assert (tmp_path / "out0" / name).exists()
    assert not (tmp_path / "out1").exists()

    assert cli.main([*args, "--out", str(tmp_path / "one")]) == 0  # one process, this one
    one = json.loads((tmp_path / "one/metrics.json").read_text())["loss"]
    two = json.loads((tmp_path / "out0/metrics.json").read_text())["loss"]
    assert len(one) == 4
    np.testing.assert_allclose(two, one, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("flags, message", [
    (["--coordinator", "127.0.0.1:1234"], "go together: give all three.*only --coordinator given"),
    (["--coordinator", "127.0.0.1", "--num-processes", "2", "--process-id", "0"], "must be HOST:PORT"),
    (["--coordinator", "127.0.0.1:99999", "--num-processes", "2", "--process-id", "0"], "port 99999 is not in"),
    (["--coordinator", "127.0.0.1:1234", "--num-processes", "2", "--process-id", "2"], r"process id 2 is not in 0"),
    (["--coordinator", "127.0.0.1:1234", "--num-processes", "0", "--process-id", "0"], "at least 1"),
])
def test_cli_refuses_inconsistent_process_flags(tmp_path, capsys, flags, message):
    assert cli.main(["train", "two-layer", "--out", str(tmp_path), *flags]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not jax.distributed.is_initialized()


def test_initialize_reads_the_environment_and_names_what_is_missing(monkeypatch):
    monkeypatch.setenv(distributed.ENV_COORDINATOR, "10.0.0.1:1234")
    monkeypatch.setenv(distributed.ENV_NUM_PROCESSES, "2")
    monkeypatch.delenv(distributed.ENV_PROCESS_ID, raising=False)
    with pytest.raises(distributed.DistributedError, match="all three; missing: process id"):
        distributed.initialize()
    monkeypatch.setenv(distributed.ENV_PROCESS_ID, "two")
    with pytest.raises(distributed.DistributedError, match=r"\$JAX_PROCESS_ID must be an integer, got 'two'"):
        distributed.initialize()
    with pytest.raises(distributed.DistributedError, match=r"process id 5 is not in 0\.\.1"):
        distributed.initialize(process_id=5)
    assert distributed.parse_address("[::1]:80") == ("[::1]", 80)
    with pytest.raises(distributed.DistributedError, match="must be HOST:PORT"):
        distributed.parse_address("::1:80")


def test_a_process_whose_peers_never_come_says_what_to_check(tmp_path):
    port = free_port()
    code = f"from jaxnet import distributed; distributed.initialize('127.0.0.1:{port}', 2, 1, timeout_s=2)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=process_env(),
                          timeout=60)
    assert proc.returncode == 1
    assert f"process 1 of 2 gave up after 2 s: not all 2 processes connected to the coordinator at 127.0.0.1:{port}" \
        in proc.stderr
    assert "each with its own process id 0..1" in proc.stderr and "firewall" in proc.stderr
