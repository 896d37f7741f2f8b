"""Sharded collocation points and on-device minibatches (4 forced CPU devices in a subprocess)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jno_core.errors import ConfigError

from helpers_core import poisson1d


@pytest.fixture(scope="module")
def record():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JNO_NO_PROGRESS="1")
    script = Path(__file__).with_name("sharded_run.py")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def test_four_devices_give_the_same_losses_as_one(record):
    assert record["n_devices"] == 4
    np.testing.assert_allclose(record["four"], record["one"], rtol=2e-5)
    assert "data" in record["interior_sharding"]


def test_minibatch_sampling_is_reproducible_from_the_seed(record):
    np.testing.assert_array_equal(record["batch_a"], record["batch_a"])
    np.testing.assert_allclose(record["batch_b"], record["batch_a"], rtol=2e-5)
    assert not np.allclose(record["batch_c"], record["batch_a"])


def test_trackers_give_the_same_values_sharded(record):
    one, four = record["trackers_one"], record["trackers_four"]
    assert set(one) == set(four) and len(one) > 10
    for key in one:
        np.testing.assert_allclose(np.asarray(four[key], dtype=float), np.asarray(one[key], dtype=float),
                                   rtol=2e-3, atol=1e-5, err_msg=key)


def test_checkpoint_from_sharded_run_resumes_on_one_device(record):
    np.testing.assert_allclose(record["resumed"], record["straight"], rtol=2e-5)


def test_minibatch_is_without_replacement_and_deterministic():
    import jax
    import jax.numpy as jnp

    from jno_core.batching import sample_points

    pts = {"s": jnp.arange(50.0)[:, None]}
    a = np.asarray(sample_points(pts, 20, 0, jnp.int32(7))["s"][:, 0])
    b = np.asarray(sample_points(pts, 20, 0, jnp.int32(7))["s"][:, 0])
    c = np.asarray(sample_points(pts, 20, 0, jnp.int32(8))["s"][:, 0])
    assert len(set(a.tolist())) == 20 and np.array_equal(a, b) and not np.array_equal(a, c)


def test_batchsize_not_smaller_than_any_constraint_errors():
    crux, _ = poisson1d()
    with pytest.raises(ConfigError, match="constraint_0 has 19"):
        crux.solve(2, batchsize=19)


def test_too_many_devices_errors():
    crux, _ = poisson1d()
    with pytest.raises(ConfigError, match="device"):
        crux.solve(2, devices=64)
