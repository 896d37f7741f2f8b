"""Ctrl-C (SIGINT) and SIGTERM end a solve cleanly (jno_core.interrupts), checked on a real
process: the chunk in flight is dropped, the history ends at the last completed epoch, the
metrics are flushed, the final checkpoint is written and retention holds, checkpoints.csv is
complete, and the process exits with the usual status."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import jno
from jno_core import plugins
from jno_core.interrupts import SIGTERM_EXIT_STATUS, interruptible, roll_back
from jno_core.replay import read_checkpoints, read_metrics

CHILD = textwrap.dedent(
    """
    import faulthandler, json, signal, sys
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test dumps the stacks on a hang
    import jno
    from jno_core.hookspecs import hookimpl
    from jno_core.testing import small_problem

    root = sys.argv[1]

    class Ready:
        name = "ready"
        interval = 100

        @hookimpl
        def on_epoch(self, ctx, epoch):
            if epoch == 300:
                print("READY", flush=True)

    dire = jno.setup("child.py", name="run", root=root, sinks=["csv"])
    p = small_problem(chunk_size=100)
    cb = jno.callbacks.checkpoint(save_interval_epochs=100, max_to_keep=3)
    try:
        p.crux.solve(10_000_000, callbacks=[cb, Ready()], log_every=10)
    except BaseException as exc:
        h = p.crux.history
        print("RESULT " + json.dumps({"exc": type(exc).__name__, "epoch": p.crux.epoch,
                                      "last": int(h.epochs[-1]), "n": len(h.epochs),
                                      "stopped": h.stopped}), flush=True)
        raise
    print("NOT INTERRUPTED", flush=True)
    """
)


def default_sigint() -> None:
    """In the child before exec: SIGINT back to its default. A shell starts background jobs
    (``cmd &``) with SIGINT ignored and children inherit that, so a test suite run in the
    background would otherwise send Ctrl-C to a process that ignores it (as it should: jno
    keeps an ignored SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _run_and_signal(tmp_path: Path, sig: int) -> tuple[subprocess.CompletedProcess, dict, Path]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "JNO_NO_PROGRESS": "1"}
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "runs")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
                            preexec_fn=default_sigint)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "READY", f"child did not start training: {line!r}"
        proc.send_signal(sig)
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)
            time.sleep(2)
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"the child did not end within 120 s of {signal.Signals(sig).name}; "
                                 f"XLA_FLAGS={os.environ.get('XLA_FLAGS')!r} "
                                 f"env={sorted(k for k in os.environ if k.startswith(('JNO', 'JAX', 'XLA')))}; "
                                 f"its stacks:\n{err[-12000:]}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
    results = [json.loads(s[7:]) for s in out.splitlines() if s.startswith("RESULT ")]
    assert results, f"no result line; stdout={out!r} stderr={err[-3000:]!r}"
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), results[0], tmp_path / "runs" / "child" / "run"


def _check_clean_end(res: dict, run: Path, err: str) -> None:
    epoch = res["epoch"]
    assert epoch >= 300
    # history: every epoch up to the last completed one, nothing beyond
    assert res["last"] == epoch - 1 and res["n"] == epoch, res
    assert "interrupted" in res["stopped"]
    ck = run / "checkpoints"
    names = sorted(os.listdir(ck))
    assert not [n for n in names if n.startswith(".")], names  # no .tmp-* debris
    steps = sorted(int(n) for n in names)
    assert len(steps) <= 3  # max_to_keep held
    assert steps[-1] == epoch  # the final checkpoint is the state training stopped at
    meta = json.loads((ck / str(epoch) / "metadata.json").read_text())
    assert meta["epoch"] == epoch
    from jno_plugin_checkpoint import read_checkpoint

    data = read_checkpoint(ck / str(epoch))
    assert int(data.arrays["['epoch']"]) == epoch
    # checkpoints.csv: one row per save, in order, the last one the final save
    rows = read_checkpoints(run)
    assert [r["epoch"] for r in rows] == list(range(100, epoch, 100)) + [epoch]
    # the metrics were flushed: the logged epochs up to the last completed one
    m = read_metrics(run)["loss/total"]
    logged = np.asarray(m["steps"])
    assert logged.max() == (epoch - 1) // 10 * 10
    assert "cannot schedule new futures" not in err


@pytest.mark.slow
def test_sigint_ends_the_solve_cleanly(tmp_path: Path) -> None:
    proc, res, run = _run_and_signal(tmp_path, signal.SIGINT)
    assert res["exc"] == "KeyboardInterrupt"
    assert proc.returncode in (-signal.SIGINT, 128 + signal.SIGINT), proc.returncode  # the usual Ctrl-C status
    _check_clean_end(res, run, proc.stderr)


@pytest.mark.slow
def test_sigterm_ends_the_solve_cleanly(tmp_path: Path) -> None:
    proc, res, run = _run_and_signal(tmp_path, signal.SIGTERM)
    assert res["exc"] == "SystemExit"
    assert proc.returncode == SIGTERM_EXIT_STATUS == 143
    _check_clean_end(res, run, proc.stderr)


