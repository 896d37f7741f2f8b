#!/usr/bin/env python3
"""The repository's two entry points, runnable with nothing but Python 3.11:

    python3 tools/dev.py example   # create .venv, install everything, run the main example
    python3 tools/dev.py test      # create .venv, install everything, run the whole test suite

Everything is installed from the repository's own files (``requirements-dev.txt``: the core
``jno-core`` and every first-party plugin, editable, plus the test/example dependencies) into
``.venv`` next to this folder. Installation is skipped when those files did not change since
the last successful install.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
PY = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
STAMP = VENV / ".jno-install-stamp"
MAIN_EXAMPLE = ROOT / "examples" / "train_poisson_with_diagnostics.py"


def _inputs_hash() -> str:
    h = hashlib.sha256()
    files = [ROOT / "requirements-dev.txt", ROOT / "pyproject.toml"]
    files += sorted((ROOT / "plugins").glob("*/pyproject.toml"))
    for f in files:
        h.update(str(f.relative_to(ROOT)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def ensure_env() -> None:
    if not PY.exists():
        print(f"[jno] creating virtual environment {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    want = _inputs_hash()
    if STAMP.exists() and STAMP.read_text() == want:
        return
    print("[jno] installing jno-core, the first-party plugins and test dependencies", flush=True)
    subprocess.check_call(
        [str(PY), "-m", "pip", "install", "--disable-pip-version-check", "-q", "-r", "requirements-dev.txt"],
        cwd=ROOT,
    )
    STAMP.write_text(want)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"example", "test"}:
        print(__doc__)
        return 2
    ensure_env()
    env = dict(os.environ)
    env.setdefault("WANDB_MODE", "offline")
    env.setdefault("WANDB_SILENT", "true")
    if argv[0] == "example":
        return subprocess.call([str(PY), str(MAIN_EXAMPLE), *argv[1:]], cwd=ROOT, env=env)
    return subprocess.call([str(PY), "-m", "pytest", *argv[1:]], cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
