"""Issue 21: run-directory races and locks, atomic config.json, writes confined to the run
directory, jno sync's uploads, and the clear early errors."""

from __future__ import annotations

import errno
import json
import multiprocessing as mp
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

import jno
from jno_core import plugins
from jno_core import run as jrun
from jno_core.errors import ConfigError, JnoPluginError
from jno_core.metrics import Scalar
from jno_core.replay import read_checkpoints, replay
from jno_core.rundir import LOCK_FILE, make_run_dir
from jno_core.testing import small_problem
from jno_core.validation import check_solve_memory, history_bytes


@pytest.fixture(autouse=True)
def _fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JNO_SINKS", raising=False)
    jno.finish()
    plugins.reset()
    yield
    jno.finish()
    plugins.reset()


# ----------------------------------------------------------------------------- run directories
def _make(args: tuple[str, str]) -> str:
    base, ts = args
    return str(make_run_dir(Path(base), "race", None, ts)[0])


def test_processes_started_together_get_their_own_directories(tmp_path: Path) -> None:
    """Eight processes creating a run directory with the same timestamp at once (before: two
    of four shared one directory about once in seven rounds): eight distinct directories."""
    with mp.get_context("fork").Pool(8) as pool:
        for _ in range(5):
            ts = f"20260101-00000{_}"
            dirs = pool.map(_make, [(str(tmp_path), ts)] * 8)
            assert len(set(dirs)) == 8, dirs
            assert sorted(Path(d).name for d in dirs) == [ts] + [f"{ts}-{i}" for i in range(1, 8)]


LOCKER = textwrap.dedent(
    """
    import sys, time
    import jno
    jno.setup("s.py", name="shared", root=sys.argv[1], sinks=["csv"])
    print("LOCKED", flush=True)
    time.sleep(60)
    """
)


def test_a_named_run_directory_in_use_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "locker.py"
    script.write_text(LOCKER)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "runs")], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "LOCKED"
        with pytest.raises(ConfigError, match=f"in use by another jno process \\(pid {proc.pid}\\).*name="):
            jno.setup("s.py", name="shared", root=tmp_path / "runs", sinks=["csv"])
        # a run without a name gets its own directory meanwhile
        own = jno.setup("s.py", root=tmp_path / "runs", sinks=["csv"])
        assert Path(own).parent == tmp_path / "runs" / "s" and Path(own).name != "shared"
    finally:
        proc.kill()
        proc.wait()
    jno.finish()
    d = jno.setup("s.py", name="shared", root=tmp_path / "runs", sinks=["csv"])  # free again after the kill
    assert (Path(d) / LOCK_FILE).read_text() == str(os.getpid())
    jno.finish()
    jno.setup("s.py", name="shared", root=tmp_path / "runs", sinks=["csv"])  # and after finish()


def test_a_failed_setup_leaves_no_run_directory(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="unknown option"):
        jno.setup("s.py", root=tmp_path / "runs", sinks=["csv"], config={}, tensorboard={"bogus": 1})
    assert list((tmp_path / "runs" / "s").iterdir()) == []
    with pytest.raises(Exception):
        jno.setup("s.py", root=tmp_path / "runs", sinks=["no-such-sink"])
    assert list((tmp_path / "runs" / "s").iterdir()) == []


def _enospc_for(monkeypatch: pytest.MonkeyPatch, name_part: str) -> None:
    real = os.write

    def write(fd, data):
        if name_part in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to tell the written file")
def test_config_json_on_a_full_disk_does_not_stop_training(tmp_path: Path, monkeypatch) -> None:
    """Before: the next solve() died with a raw OSError [Errno 28] from rewriting config.json
    and left an empty config.json.tmp."""
    d = Path(jno.setup("s.py", name="r", root=tmp_path / "runs", sinks=["csv"]))
    before = (d / "config.json").read_text()
    _enospc_for(monkeypatch, "config.json")
    p = small_problem()
    with pytest.warns(RuntimeWarning, match=f"could not rewrite {d / 'config.json'}.*No space left.*training goes on"):
        p.crux.solve(20)
    assert p.crux.epoch == 20
    assert (d / "config.json").read_text() == before  # the old one kept, complete
    assert json.loads(before)["name"] == "r"
    assert [f for f in os.listdir(d) if "tmp" in f] == []
    monkeypatch.undo()
    p.crux.solve(5)  # the disk has space again: rewritten
    assert json.loads((d / "config.json").read_text())["solves"][0]["epochs"] == 25


