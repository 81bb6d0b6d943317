"""`jaxnet train / evaluate / predict` as a user runs them, on the real Fashion-MNIST files."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from jaxnet import cli


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    code = cli.main(["train", "two-layer", "--epochs", "2", "--train-size", "3000", "--hidden-dim", "64", "--batch-size", "32",
                     "--out", str(out), "--no-progress"])
    assert code == 0
    return out


def test_train_writes_run_folder(trained_run):
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["config"]["train_size"] == 3000 and metrics["config"]["hidden_dim"] == 64
    assert len(metrics["val_accuracy"]) == 2 and metrics["val_accuracy"][-1] > 0.7
    for name in ["checkpoint.msgpack", "training.png", "training.pdf"]:
        assert (trained_run / name).stat().st_size > 0


def test_evaluate_prints_test_accuracy(trained_run, capsys):
    assert cli.main(["evaluate", str(trained_run)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("test accuracy: ") and 0.7 < float(line.split()[-1]) <= 1


def test_predict_classifies_images_and_reports_unreadable_ones(trained_run, tmp_path, capsys):
    from jaxnet import data

    dataset = data.load_dataset("fashion_mnist")
    trouser = next(i for i, y in enumerate(dataset.y_test) if y == 1)
    Image.fromarray(dataset.x_test[trouser, :, :, 0]).save(tmp_path / "trouser.png")
    Image.fromarray(np.repeat(dataset.x_test[trouser], 3, axis=2)).resize((56, 56)).save(tmp_path / "big.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    paths = [str(tmp_path / n) for n in ["trouser.png", "broken.png", "big.png"]]
    assert cli.main(["predict", str(trained_run), *paths]) == 1
    captured = capsys.readouterr()
    assert f"{paths[0]}: 1 Trouser" in captured.out
    assert f"{paths[2]}: " in captured.out
    assert "broken.png" in captured.err and "error:" in captured.err
    assert "warning:" in captured.err and "big.png" in captured.err


def test_resume_continues_a_finished_run_for_more_epochs(trained_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    assert cli.main(["train", "two-layer", "--epochs", "3", "--train-size", "3000", "--hidden-dim", "64", "--batch-size", "32",
                     "--out", str(run), "--resume", "--no-progress"]) == 0
    assert len(json.loads((run / "metrics.json").read_text())["val_accuracy"]) == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "two-layer", "--lr", "-0.1"], "learning_rate must be a positive number"),
        (["train", "two-layer", "--batch-size", "-5"], "batch_size must be at least 1"),
        (["train", "two-layer", "--data-dir", "/no/such/folder"], "Fashion-MNIST not found"),
        (["train", "two-layer", "--hidden-dim", "32", "--resume"], "no checkpoint.msgpack to resume from"),
        (["evaluate", "/no/such/run"], "no checkpoint at /no/such/run"),
    ],
)
def test_bad_input_is_one_clear_line(args, message, tmp_path, capsys):
    if args[0] == "train":
        args = [*args, "--out", str(tmp_path / "out")]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_checkpoint_of_another_architecture_is_refused(trained_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    assert cli.main(["train", "cnn", "--epochs", "3", "--out", str(run), "--resume", "--no-progress"]) == 2
    assert "holds a 'two_layer' model, not 'cnn'" in capsys.readouterr().err


def test_train_help_lists_the_flags():
    out = subprocess.run([sys.executable, "-m", "jaxnet", "train", "--help"], capture_output=True, text=True).stdout
    for flag in ["--dataset", "--hidden-dim", "--lr", "--reg", "--epochs", "--batch-size", "--seed", "--out", "--resume"]:
        assert flag in out


def test_resume_keeps_the_runs_own_settings(trained_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    # only --epochs given: --train-size 3000, --hidden-dim 64 and --batch-size 32 come from the checkpoint
    assert cli.main(["train", "two-layer", "--epochs", "3", "--out", str(run), "--resume", "--no-progress"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["config"]["train_size"] == 3000 and metrics["config"]["hidden_dim"] == 64
    assert len(metrics["val_accuracy"]) == 3
    assert cli.main(["train", "two-layer", "--epochs", "3", "--out", str(run), "--resume"]) == 2
    assert "already trained 3 of 3 epochs" in capsys.readouterr().err


def test_evaluate_val_leaves_the_per_epoch_history(trained_run, capsys):
    before = json.loads((trained_run / "metrics.json").read_text())["val_accuracy"]
    assert cli.main(["evaluate", str(trained_run), "--split", "val"]) == 0
    assert json.loads((trained_run / "metrics.json").read_text())["val_accuracy"] == before
    assert float(capsys.readouterr().out.split()[-1]) == before[-1]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--momentum", "5", "--optimizer", "momentum"], "momentum must be in [0, 1)"),
        (["--out", ""], "--out must name a folder"),
    ],
)
def test_more_bad_train_flags(args, message, tmp_path, capsys):
    argv = ["train", "two-layer", *args]
    if "--out" not in args:
        argv += ["--out", str(tmp_path / "out")]
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # a run that cannot start leaves no folder behind


def test_out_that_is_a_file(tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    assert cli.main(["train", "two-layer", "--out", str(tmp_path / "afile")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_a_fresh_run_does_not_replace_a_trained_one_without_overwrite(trained_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = (run / "checkpoint.msgpack").read_bytes()
    args = ["train", "two-layer", "--epochs", "1", "--train-size", "500", "--out", str(run), "--no-progress"]
    assert cli.main(args) == 2
    assert "already holds a run: add --resume" in capsys.readouterr().err
    assert (run / "checkpoint.msgpack").read_bytes() == before
    assert cli.main([*args, "--overwrite"]) == 0
    assert json.loads((run / "metrics.json").read_text())["config"]["train_size"] == 500


def test_interrupt_hint_says_whether_resume_can_continue(trained_run, tmp_path):
    import argparse

    assert "--resume continues" in cli._resume_hint(argparse.Namespace(command="train", out=str(trained_run)))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "nothing was saved" in cli._resume_hint(argparse.Namespace(command="train", out=str(empty)))
    assert not empty.exists()


def test_ctrl_c_after_an_epoch_keeps_checkpoint_and_plots_the_finished_epochs(tmp_path, monkeypatch, capsys):
    from jaxnet import train

    real_fit = train.fit

    def fit_interrupted_after_first_epoch(*args, **kwargs):
        def on_epoch(epoch, metrics):
            raise KeyboardInterrupt  # what Ctrl-C raises, here right after epoch 1 was saved

        return real_fit(*args, **kwargs, on_epoch=on_epoch)

    monkeypatch.setattr(train, "fit", fit_interrupted_after_first_epoch)
    out = tmp_path / "run"
    code = cli.main(["train", "two-layer", "--epochs", "3", "--train-size", "500", "--hidden-dim", "16",
                     "--out", str(out), "--no-progress"])
    assert code == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "with its plot, training.png" in err and "--resume continues" in err
    assert len(json.loads((out / "metrics.json").read_text())["val_accuracy"]) == 1
    assert (out / "checkpoint.msgpack").stat().st_size > 0
    assert (out / "training.png").stat().st_size > 0 and (out / "training.pdf").stat().st_size > 0
