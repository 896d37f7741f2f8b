"""The spec's scripts and the examples run unchanged (in a temporary working directory)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(script: str, tmp_path: Path, timeout: int = 600) -> str:
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", JNO_NO_PROGRESS="1")
    out = subprocess.run([sys.executable, str(ROOT / "examples" / script)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out.stdout


def _number(pattern: str, text: str) -> float:
    m = re.search(pattern, text)
    assert m, f"{pattern!r} not in output:\n{text[-2000:]}"
    return float(m.group(1))


@pytest.mark.slow
def test_spec_script_09_wandb_offline(tmp_path):
    out = _run("spec_09_wandb_explainability.py", tmp_path)
    assert _number(r"Relative L² error: ([0-9.e+-]+)", out) < 1e-2
    assert "norms shape : (40, 2)" in out
    assert "grid shape : (10, 11, 11)" in out and "values shape : (40, 19)" in out
    assert _number(r"λ_max \(final\) : ([0-9.e+-]+)", out) > 0
    sharp = _number(r"sharpness \(final\) : ([0-9.e+-]+)", out)
    assert 0 < sharp < 1e4
    # the offline W&B run was recorded in the run directory
    runs = list((tmp_path / "runs").rglob("offline-run-*"))
    assert runs, "no offline W&B run directory"
    assert list((tmp_path / "runs").rglob("checkpoints/*/metadata.json"))


@pytest.mark.slow
def test_spec_script_07_gradient_analysis(tmp_path):
    out = _run("spec_07_gradient_analysis.py", tmp_path)
    assert _number(r"Relative L² error: ([0-9.e+-]+)", out) < 1e-1
    assert "Full Jacobian J shape: (999, 2209)" in out
    assert -1.0 <= _number(r"cos_sim\s+= ([-0-9.e+]+)", out) <= 1.0


@pytest.mark.slow
def test_main_example(tmp_path):
    out = _run("train_poisson_with_diagnostics.py", tmp_path)
    assert _number(r"relative L2 error\s+: ([0-9.e+-]+)", out) < 1e-2
    assert "checkpoints          : [3000, 3500, 4000]" in out
    # the example ends with its report's path (jno.setup(report=True))
    last = out.strip().splitlines()[-1]
    assert last.startswith("report (open offline): ") and last.endswith("report.html")
    report = Path(last.split(": ", 1)[1])
    assert report.is_file() and report.stat().st_size > 1_000_000
    assert '"loss/total"' in report.read_text()


@pytest.mark.slow
def test_inverse_problem_example(tmp_path):
    out = _run("inverse_problem.py", tmp_path)
    m = re.search(r"a=([-0-9.]+), b=([-0-9.]+), c=([-0-9.]+)", out)
    a, b, c = map(float, m.groups())
    assert abs(a - 1.5) < 0.03 and abs(b + 0.7) < 0.014 and abs(c - 2.0) < 0.04