# ----------------------------------------------------------------------------- configuration
def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "jno.toml").write_text('sinks = ["csv"\n')
    with pytest.raises(ConfigError, match=f"{tmp_path / 'jno.toml'} is not valid TOML"):
        jno.setup("s.py", root=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_unknown_key_in_jno_toml_lists_the_valid_keys(tmp_path: Path) -> None:
    (tmp_path / "jno.toml").write_text('sink = ["csv"]\n')
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['sink'\]; the valid keys are \['sinks', 'sink_options', 'report'\]"):
        jno.setup("s.py", root=tmp_path / "runs")


def test_blank_jno_sinks_is_an_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("JNO_SINKS", " ")
    with pytest.raises(ConfigError, match="JNO_SINKS is set but names no sink"):
        jno.setup("s.py", root=tmp_path / "runs")


# ----------------------------------------------------------------------------- confined writes
def test_csv_sink_does_not_follow_a_symlinked_metrics_file(tmp_path: Path) -> None:
    """A reused run directory whose metrics.csv links to another file: the sink refuses it
    instead of truncating or appending to the target."""
    d = tmp_path / "runs" / "s" / "r"
    d.mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious, no newline at the end")
    os.symlink(victim, d / "metrics.csv")
    with pytest.raises(PermissionError, match="metrics.csv: it is a symbolic link"):
        jno.setup("s.py", name="r", root=tmp_path / "runs", sinks=["csv"])
    assert victim.read_text() == "precious, no newline at the end"


def test_tensorboard_logdir_must_stay_in_the_run(tmp_path: Path) -> None:
    pytest.importorskip("tensorboardX")
    for bad in ("../..", str(tmp_path / "elsewhere"), "a/../../x"):
        with pytest.raises(ValueError, match="points outside the run directory"):
            jno.setup("s.py", root=tmp_path / "runs", sinks=["tensorboard"], tensorboard={"logdir": bad})
    assert not (tmp_path / "elsewhere").exists()
    d = jno.setup("s.py", root=tmp_path / "runs", sinks=["tensorboard"], tensorboard={"logdir": "tb/inner"})
    assert (Path(d) / "tb" / "inner").is_dir()


class _Uploader:
    """A sink recording which checkpoint directories it would upload."""

    plugin_name = "uploader"
    seen: list[str] = []

    def __init__(self, run):
        pass

    @jno.hookimpl
    def log_metrics(self, step, metrics):
        pass

    @jno.hookimpl
    def save_checkpoint(self, path, epoch, metadata):
        _Uploader.seen.append(path)


class _UploaderPlugin:
    @jno.hookimpl
    def jno_register_sinks(self, register):
        register("uploader", _Uploader)


def test_sync_uploads_only_the_runs_own_checkpoints(tmp_path: Path) -> None:
    """A checkpoints.csv row naming a folder with an ssh key (before: staged in a W&B
    artifact) is skipped with a warning; the run's own checkpoint is replayed."""
    secret = tmp_path / "home" / ".ssh"
    secret.mkdir(parents=True)
    (secret / "id_rsa").write_text("KEY")
    d = jno.setup("s.py", name="r", root=tmp_path / "runs", sinks=["csv"])
    own = Path(d) / "checkpoints" / "5"
    own.mkdir(parents=True)
    run = d.run
    run.bus.put(5, {"loss/total": Scalar(1.0)})
    run.bus.put_checkpoint(str(own), 5, {"epoch": 5})
    run.bus.put_checkpoint(str(secret), 6, {"epoch": 6})
    link = Path(d) / "checkpoints" / "7"
    os.symlink(secret, link)  # inside by name, outside once resolved
    run.bus.put_checkpoint(str(link), 7, {"epoch": 7})
    jno.finish()
    assert [r["epoch"] for r in read_checkpoints(d)] == [5, 6, 7]
    plugins.reset()
    plugins.register_plugin(_UploaderPlugin(), name="uploader-plugin")
    _Uploader.seen = []
    with pytest.warns(RuntimeWarning, match="not a checkpoint directory inside the run's own") as rec:
        s = replay(d, "uploader")
    assert _Uploader.seen == [str(own)] and s.checkpoints == 1
    assert len([w for w in rec if "inside the run's own" in str(w.message)]) == 2
    # the warnings point at the line that called replay, not inside jno
    assert {w.filename for w in rec if "inside the run's own" in str(w.message)} == {__file__}


def test_sync_twice_into_tensorboard_does_not_double_the_events(tmp_path: Path) -> None:
    pytest.importorskip("tensorboardX")
    ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    d = jno.setup("s.py", name="r", root=tmp_path / "runs", sinks=["csv"])
    for step, v in [(0, 3.0), (10, 2.0), (20, 1.0)]:
        d.run.bus.put(step, {"loss/total": Scalar(v)})
    jno.finish()
    for _ in range(2):
        replay(d, "tensorboard")
    files = [f for f in os.listdir(Path(d) / "tensorboard")]
    assert len(files) == 1 and files[0].endswith(".jno-sync"), files
    acc = ea.EventAccumulator(str(Path(d) / "tensorboard"))
    acc.Reload()
    ev = acc.Scalars("loss/total")
    assert [e.step for e in ev] == [0, 10, 20] and [e.value for e in ev] == [3.0, 2.0, 1.0]


# ----------------------------------------------------------------------------- early errors
@pytest.mark.parametrize("bad,match", [("0.1", "mesh_size must be a number"), (5.0, "larger than the range"),
                                       (float("nan"), "must be > 0")])
def test_mesh_size_checked(bad, match) -> None:
    with pytest.raises((TypeError, ValueError), match=match):
        jno.domain.line(mesh_size=bad, x_range=(0, 1))


def test_early_stopping_negative_min_delta() -> None:
    with pytest.raises(ValueError, match="min_delta must be >= 0"):
        jno.callbacks.early_stopping(patience=10, min_delta=-1e-3)


def test_callbacks_must_be_a_list_of_plugins() -> None:
    p = small_problem()
    with pytest.raises(ConfigError, match=r"callbacks=...\)\[0\] is 42 \(int\)"):
        p.crux.solve(5, callbacks=[42])
    tracker = jno.trackers.gradient_norm(interval=5) if hasattr(jno.trackers, "gradient_norm") else None
    if tracker is not None:
        with pytest.raises(ConfigError, match="received a single .*wrap it in a list: callbacks=\\[cb\\]"):
            p.crux.solve(5, callbacks=tracker)
    assert p.crux.epoch == 0


def test_solve_refuses_a_history_larger_than_memory_before_compiling() -> None:
    p = small_problem()
    need = history_bytes(10**12, 2)
    assert need == 10**12 * (5 * 8 + 8)  # 48 TB: five float64 values and an int64 epoch per epoch
    with pytest.raises(ConfigError, match=r"solve\(1000000000000\) would record .* about 44,703.5 GiB"):
        p.crux.solve(10**12)
    assert p.crux._chunk_fn is None if hasattr(p.crux, "_chunk_fn") else True  # nothing compiled
    check_solve_memory(1000, 2)  # an ordinary solve passes
    with pytest.raises(ConfigError):
        check_solve_memory(1000, 2, limit=1000)


def test_tracker_compute_must_return_a_dict() -> None:
    from jno_core.tracker import Tracker

    class T(Tracker):
        name = "scalar_returner"

        def compute(self, ctx, epoch):
            return 3.0

    with pytest.raises(JnoPluginError, match=r"scalar_returner.*compute\(\) returned float.*expected a dict"):
        small_problem().crux.solve(3, callbacks=[T(interval=1)])


def test_unmarked_hook_methods_warn() -> None:
    class Forgot:
        name = "forgot"

        def on_solve_begin(self, ctx):
            raise AssertionError("never called")

    with pytest.warns(UserWarning, match=r"'forgot' defines \['on_solve_begin'\] but marks no method with @hookimpl"):
        small_problem().crux.solve(2, callbacks=[Forgot()])

    class Fine:
        name = "fine"
        interval = 1

        def on_epoch(self, ctx, epoch):  # called by the loop for plugins with an interval
            pass

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        small_problem().crux.solve(2, callbacks=[Fine()])


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to tell the written file")
def test_csv_array_file_on_a_full_disk_is_reported_and_leaves_no_temporary(tmp_path: Path, monkeypatch) -> None:
    """The csv sink fails on an array file: the failure names the sink and says it is skipped
    from now on (its metrics.csv too); no partial array file is left."""
    from jno_core.metrics import Array

    rp = jno.setup("s.py", name="r", root=tmp_path / "runs", sinks=["csv"])
    d = Path(rp)
    _enospc_for(monkeypatch, "/arrays/")
    with pytest.warns(RuntimeWarning, match=r"jno sink csv .* failed .*skipped for the rest of this run.*No space left"):
        rp.run.bus.put(1, {"spec": Array([1.0, 2.0])})
        rp.run.bus.flush()
    monkeypatch.undo()
    leftovers = [f for _, _, files in os.walk(d / "arrays") for f in files]
    assert leftovers == []
