"""Sweep agents: grid coverage with two concurrent agent processes, failures that do not stop a
sweep, a killed agent's trial re-queued, Ctrl-C and resume.

Most trials here are a small Python script that speaks the trial protocol itself (reads its
values from the run directory's config.json, appends the metric to sweep-metric.jsonl), so a
trial costs ~50 ms instead of a JAX import; test_sweep_jno.py runs real jno scripts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jno_core.sweep import create_sweep, open_sweep, parse_sweep_config, sweep_summary

TRIAL = r'''
import json, math, os, sys, time
from pathlib import Path
run = Path(os.environ["JNO_SWEEP_DIR"]) / "runs" / os.environ["JNO_SWEEP_TRIAL"]
p = json.loads((run / "config.json").read_text())["sweep"]["params"]
with open(Path(os.environ["JNO_SWEEP_DIR"]) / "visits.txt", "a") as fh:
    fh.write(json.dumps(p, sort_keys=True) + "\n")
x = p.get("x", 0)
marker = Path(os.environ["JNO_SWEEP_DIR"]) / "hold"
while marker.exists() and x == 2:
    time.sleep(0.05)
if x == 3 and p.get("crash"):
    raise RuntimeError("boom at x=3")
value = float("nan") if x == 4 and p.get("crash") else (x - 1.5) ** 2
if not (x == 5 and p.get("crash")):
    with open(run / "sweep-metric.jsonl", "a") as fh:
        fh.write(json.dumps({"step": 0, "value": value if math.isfinite(value) else "nan"}) + "\n")
'''


@pytest.fixture
def script(tmp_path):
    f = tmp_path / "trial.py"
    f.write_text(TRIAL)
    return f


def _jno(*args, **kw):
    return [sys.executable, "-c", "import sys; from jno_core.cli import main; sys.exit(main())", *args]


def _grid(tmp_path, values, **extra):
    cfg = parse_sweep_config({"method": "grid", "metric": {"name": "score"},
                              "parameters": {"x": {"values": values}, **extra}})
    return create_sweep(cfg, tmp_path / "sweeps")


def test_grid_covered_exactly_once_by_two_concurrent_agent_processes(tmp_path, script):
    values = list(range(24))
    sweep = _grid(tmp_path, values)
    procs = [subprocess.Popen(_jno("sweep", "agent", str(sweep.dir), "--", sys.executable, str(script)),
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    visits = [json.loads(line)["x"] for line in (sweep.dir / "visits.txt").read_text().splitlines()]
    assert sorted(visits) == values  # every point run, none twice
    s = sweep_summary(sweep)
    assert s["counts"] == {"complete": 24}
    assert sorted(r["config"]["x"] for r in s["trials"]) == values
    assert s["best"]["value"] == 0.25 and s["best"]["config"]["x"] in (1, 2)
    ran = [o.count(" started:") for o in outs]
    assert sum(ran) == 24


def test_failed_trials_keep_their_error_and_the_sweep_goes_on(tmp_path, script):
    sweep = _grid(tmp_path, [1, 3, 4, 5, 6], crash={"value": True})
    r = subprocess.run(_jno("sweep", "agent", str(sweep.dir), "--", sys.executable, str(script)),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    s = sweep_summary(sweep)
    assert s["counts"] == {"complete": 2, "failed": 3}
    by_x = {t["config"]["x"]: t for t in s["trials"]}
    assert "boom at x=3" in by_x[3]["error"] and "status 1" in by_x[3]["error"]
    assert "non-finite" in by_x[4]["error"]
    assert "never logged the metric 'score'" in by_x[5]["error"]
    assert by_x[1]["value"] == 0.25 and by_x[6]["value"] == 4.5**2
    # the copy in each run's config.json
    entry = json.loads((Path(by_x[3]["run_dir"]) / "config.json").read_text())["sweep"]
    assert entry["state"] == "failed" and "boom" in entry["error"] and entry["params"] == {"x": 3, "crash": True}
    shown = subprocess.run(_jno("sweep", "show", str(sweep.dir)), capture_output=True, text=True, timeout=120)
    assert "trial-0001: the trial exited with status 1" in shown.stdout and "boom at x=3" in shown.stdout
    js = json.loads(subprocess.run(_jno("sweep", "show", str(sweep.dir), "--json"), capture_output=True,
                                   text=True, timeout=120).stdout)
    assert js["best"]["config"]["x"] == 1


def _wait_running(sweep, x, timeout=180):
    """The run directory of the trial with ``x``, once its process runs (it logged a visit)."""
    t0 = time.time()
    visits = sweep.dir / "visits.txt"
    while time.time() - t0 < timeout:
        if visits.exists() and any(json.loads(v).get("x") == x for v in visits.read_text().splitlines()):
            for f in sweep.runs_dir.glob("*/config.json"):
                if json.loads(f.read_text()).get("sweep", {}).get("params", {}).get("x") == x:
                    return f.parent
        time.sleep(0.05)
    raise AssertionError("the trial never started")


def test_killed_agent_trial_is_requeued_not_left_running(tmp_path, script):
    sweep = _grid(tmp_path, [1, 2, 3])
    (sweep.dir / "hold").write_text("")
    a = subprocess.Popen(_jno("sweep", "agent", str(sweep.dir), "--", sys.executable, str(script)),
                         stderr=subprocess.DEVNULL)
    run_dir = _wait_running(sweep, 2)
    a.kill()  # SIGKILL: no chance to clean up
    a.wait()
    (sweep.dir / "hold").unlink()
    r = subprocess.run(_jno("sweep", "agent", str(sweep.dir), "--", sys.executable, str(script)),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    s = sweep_summary(sweep)
    assert s["counts"] == {"complete": 3, "failed": 1}, s
    failed = [t for t in s["trials"] if t["state"] == "failed"][0]
    assert failed["config"]["x"] == 2 and "agent lost" in failed["error"] and "re-queued as trial-" in failed["error"]
    assert sorted(t["config"]["x"] for t in s["trials"] if t["state"] == "complete") == [1, 2, 3]
    assert json.loads((run_dir / "config.json").read_text())["sweep"]["state"] == "failed"


def test_stale_heartbeat_is_failed_by_another_agent(tmp_path, script):
    """A trial whose agent runs elsewhere (another host) and stopped beating is re-queued."""
    import optuna

    from jno_core.sweep import Agent

    sweep = _grid(tmp_path, [7])
    study = sweep.study()
    t = study.ask()
    t.suggest_categorical("x", [7])
    for k, v in (("jno:host", "elsewhere"), ("jno:pid", 1), ("jno:heartbeat", time.time() - 3600)):
        t.set_user_attr(k, v)
    agent = Agent(sweep, [sys.executable, str(script)], grace=60, log=lambda m: None)
    assert agent.recover_stale() == [t.number]
    assert agent.recover_stale() == []  # once
    agent.run()
    states = {tr.number: tr.state for tr in sweep.study().get_trials()}
    assert states[t.number] == optuna.trial.TrialState.FAIL
    assert list(states.values()).count(optuna.trial.TrialState.COMPLETE) == 1


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_ctrl_c_stops_cleanly_and_the_sweep_resumes(tmp_path, script):
    sweep = _grid(tmp_path, [1, 2, 3])
    (sweep.dir / "hold").write_text("")
    a = subprocess.Popen(_jno("sweep", "agent", str(sweep.dir), "--", sys.executable, str(script)),
                         stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # not ignored (cmd &)
    _wait_running(sweep, 2)
    a.send_signal(signal.SIGINT)
    err = a.communicate(timeout=120)[1]
    assert a.returncode == 130, err
    assert "re-queued" in err
    s = sweep_summary(sweep)
    assert s["counts"].get("running", 0) == 0 and s["counts"]["waiting"] == 2  # x=2 again, and x=3
    (sweep.dir / "hold").unlink()
    r = subprocess.run(_jno("sweep", "agent", str(sweep.dir), "--", sys.executable, str(script)),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    s = sweep_summary(sweep)
    assert s["counts"] == {"complete": 3, "failed": 1}
    assert "interrupted" in [t for t in s["trials"] if t["state"] == "failed"][0]["error"]


def test_run_cap_with_random_search_two_workers(tmp_path, script):
    cfg = parse_sweep_config({"method": "random", "run_cap": 5, "metric": {"name": "score"},
                              "parameters": {"x": {"min": 0, "max": 9}}})
    sweep = create_sweep(cfg, tmp_path / "sweeps")
    from jno_core.sweep import run_agents

    outcomes, interrupted = run_agents(sweep, [sys.executable, str(script)], workers=2, log=lambda m: None,
                                       handle_signals=False)
    assert not interrupted and len(outcomes) == 5
    assert sweep_summary(sweep)["counts"] == {"complete": 5}


def test_open_sweep_errors_clearly(tmp_path):
    from jno_core.errors import ConfigError

    with pytest.raises(ConfigError, match="no sweep at"):
        open_sweep(tmp_path / "nope")


def test_storage_url_and_an_agent_elsewhere_with_only_the_id(tmp_path, script):
    """A sweep in an SQLite storage (any URL Optuna accepts); an agent in another folder (another
    machine) finds it by id + storage and makes its own sweep directory from the stored config."""
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    cfg = parse_sweep_config({"method": "grid", "metric": {"name": "score"}, "parameters": {"x": {"values": [1, 2]}}})
    sweep = create_sweep(cfg, tmp_path / "here", storage=url)
    assert json.loads((sweep.dir / "sweep.json").read_text())["storage"] == url
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = subprocess.run(_jno("sweep", "agent", sweep.id, "--storage", url, "--", sys.executable, str(script)),
                       cwd=elsewhere, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (elsewhere / "sweeps" / sweep.id / "runs" / "trial-0000" / "config.json").is_file()
    assert sweep_summary(sweep)["counts"] == {"complete": 2}


def test_password_is_not_written_to_sweep_json(tmp_path):
    from jno_core.sweep._store import _mask_password

    assert _mask_password("postgresql://me:s3cret@db:5432/optuna") == "postgresql://me:***@db:5432/optuna"


@pytest.mark.slow
def test_trial_process_stops_when_its_agent_is_killed(tmp_path):
    """The trial's reporter watches its agent: a SIGKILLed agent's jno script ends by itself."""
    from jno_core.sweep._agent import _pid_alive

    script = tmp_path / "hold.py"
    script.write_text(
        "import os, time, jno\n"
        "d = jno.setup(None, sinks='none', config={'x': 0})\n"
        "open(os.path.join(d, 'pid'), 'w').write(str(os.getpid()))\n"
        "while True:\n    time.sleep(0.1)\n")
    sweep = _grid(tmp_path, [1])
    a = subprocess.Popen(_jno("sweep", "agent", str(sweep.dir), "--", sys.executable, str(script)),
                         stderr=subprocess.DEVNULL)
    pid_file = sweep.dir / "runs" / "trial-0000" / "pid"
    t0 = time.time()
    while not pid_file.exists():
        assert time.time() - t0 < 180, "the trial never started"
        time.sleep(0.1)
    a.kill()
    a.wait()
    child = int(pid_file.read_text())
    t0 = time.time()
    while _pid_alive(child) and time.time() - t0 < 30:
        time.sleep(0.2)
    alive = _pid_alive(child)
    if alive:
        os.kill(child, signal.SIGKILL)
    assert not alive
