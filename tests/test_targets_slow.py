"""The assignment's targets, with full-length training. Slow (minutes each): run with `pytest -m slow`."""

import json

import pytest

from jaxnet import configs, runs, train

pytestmark = pytest.mark.slow


def test_two_layer_best_model_reaches_88_percent_test_accuracy(tmp_path):
    train.fit(configs.two_layer(), tmp_path, progress=False)
    assert train.evaluate_run(tmp_path, "test") >= 0.88


def test_overfit_model_memorizes_1000_images(tmp_path):
    result = train.fit(configs.two_layer_overfit(), tmp_path, progress=False)
    assert result.metrics["train_accuracy"][-1] >= 0.95
    assert result.metrics["val_accuracy"][-1] <= result.metrics["train_accuracy"][-1] - 0.1


def test_cnn_main_job_default_reaches_88_percent(tmp_path):
    runs.cnn_experiment(tmp_path, epochs=runs.CNN_REPORT_EPOCHS)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["test_accuracy"] >= 0.88


def test_cnn_full_experiment_reaches_91_percent(tmp_path):
    runs.cnn_experiment(tmp_path)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["test_accuracy"] >= 0.91


def test_linear_baseline_reaches_83_percent_test_accuracy(tmp_path):
    train.fit(configs.linear(), tmp_path, progress=False)
    assert train.evaluate_run(tmp_path, "test") >= 0.83
