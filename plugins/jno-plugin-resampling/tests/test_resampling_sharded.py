"""Resampling keeps the sharding of the points (4 forced CPU devices in a subprocess) and
gives the same points as on one device."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def record():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JNO_NO_PROGRESS="1")
    script = Path(__file__).with_name("sharded_resample.py")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600,
                         cwd=os.environ.get("TMPDIR", "/tmp"))
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("method", ["rad", "r3"])
def test_sharding_kept_and_points_equal_one_device(record, method):
    assert record["n_devices"] == 4
    four, one = record[method]["four"], record[method]["one"]
    assert "data" in four["sharding_before"] and four["sharding"] == four["sharding_before"]
    assert four["n_shards"] == 4
    assert four["inside"] and one["inside"]
    assert four["compiles"] == [] and one["compiles"] == []
    assert [r["epoch"] for r in four["records"]] == [5, 10]
    np.testing.assert_allclose(np.asarray(four["points"]), np.asarray(one["points"]), rtol=1e-5, atol=1e-5)
