"""Shared fixtures: a private cache folder, small datasets, and a compilation counter."""

from __future__ import annotations

import jaxnet  # noqa: F401  (sets XLA's CPU flags before jax is imported)

import jax
import numpy as np
import pytest

from jaxnet import data


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Every test writes its cache into a temporary folder, never the user's."""
    monkeypatch.setenv("JAXNET_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def make_dataset(n_train=300, n_val=100, n_test=100, shape=(28, 28, 1), num_classes=10, seed=0) -> data.Dataset:
    """A learnable synthetic dataset: each class is a noisy copy of its own random template."""
    rng = np.random.default_rng(seed)
    templates = rng.integers(0, 256, (num_classes, *shape))

    def split(n):
        y = rng.integers(0, num_classes, n).astype(np.int32)
        noise = rng.normal(0, 40, (n, *shape))
        return np.clip(templates[y] + noise, 0, 255).astype(np.uint8), y

    (xt, yt), (xv, yv), (xs, ys) = split(n_train), split(n_val), split(n_test)
    return data.Dataset("synthetic", xt, yt, xv, yv, xs, ys, tuple(f"class {i}" for i in range(num_classes)))


@pytest.fixture
def tiny_dataset():
    return make_dataset()


class CompileCounter:
    """Counts XLA backend compilations while installed."""

    EVENT = "/jax/core/compile/backend_compile_duration"

    def __init__(self):
        self.count = 0

    def __call__(self, event, duration, **kwargs):
        if event == self.EVENT:
            self.count += 1


@pytest.fixture
def compile_counter():
    counter = CompileCounter()
    jax.monitoring.register_event_duration_secs_listener(counter)
    yield counter
    jax.monitoring.unregister_event_duration_listener(counter)
