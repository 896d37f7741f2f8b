"""The persistent compilation cache (jno_core.compile_cache): where it lives, who decides,
and that a second process of the same script compiles nothing while a changed network
width or mesh size does compile. Every run is a subprocess with a cache folder of its own
(never the user's ~/.cache)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

# a small solve with trackers of each compilation path: the chunk with snapshot slots and
# on-device gradient matrices (gradient_norms), a slot-batch function (residual_stats) and
# compile_async executables (ntk_spectrum, hessian_spectrum); argv: hidden width, mesh size
SOLVE = r"""
import json, logging, sys
import jno
from jno_core.compile_cache import CompileStats, describe
from jno_core.testing import small_problem

hits, misses = [], []
class H(logging.Handler):
    def emit(self, rec):
        msg = rec.getMessage()
        if msg.startswith("Persistent compilation cache hit for"):
            hits.append(msg.split("'")[1])
        elif msg.startswith("PERSISTENT COMPILATION CACHE MISS for"):
            misses.append(msg.split("'")[1])
log = logging.getLogger("jax._src.compiler")
log.setLevel(logging.DEBUG)
log.addHandler(H())

with CompileStats() as cs:
    p = small_problem(hidden=int(sys.argv[1]), mesh_size=float(sys.argv[2]))
    cbs = [jno.trackers.gradient_norms(interval=5), jno.trackers.residual_stats(interval=5),
           jno.trackers.ntk_spectrum(p.u.grad(p.net), n_points=8, top_k=2, interval=10),
           jno.trackers.hessian_spectrum(k=2, n_iter=4, interval=10)]
    hist = p.crux.solve(20, callbacks=cbs)
print(json.dumps({"loss": [float(v) for v in hist.total_loss], "grad_norms": cbs[0].result["norms"].tolist(),
                  "compiles": cs.compiles, "lookups": cs.cache_lookups, "hits": cs.cache_hits,
                  "writes": cs.cache_writes, "hit_names": hits, "miss_names": misses,
                  "cache": describe()}))
"""


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("JNO_COMPILATION_CACHE", "JNO_CACHE_DIR", "JAX_COMPILATION_CACHE_DIR", "XDG_CACHE_HOME",
                        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")  # never the user's own cache
    env.update(extra)
    return env


def _python(code: str, env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def _result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _solve(env: dict[str, str], hidden: int = 8, mesh: float = 0.05) -> dict:
    return _result(_python(SOLVE, env, str(hidden), str(mesh)))


CONFIG = "import jax, json, jno; from jno_core.compile_cache import describe; print(json.dumps(describe()))"


def test_default_folder_is_user_only_under_xdg_cache_home(tmp_path):
    out = _result(_python(CONFIG, _env(tmp_path)))
    folder = tmp_path / "xdg" / "jno" / "compilation-cache"
    assert out == {"enabled": True, "dir": str(folder), "source": "jno", "min_compile_time_s": 0.02}
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_env_variable_moves_or_disables_the_cache(tmp_path):
    own = tmp_path / "elsewhere" / "cache"
    out = _result(_python(CONFIG, _env(tmp_path, JNO_COMPILATION_CACHE=str(own))))
    assert out["dir"] == str(own) and out["source"] == "JNO_COMPILATION_CACHE" and out["enabled"]
    assert stat.S_IMODE(own.stat().st_mode) == 0o700
    off = _result(_python(CONFIG, _env(tmp_path, JNO_COMPILATION_CACHE="off")))
    assert off["enabled"] is False and off["dir"] is None
    assert not (tmp_path / "xdg" / "jno").exists()


def test_users_jax_settings_win(tmp_path):
    theirs = tmp_path / "theirs"
    env = _env(tmp_path, JAX_COMPILATION_CACHE_DIR=str(theirs), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="2")
    out = _result(_python(CONFIG, env))
    assert out == {"enabled": True, "dir": str(theirs), "source": "jax", "min_compile_time_s": 2.0}
    assert not (tmp_path / "xdg" / "jno").exists()
    # set in Python after `import jno`: JAX's own option is what is used and recorded
    code = ("import jax, json, jno; jax.config.update('jax_compilation_cache_dir', %r); "
            "from jno_core.compile_cache import describe; print(json.dumps(describe()))" % str(theirs))
    out = _result(_python(code, _env(tmp_path)))
    assert out["dir"] == str(theirs) and out["source"] == "jax"


def test_folder_writable_by_others_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    proc = _python(CONFIG, _env(tmp_path, JNO_COMPILATION_CACHE=str(shared)))
    out = _result(proc)
    assert out["enabled"] is False and "writable by other users" in out["error"]


def test_config_json_records_the_cache(tmp_path, monkeypatch):
    import jax

    monkeypatch.chdir(tmp_path)
    run = jno_setup = __import__("jno").setup(str(tmp_path / "script.py"), sinks=["none"])
    try:
        recorded = json.loads(Path(run, "config.json").read_text())["compilation_cache"]
    finally:
        __import__("jno").finish()
    assert recorded["dir"] == jax.config.jax_compilation_cache_dir
    assert recorded["enabled"] is bool(jax.config.jax_compilation_cache_dir)
    del jno_setup


@pytest.mark.slow
def test_second_process_compiles_nothing_and_changes_miss(tmp_path):
    # every executable is written (threshold 0), so a rerun must read every one back
    env = _env(tmp_path, JNO_COMPILATION_CACHE=str(tmp_path / "cache"), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    # two processes at once on the empty folder: both work, with the same results
    a, b = _python(SOLVE, env, "8", "0.05"), _python(SOLVE, env, "8", "0.05")
    cold, cold2 = _result(a), _result(b)
    assert cold["hits"] + cold2["hits"] < cold["lookups"] + cold2["lookups"]  # they did compile
    assert cold["loss"] == cold2["loss"] and cold["grad_norms"] == cold2["grad_norms"]
    names = set(cold["miss_names"])
    assert {"jit_chunk", "jit_fire_slots"} <= names, names

    warm = _solve(env)
    assert warm["lookups"] > 0 and warm["hits"] == warm["lookups"], warm["miss_names"]
    assert warm["writes"] == 0 and warm["miss_names"] == []
    assert set(warm["hit_names"]) >= {"jit_chunk", "jit_fire_slots"}
    assert warm["loss"] == cold["loss"] and warm["grad_norms"] == cold["grad_norms"]  # same executables

    wider = _solve(env, hidden=12)  # a changed network width is another program
    assert {"jit_chunk", "jit_fire_slots"} <= set(wider["miss_names"])
    assert "jit_chunk" not in wider["hit_names"]
    finer = _solve(env, mesh=0.04)  # so is a changed mesh size (more points)
    assert "jit_chunk" in finer["miss_names"] and "jit_chunk" not in finer["hit_names"]
