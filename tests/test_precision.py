"""``import jno`` sets full float32 matmuls unless the user chose a precision."""

import os
import subprocess
import sys

import pytest

CODE = "import jno, jax; print(jax.config.jax_default_matmul_precision)"


def _run(env_update: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_DEFAULT_MATMUL_PRECISION", "JNO_MATMUL_PRECISION")}
    env.update(env_update)
    return subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env)


@pytest.mark.parametrize("env, expected", [
    ({}, "highest"),
    ({"JNO_MATMUL_PRECISION": "default"}, "None"),
    ({"JNO_MATMUL_PRECISION": "tensorfloat32"}, "tensorfloat32"),
    ({"JAX_DEFAULT_MATMUL_PRECISION": "bfloat16"}, "bfloat16"),  # the user's JAX choice wins
])
def test_default_precision(env, expected):
    out = _run(env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == expected


def test_bad_value_is_a_clear_error():
    out = _run({"JNO_MATMUL_PRECISION": "quadruple"})
    assert out.returncode != 0
    assert "JNO_MATMUL_PRECISION='quadruple'" in out.stderr and "highest" in out.stderr