# ----------------------------------------------------------------------------- in process
def test_keyboard_interrupt_in_the_loop_keeps_the_last_completed_epoch(tmp_path: Path, monkeypatch) -> None:
    """A KeyboardInterrupt raised by a plugin at epoch 40 (as Ctrl-C would be, between two
    chunks): solve() re-raises it after on_solve_end ran, and the solver's epoch, history and
    state agree on the last completed epoch."""
    from jno_core.hookspecs import hookimpl
    from jno_core.testing import small_problem

    monkeypatch.chdir(tmp_path)
    jno.finish()
    plugins.reset()

    class CtrlC:
        name = "ctrl-c"
        interval = 20
        ended: list[int] = []

        @hookimpl
        def on_epoch(self, ctx, epoch):
            if epoch == 40:
                raise KeyboardInterrupt

        @hookimpl
        def on_solve_end(self, ctx, history):
            self.ended.append(ctx.epoch)

    p = small_problem(chunk_size=10)
    cb = CtrlC()
    with pytest.raises(KeyboardInterrupt):
        p.crux.solve(100, callbacks=[cb])
    assert p.crux.epoch == 40 and cb.ended == [40]
    assert p.crux.history.epochs.tolist() == list(range(40))
    assert int(np.asarray(p.crux._state[3])) == 40
    assert "KeyboardInterrupt" in p.crux.history.stopped
    # the solver goes on from there
    p.crux.solve(10)
    assert p.crux.epoch == 50 and p.crux.history.epochs.tolist() == list(range(50))


def test_roll_back_drops_rows_beyond_the_state() -> None:
    from jno_core.history import History, TrackerHistory

    class Crux:
        _state = (None, None, None, np.int32(25))
        epoch = 30

    h = History(["a"])
    h._append(np.arange(0, 20), np.zeros((20, 4)))
    h._append(np.arange(20, 30), np.ones((10, 4)))
    h.trackers["t"] = TrackerHistory("t", 5)
    for e in (0, 5, 10, 15, 20, 25, 30):
        h.trackers["t"].append(e, np.float64(e))
    c = Crux()
    assert roll_back(c, h) == 25
    assert c.epoch == 25 and h.epochs.tolist() == list(range(25))
    assert h.trackers["t"].epochs == [0, 5, 10, 15, 20, 25]


def test_sigterm_handler_only_while_solving_and_not_over_the_users() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with interruptible(object(), None):
        inside = signal.getsignal(signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before
    assert inside is not before or before is not signal.SIG_DFL

    def mine(signum, frame):  # a program's own handler is left alone
        pass

    old = signal.signal(signal.SIGTERM, mine)
    try:
        with interruptible(object(), None):
            assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, old)


def _solve_with_signal_at_40(tmp_path: Path, monkeypatch, act) -> tuple[Any, list]:
    """Solve 1000 epochs (chunks of 10) with a plugin that, at epoch 40, calls ``act(send)``
    where ``send()`` sends this process SIGTERM while jno's handler is installed."""
    from jno_core.hookspecs import hookimpl
    from jno_core.interrupts import _on_signal
    from jno_core.testing import small_problem

    monkeypatch.chdir(tmp_path)
    jno.finish()
    plugins.reset()
    log: list = []

    def send() -> None:
        assert signal.getsignal(signal.SIGTERM) is _on_signal  # never kill pytest itself
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # let the handler run here, inside act
            pass

    class At40:
        name = "at-40"
        interval = 10

        @hookimpl
        def on_epoch(self, ctx, epoch):
            if epoch == 40:
                act(send, log)

    p = small_problem(chunk_size=10)
    with pytest.raises(SystemExit) as info:
        p.crux.solve(1000, callbacks=[At40()])
    assert info.value.code == SIGTERM_EXIT_STATUS
    return p, log


def test_an_interrupt_python_drops_in_a_gc_callback_still_stops_the_solve(tmp_path: Path, monkeypatch) -> None:
    """Python ignores an exception raised in ``__del__`` or a gc callback (JAX has one), so a
    signal arriving there was lost and training went on; the loop raises it at the next chunk."""
    def act(send, log):
        class Dropper:
            def __del__(self):
                send()  # the handler's exception is raised here and dropped by Python
                log.append("after")

        Dropper()
        log.append("went on")

    p, log = _solve_with_signal_at_40(tmp_path, monkeypatch, act)
    assert log == ["went on"]  # the SolveTerminated was raised inside __del__ and dropped there
    assert 40 <= p.crux.epoch <= 60 and "SIGTERM" in p.crux.history.stopped


def test_deferred_interrupts_hold_the_signal_until_the_section_ends(tmp_path: Path, monkeypatch) -> None:
    from jno_core.api import deferred_interrupts

    def act(send, log):
        with deferred_interrupts():
            send()
            log.append("finished the section")
        log.append("after the section")

    p, log = _solve_with_signal_at_40(tmp_path, monkeypatch, act)
    assert log == ["finished the section"]
    assert p.crux.epoch == 40 and "SIGTERM" in p.crux.history.stopped
