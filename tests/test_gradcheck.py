"""gradcheck itself: it passes correct backward passes and catches wrong ones; and the CLI table."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from jaxnet import cli, gradcheck, layers


def test_relative_error():
    assert gradcheck.relative_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert gradcheck.relative_error([0.0], [0.0]) == 0.0
    assert gradcheck.relative_error([1.0], [-1.0]) == pytest.approx(1.0)


def test_catches_a_wrong_backward_pass():
    def wrong_fc_backward(grad_out, cache):
        grad_x, grad_w, grad_b = layers.fc_backward(grad_out, cache)
        return grad_x, grad_w, 2 * grad_b  # the bias gradient is off by a factor 2

    args = [jnp.ones((3, 4)), jnp.ones((4, 2)), jnp.zeros(2)]
    result = gradcheck.check_pair(layers.fc_forward, wrong_fc_backward, args)
    assert result.vjp_error > 0.1 and result.numeric_error > 0.1


def test_catches_a_subtly_wrong_relu_backward():
    def leaky(grad_out, x):  # passes 1% of the gradient where x < 0
        return jnp.where(x > 0, grad_out, 0.01 * grad_out)

    x = jax.random.normal(jax.random.key(0), (4, 5))
    result = gradcheck.check_pair(layers.relu_forward, leaky, [x])
    assert 1e-4 < result.vjp_error < 0.1
    assert result.numeric_error > 1e-4


def test_numeric_check_samples_large_arguments():
    x = jax.random.normal(jax.random.key(0), (50, 40))
    w = jax.random.normal(jax.random.key(1), (40, 30))
    result = gradcheck.check_pair(layers.fc_forward, layers.fc_backward, [x, w, jnp.zeros(30)], num_coords=16)
    assert result.max_error < 1e-9


def test_standard_suite_passes_in_float64_below_the_assignment_threshold():
    results = gradcheck.run_standard_checks(jnp.float64)
    assert len(results) == 10
    for check, result in results:
        assert result.vjp_error < 1e-12, check.name
        assert result.numeric_error < gradcheck.FLOAT64_TOLERANCE, check.name


def test_cli_gradcheck_table_and_exit_status(capsys):
    assert cli.main(["gradcheck", "--dtype", "float32"]) == 0
    out = capsys.readouterr().out
    assert "| fc_forward / fc_backward |" in out and "FAIL" not in out
    assert out.count("| pass |") == 10


def test_cli_gradcheck_fails_when_a_check_fails(monkeypatch, capsys):
    bad = gradcheck.GradCheckResult(vjp_error=0.5, numeric_error=0.5)
    good = gradcheck.GradCheckResult(vjp_error=0.0, numeric_error=0.0)
    check = gradcheck.Check("broken", "-", lambda key, dtype: bad)
    monkeypatch.setattr(gradcheck, "run_standard_checks", lambda dtype, seed=0: [(check, bad), (check, good)])
    assert cli.main(["gradcheck"]) == 1
    captured = capsys.readouterr()
    assert "| broken | - | 5.00e-01 | 5.00e-01 | FAIL |" in captured.out
    assert "FAILED: broken" in captured.err


def test_console_script_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "jaxnet", "--help"], capture_output=True, text=True, check=True).stdout
    assert "gradcheck" in out and "report" in out


def test_wrong_argument_is_a_usage_error():
    proc = subprocess.run([sys.executable, "-m", "jaxnet", "gradcheck", "--dtype", "int8"], capture_output=True, text=True)
    assert proc.returncode == 2 and "invalid choice: 'int8'" in proc.stderr


def test_device_flag_for_a_missing_accelerator_is_one_clear_line():
    proc = subprocess.run([sys.executable, "-m", "jaxnet", "gradcheck", "--device", "tpu"], capture_output=True,
                          text=True, env={**os.environ, "JAX_PLATFORMS": ""})
    assert proc.returncode == 2
    assert "--device tpu: JAX found no TPU" in proc.stderr and "Traceback" not in proc.stderr
