"""Start-up: what ``import jno``, ``import jno_core`` and the ``jno`` command load, the
reused ``jno plugins`` description, and the compile notice of a solve. (The import times
themselves are measured by benchmarks/bench_setup.py, not asserted here.)"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import jno
from jno_core.progress import CompileNotice

from helpers_core import poisson1d


def _modules_after(code: str, env: dict | None = None) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_jno_loads_no_engine_module_nor_optional_package():
    mods = _modules_after("import jno")
    assert "jax" in mods  # the JAX settings (precision, compilation cache) are applied
    heavy = {"jno_core.core", "jno_core.plugins", "jno_core.run", "jno_core.metrics", "optax", "equinox", "attrs",
             "wandb", "tensorboardX", "tensorboard", "scipy", "pandas", "matplotlib"}
    assert not heavy & mods, heavy & mods
    # and the names are there on first use
    mods = _modules_after("import jno; jno.core; jno.np.sin; jno.Scalar; jno.trackers")
    assert {"jno_core.core", "jno_core.metrics", "jno.np"} <= mods


def test_import_jno_core_and_the_command_load_no_jax():
    assert "jax" not in _modules_after("import jno_core")
    code = ("from jno_core.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass")
    assert "jax" not in _modules_after(code)


def test_jno_plugins_reuses_its_description(tmp_path):
    env = dict(os.environ, JNO_CACHE_DIR=str(tmp_path))
    cmd = [sys.executable, "-c", "import sys; from jno_core.cli import main; sys.exit(main(['plugins', '--json']))"]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    stored = json.loads((tmp_path / "plugins.json").read_text())
    assert stored["records"] == json.loads(first.stdout)
    # a stored description with the current fingerprint is what the command prints ...
    fake = [{"name": "stored", "distribution": None, "version": None, "registers": {}, "hooks": [],
             "object_hooks": {}}]
    (tmp_path / "plugins.json").write_text(json.dumps({"key": stored["key"], "records": fake}))
    again = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert json.loads(again.stdout) == fake
    # ... and a change of what it depends on (here the plugin selection) describes anew
    names = [r["name"] for r in json.loads(first.stdout)]
    env2 = dict(env, JNO_DISABLE_PLUGINS=names[0])
    fresh = subprocess.run(cmd, capture_output=True, text=True, env=env2)
    assert [r["name"] for r in json.loads(fresh.stdout)] == names[1:]
    assert json.loads((tmp_path / "plugins.json").read_text())["key"] != stored["key"]


def test_compile_notice_reports_compiles_then_stays_quiet(caplog):
    crux, _ = poisson1d(hidden=6)
    caplog.set_level(logging.INFO, logger="jno")
    crux.solve(3)
    msgs = [r.getMessage() for r in caplog.records if r.name == "jno"]
    assert len(msgs) == 1 and msgs[0].startswith("jno: compiled in ") and "XLA programs" in msgs[0], msgs
    caplog.clear()
    crux.solve(3)  # nothing compiles: nothing said
    assert [r for r in caplog.records if r.name == "jno"] == []


def test_compile_notice_on_the_terminal(capsys):
    import jax

    x = jax.numpy.ones(7)
    notice = CompileNotice(enabled=True).start("a test function")
    jax.jit(lambda a: a * 3.0 + 1.0).lower(x).compile()
    msg = notice.finish()
    err = capsys.readouterr().err
    assert "jno: compiling a test function ..." in err
    assert msg is not None and msg in err and err.endswith("\n")
    assert notice.stats.compiles == 1
    quiet = CompileNotice(enabled=True).start()
    assert quiet.finish() is None  # nothing compiled: the line is erased
    assert capsys.readouterr().err.endswith("\r")
