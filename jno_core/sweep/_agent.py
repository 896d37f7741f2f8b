"""Sweep agents: take a trial from the sweep's Optuna study, run the training script (or a
function) as an ordinary jno run with the trial's values, read the metric it logs, tell Optuna.

One agent runs one trial at a time; any number of agents (threads of ``jno sweep run
--workers``, or ``jno sweep agent`` processes on this machine or others sharing a storage)
serve a sweep. What keeps them consistent lives in the storage, through Optuna's public API:

* **grid**: every point is an enqueued waiting trial, and Optuna hands a waiting trial to
  exactly one ``ask()`` (an atomic state change in every storage), so no point runs twice. An
  ``ask()`` that finds the queue empty (another agent took the last point in between) is
  discarded: marked ``jno:surplus`` and failed at once, never run.
* **run_cap**: trial numbers are allocated atomically; a new trial whose number has
  ``run_cap`` real trials before it is surplus as well.
* **liveness**: while a trial runs, its agent writes a heartbeat (the trial's user attribute
  ``jno:heartbeat``, every ``heartbeat`` seconds). Before each trial, an agent fails every
  running trial whose heartbeat is older than ``grace`` seconds, or whose agent process on this
  host is gone, and re-queues its parameters (``enqueue_trial``, ``jno:requeued_from``), so a
  killed agent's trial is re-run, never left "running". The trial process watches its agent
  too and stops when the agent is gone.
* **Ctrl-C** (or SIGTERM): the running trial is interrupted (SIGINT, then killed after
  ``kill_grace`` seconds), failed with the error "interrupted" and re-queued, and the agent
  exits; starting an agent again resumes the sweep.

The metric: the trial's :class:`~jno_core.sweep._trial.TrialReporter` appends each value the
run logs to ``sweep-metric.jsonl``; the agent reports every finite value to Optuna
(``trial.report(value, n)``, ``n`` = how many times it was logged, W&B's hyperband ``iter``),
asks ``trial.should_prune()`` and, when pruned, writes ``sweep-prune``: the trial's solve stops
at its next chunk boundary (``ctx.request_stop``), the script runs to its end and the trial is
told ``PRUNED``. The trial's value is the last logged value (``metric.summary: last``) or the
best per ``goal`` (``best``). A trial fails, with its error kept, when the process exits
non-zero (the tail of its ``output.log``), never logs the metric, or ends with a non-finite
value.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import attrs

from ..errors import ConfigError
from ._space import make_sampler, suggest, trial_seed
from ._store import Sweep, write_json
from ._runner import FunctionRunner, MetricReader, ProcessRunner, build_command, pid_alive, tail
from ._trial import ENV_AGENT_PID, ENV_DIR, ENV_TRIAL, METRIC_FILE, PRUNE_FILE, read_trial

__all__ = ["Agent", "Budget", "TrialOutcome", "run_agents", "build_command", "OUTPUT_FILE"]

_pid_alive = pid_alive  # the name the tests import

OUTPUT_FILE = "output.log"
HOST = socket.gethostname()
_TAIL_CHARS = 3000


class Budget:
    """How many more trials the agents of one command may start (None: no limit),
    shared by threads."""

    def __init__(self, count: int | None) -> None:
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count <= 0):
            raise ConfigError(f"--count must be a positive integer, received {count!r}.")
        self.left = count
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.left is None:
                return True
            if self.left <= 0:
                return False
            self.left -= 1
            return True

    def give_back(self) -> None:
        with self._lock:
            if self.left is not None:
                self.left += 1


@attrs.define
class TrialOutcome:
    """What became of one trial: ``state`` is ``complete``, ``pruned`` or ``failed``."""

    number: int
    name: str
    state: str
    value: float | None
    error: str | None
    seconds: float
    config: dict[str, Any]


def _to_stderr(msg: str) -> None:
    """The default progress log: a line on stderr, flushed."""
    print(msg, file=sys.stderr, flush=True)


def _update_entry(run_dir: Path, **entries: Any) -> None:
    """Update the ``"sweep"`` entry of ``run_dir/config.json`` (the copy readable without jno)."""
    f = run_dir / "config.json"
    try:
        data = json.loads(f.read_text())
    except (OSError, ValueError):
        return
    data.setdefault("sweep", {}).update(entries)
    write_json(f, data)


class Agent:
    """Run trials of ``sweep`` until it is exhausted, the budget is spent or ``stop`` is set.

    :param sweep: the open :class:`~jno_core.sweep.Sweep`.
    :param command: the trial command (W&B macros expanded, see :func:`build_command`); None:
        the sweep file's ``command``, else ``${interpreter} ${program} ${args}`` with its
        ``program``.
    :param function: instead of a command, a function run in this process (W&B's
        ``wandb.agent(function=...)``): it calls ``jno.setup(...)`` and gets the trial.
    :param budget: shared :class:`Budget` (default: unlimited).
    :param stop: an event that stops the agent (its running trial is interrupted and
        re-queued); ``kill``: set it too to kill the trial at once.
    :param heartbeat: seconds between heartbeats; ``grace``: a running trial without a heartbeat
        for this long is failed and re-queued (default ``max(60, 4 * heartbeat)``).
    :param log: where progress lines go (default: print to stderr).
    """

    def __init__(self, sweep: Sweep, command: Sequence[str] | None = None, *,
                 function: Callable[[], Any] | None = None, budget: Budget | None = None,
                 stop: threading.Event | None = None, kill: threading.Event | None = None,
                 heartbeat: float = 30.0, grace: float | None = None, kill_grace: float = 10.0,
                 log: Callable[[str], None] | None = None) -> None:
        cfg = sweep.config
        if function is None:
            if command:
                self.template = list(command)
            elif "command" in cfg.raw:
                self.template = list(cfg.raw["command"])
            elif "program" in cfg.raw:
                self.template = ["${env}", "${interpreter}", "${program}", "${args}"]
            else:
                raise ConfigError(
                    "no trial command: give it after `--` (jno sweep agent SWEEP -- python train.py) or put "
                    "`program: train.py` in the sweep file."
                )
        else:
            self.template = []
        self.sweep = sweep
        self.function = function
        self.budget = budget or Budget(None)
        self.stop = stop or threading.Event()
        self.kill = kill or threading.Event()
        self.heartbeat = float(heartbeat)
        self.grace = float(grace) if grace is not None else max(60.0, 4 * self.heartbeat)
        self.kill_grace = float(kill_grace)
        self.log = log or _to_stderr
        self.outcomes: list[TrialOutcome] = []
        self.interrupted = False
        self._storage = sweep.storage()
        self._study = sweep.study(self._storage, sampler=make_sampler(cfg, None))

    # ------------------------------------------------------------------ claiming
    @staticmethod
    def _replaced(trials: Sequence[Any]) -> set[int]:
        return {int(t.user_attrs["jno:requeued_from"]) for t in trials if "jno:requeued_from" in t.user_attrs}

    def _real(self, trials: Sequence[Any]) -> list[Any]:
        gone = self._replaced(trials)
        return [t for t in trials if not t.user_attrs.get("jno:surplus") and t.number not in gone]

    def _target_reached(self, trials: Sequence[Any]) -> bool:
        import optuna

        m = self.sweep.config.metric
        if "target" not in m:
            return False
        vals = [t.value for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None]
        if not vals:
            return False
        best = max(vals) if m["goal"] == "maximize" else min(vals)
        return best >= m["target"] if m["goal"] == "maximize" else best <= m["target"]

    def _discard(self, trial: Any) -> None:
        import optuna

        trial.set_user_attr("jno:surplus", True)
        self._study.tell(trial, state=optuna.trial.TrialState.FAIL)

    def claim(self) -> Any:
        """The next trial to run (an Optuna ``Trial``, RUNNING), or None when the sweep has
        nothing left for this agent."""
        import optuna

        cfg = self.sweep.config
        trials = self._study.get_trials(deepcopy=False)
        waiting = any(t.state == optuna.trial.TrialState.WAITING for t in trials)
        if self._target_reached(trials):
            return None
        capped = cfg.run_cap is not None and len(self._real(trials)) >= cfg.run_cap
        if not waiting and (cfg.method == "grid" or capped):
            return None
        trial = self._study.ask()
        # who runs it, first of all: a trial of an agent killed from here on is recognised
        for k, v in (("jno:host", HOST), ("jno:pid", os.getpid()), ("jno:heartbeat", time.time())):
            trial.set_user_attr(k, v)
        attrs_ = trial.user_attrs
        if "jno:requeued_from" in attrs_ or "jno:grid" in attrs_:
            return trial
        if cfg.method == "grid":
            self._discard(trial)  # the queue emptied between the check and ask()
            return None
        if cfg.run_cap is not None:
            before = [t for t in self._real(self._study.get_trials(deepcopy=False)) if t.number < trial.number]
            if len(before) >= cfg.run_cap:
                self._discard(trial)
                return None
        return trial

    # ------------------------------------------------------------------ liveness
    def recover_stale(self) -> list[int]:
        """Fail and re-queue the running trials whose agent is gone; returns their numbers."""
        import optuna

        TS = optuna.trial.TrialState
        now = time.time()
        recovered = []
        for t in self._study.get_trials(deepcopy=False, states=(TS.RUNNING,)):
            a = t.user_attrs
            if a.get("jno:surplus"):
                continue
            hb = a.get("jno:heartbeat")
            if hb is None:
                hb = t.datetime_start.timestamp() if t.datetime_start is not None else now
            pid = a.get("jno:pid")
            gone = a.get("jno:host") == HOST and pid is not None and pid != os.getpid() and not pid_alive(pid)
            if not gone and now - float(hb) <= self.grace:
                continue
            try:
                self._study.tell(t.number, state=TS.FAIL)
            except (optuna.exceptions.UpdateFinishedTrialError, ValueError, RuntimeError):
                continue  # another agent got there first
            why = ("its agent process is gone" if gone else f"no heartbeat for {now - float(hb):.0f} s")
            self._requeue(t, f"agent lost ({why})")
            recovered.append(t.number)
        return recovered

    def _requeue(self, t: Any, why: str) -> None:
        extra = {"jno:requeued_from": t.number}
        if "jno:grid" in t.user_attrs:
            extra["jno:grid"] = t.user_attrs["jno:grid"]
        if t.params or not self.sweep.config.params:
            self._study.enqueue_trial(dict(t.params), user_attrs=extra)
            why += "; its parameters were re-queued as a new trial"
        self.log(f"[jno sweep {self.sweep.id}] trial-{t.number:04d} failed: {why}")
        run_dir = a_dir if (a_dir := t.user_attrs.get("jno:run_dir")) else None
        if run_dir and Path(run_dir).is_dir():
            _update_entry(Path(run_dir), state="failed", error=why)

    # ------------------------------------------------------------------ running
    def run(self) -> list[TrialOutcome]:
        """Run trials until done; returns their outcomes."""
        while not self.stop.is_set():
            if not self.budget.take():
                break
            self.recover_stale()
            trial = self.claim()
            if trial is None:
                self.budget.give_back()
                break
            try:
                self.outcomes.append(self.run_trial(trial))
            except BaseException as exc:  # a bug or a storage error: never leave it "running"
                self._abandon(trial, exc)
                raise
        return self.outcomes

    def _abandon(self, trial: Any, exc: BaseException) -> None:
        import optuna

        try:
            trial.set_user_attr("jno:error", f"the agent failed: {type(exc).__name__}: {exc}"[-_TAIL_CHARS:])
            self._study.tell(trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
        except Exception:  # noqa: BLE001 - the original error is what matters
            pass

    def run_trial(self, trial: Any) -> TrialOutcome:
        """Run one claimed trial to its end and tell Optuna."""
        values, name, run_dir = self._prepare(trial)
        t0 = time.perf_counter()
        reader = MetricReader(run_dir / METRIC_FILE)
        since = time.monotonic()
        runner = self._start(trial, name, run_dir, values)
        w = self._watch(trial, runner, reader, run_dir, since)
        seconds = time.perf_counter() - t0
        rc, crash = runner.result()
        state, value, error = _verdict(self.sweep.config.metric, w, rc, crash, reader.keys, run_dir)
        return self._conclude(trial, name, run_dir, values, (state, value, error), seconds, w.interrupted)

    def _prepare(self, trial: Any) -> tuple[dict[str, Any], str, Path]:
        """Draw ``trial``'s values (seeding the sampler per trial when the sweep has a
        ``seed``), make its run directory with a ``config.json`` saying it runs (a stale metric
        or prune file removed) and record it in the trial's user attributes; returns
        ``(values, name, run directory)``."""
        cfg = self.sweep.config
        if cfg.seed is not None:
            self._study.sampler = make_sampler(cfg, trial_seed(cfg.seed, trial.number))
        values = suggest(trial, cfg)
        name = f"trial-{trial.number:04d}"
        run_dir = self.sweep.run_dir(name)
        run_dir.mkdir(parents=True, exist_ok=True)
        for stale in (METRIC_FILE, PRUNE_FILE):
            (run_dir / stale).unlink(missing_ok=True)
        write_json(run_dir / "config.json", {"sweep": {"id": self.sweep.id, "trial": trial.number, "params": values,
                                                       "state": "running", "error": None}})
        for k, v in (("jno:config", values), ("jno:run_dir", str(run_dir)), ("jno:heartbeat", time.time())):
            trial.set_user_attr(k, v)
        self.log(f"[jno sweep {self.sweep.id}] {name} started: {json.dumps(values)}")
        return values, name, run_dir

    def _watch(self, trial: Any, runner: "ProcessRunner | FunctionRunner", reader: MetricReader, run_dir: Path,
               last_hb: float) -> "_Watch":
        """Poll the running trial every 50 ms until it ends: take the values it logs
        (:meth:`_take_values`), interrupt it once the agent is stopped (kill it on ``kill`` or
        ``kill_grace`` seconds later) and write a heartbeat every ``heartbeat`` seconds
        (``last_hb``: ``time.monotonic()`` of the last one)."""
        w = _Watch()
        t_int = 0.0
        while True:
            done = runner.done()
            self._take_values(trial, reader, w, run_dir)
            if done:
                return w
            if (self.stop.is_set() or self.kill.is_set()) and not w.interrupted:
                w.interrupted, t_int = True, time.monotonic()
                runner.interrupt()
            if w.interrupted and (self.kill.is_set() or time.monotonic() - t_int > self.kill_grace):
                runner.kill()
            if time.monotonic() - last_hb >= self.heartbeat:
                trial.set_user_attr("jno:heartbeat", time.time())
                last_hb = time.monotonic()
            self.stop.wait(0.05) if not self.stop.is_set() else time.sleep(0.05)

    def _take_values(self, trial: Any, reader: MetricReader, w: "_Watch", run_dir: Path) -> None:
        """Append the metric values logged since the last call to ``w.logged`` and report
        each finite one to Optuna (``trial.report(value, n)``) while the trial is neither
        pruned nor interrupted; when hyperband prunes it, record why and write the prune
        file the trial's solve stops at."""
        cfg = self.sweep.config
        for step, v in reader.read():
            w.logged.append((step, v))
            if math.isfinite(v) and w.pruned is None and not w.interrupted:
                trial.report(v, len(w.logged))
                if cfg.hyperband is not None and trial.should_prune():
                    w.pruned = (f"pruned by hyperband after {len(w.logged)} values of {cfg.metric['name']} "
                                f"(last {v:.6g} at step {step})")
                    (run_dir / PRUNE_FILE).write_text(w.pruned)

    def _conclude(self, trial: Any, name: str, run_dir: Path, values: dict[str, Any],
                  verdict: tuple[str, float | None, str | None], seconds: float,
                  interrupted: bool) -> TrialOutcome:
        """Tell Optuna the trial's ``verdict`` ``(state, value, error)``, re-queue an
        interrupted trial, update its ``config.json`` and log a line; returns its outcome."""
        import optuna

        TS = optuna.trial.TrialState
        state, value, error = verdict
        metric = self.sweep.config.metric["name"]
        if error is not None:
            trial.set_user_attr("jno:error", error[-_TAIL_CHARS:])
        trial.set_user_attr("jno:seconds", seconds)
        frozen = _Frozen(trial)
        if state == "complete":
            self._study.tell(trial, value)
        elif state == "pruned":
            self._study.tell(trial, state=TS.PRUNED)
        else:
            self._study.tell(trial, state=TS.FAIL)
        if interrupted:
            self.interrupted = True
            self._requeue(frozen, error)
            error += "; re-queued"
        _update_entry(run_dir, state=state, error=error, value=value if state != "failed" else None)
        shown = f"{metric}={value:.6g}" if isinstance(value, float) and state != "failed" else ""
        self.log(f"[jno sweep {self.sweep.id}] {name} {state} {shown} ({seconds:.1f} s)"
                 + (f": {error.splitlines()[0]}" if error and not interrupted else ""))
        return TrialOutcome(trial.number, name, state, value if state != "failed" else None, error, seconds, values)

    def _start(self, trial: Any, name: str, run_dir: Path, values: dict[str, Any]) -> "ProcessRunner | FunctionRunner":
        if self.function is not None:
            return FunctionRunner(self.function, read_trial(self.sweep.dir, name), run_dir)
        cmd = build_command(self.template, values, program=self.sweep.config.raw.get("program"),
                            args_file=run_dir / "sweep-args.json")
        env = dict(os.environ)
        env.update({ENV_DIR: str(self.sweep.dir), ENV_TRIAL: name, ENV_AGENT_PID: str(os.getpid())})
        return ProcessRunner(cmd, env, run_dir / OUTPUT_FILE)


@attrs.define
class _Watch:
    """What an agent saw while its trial ran: the ``(step, value)`` pairs of the metric it
    logged, why hyperband pruned it (None: not pruned) and whether the agent interrupted it."""

    logged: list[tuple[int, float]] = attrs.field(factory=list)
    pruned: str | None = None
    interrupted: bool = False


def _verdict(metric: dict[str, Any], w: _Watch, rc: int, crash: str | None, keys: Sequence[str] | None,
             run_dir: Path) -> tuple[str, float | None, str | None]:
    """``(state, value, error)`` of a finished trial: ``state`` ``complete``, ``pruned`` or
    ``failed`` (interrupted, non-zero exit ``rc`` -- with ``crash`` or the tail of its
    ``output.log`` --, the metric never logged or non-finite); ``value`` the last logged value
    (``summary: last``) or the best finite one per ``goal`` (``best``).

    :param metric: the sweep's ``metric`` entry (``name``, ``goal``, ``summary``).
    :param keys: the keys the trial logged (named when it never logged the metric).
    """
    vals = [v for _, v in w.logged]
    finite = [v for v in vals if math.isfinite(v)]
    name, goal = metric["name"], metric["goal"]
    value: float | None
    if metric["summary"] == "best":
        value = (max(finite) if goal == "maximize" else min(finite)) if finite else (vals[-1] if vals else None)
    else:
        value = vals[-1] if vals else None
    error = None
    if w.interrupted:
        state, error = "failed", "interrupted (the agent was stopped)"
    elif w.pruned is not None:
        state = "pruned"
    elif rc != 0:
        state, error = "failed", f"the trial exited with status {rc}:\n{crash or tail(run_dir / OUTPUT_FILE)}"
    elif not vals:
        seen = ", ".join(keys or []) or "nothing"
        state, error = "failed", (f"the trial never logged the metric {name!r} (it logged: {seen}). Log it "
                                  f"during training or with jno.log({{{name!r}: value}}).")
    elif value is None or not math.isfinite(value):
        state, error = "failed", f"the metric {name!r} is {value} (non-finite) at the end of the trial"
    else:
        state = "complete"
    return state, value, error


class _Frozen:
    """The bits of a trial :meth:`Agent._requeue` reads (number, params, user attributes)."""

    def __init__(self, trial: Any) -> None:
        self.number = trial.number
        self.params = dict(trial.params)
        self.user_attrs = dict(trial.user_attrs)


def run_agents(sweep: Sweep, command: Sequence[str] | None = None, *, workers: int = 1, count: int | None = None,
               function: Callable[[], Any] | None = None, heartbeat: float = 30.0, grace: float | None = None,
               log: Callable[[str], None] | None = None,
               handle_signals: bool = True) -> tuple[list[TrialOutcome], bool]:
    """Run ``workers`` agents (threads, each running one trial process at a time) on
    ``sweep`` until it is exhausted or ``count`` trials ran in total. Ctrl-C (SIGINT) or
    SIGTERM stops them cleanly: running trials are interrupted and re-queued (a second Ctrl-C
    kills them at once). Returns the outcomes and whether it was interrupted."""
    _check_workers(workers, function)
    budget, stop, kill = Budget(count), threading.Event(), threading.Event()
    agents = [Agent(sweep, command, function=function, budget=budget, stop=stop, kill=kill, heartbeat=heartbeat,
                    grace=grace, log=log) for _ in range(workers)]
    errors: list[BaseException] = []
    finished = threading.Semaphore(0)
    threads = [threading.Thread(target=_work, args=(a, errors, finished), name=f"jno-sweep-agent-{i}", daemon=True)
               for i, a in enumerate(agents)]
    old = None
    main = threading.current_thread() is threading.main_thread()
    if handle_signals and main:
        old = signal.signal(signal.SIGTERM, _raise_interrupt)
    interrupted = False
    try:
        for t in threads:
            t.start()
        interrupted = _wait(finished, len(threads), stop, kill, log or _to_stderr, sweep.id)
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)
    if errors:
        raise errors[0]
    return [o for a in agents for o in a.outcomes], interrupted


def _check_workers(workers: Any, function: Callable[[], Any] | None) -> None:
    """Raise :class:`ConfigError` unless ``workers`` is a positive integer (1 for a
    function sweep, which runs in this process)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers <= 0:
        raise ConfigError(f"--workers must be a positive integer, received {workers!r}.")
    if function is not None and workers != 1:
        raise ConfigError("a function sweep runs in this process, one trial at a time: use workers=1 "
                          "(or a command, which runs each trial in its own process).")


def _work(a: Agent, errors: list[BaseException], finished: threading.Semaphore) -> None:
    """An agent thread's body: run ``a``; an error is kept in ``errors`` for the caller and
    stops the other agents; ``finished`` is released when it ends, however it ends."""
    try:
        a.run()
    except BaseException as exc:  # noqa: BLE001 - reported by the caller
        errors.append(exc)
        a.stop.set()
    finally:
        finished.release()


def _raise_interrupt(signum: int, frame: Any) -> None:
    """SIGTERM handler: stop like Ctrl-C."""
    raise KeyboardInterrupt


def _wait(finished: threading.Semaphore, n: int, stop: threading.Event, kill: threading.Event,
          log: Callable[[str], None], sweep_id: str) -> bool:
    """Wait until ``n`` agent threads released ``finished``. The first Ctrl-C sets ``stop``
    (running trials are interrupted and re-queued) and says so through ``log``; a second sets
    ``kill``. Returns whether it was interrupted.

    Waits on a semaphore, not ``Thread.join``: a ``KeyboardInterrupt`` inside ``join()`` can
    leave the thread looking finished while it still runs (CPython gh-90882)."""
    interrupted = False
    left = n
    while left:
        try:
            if finished.acquire(timeout=0.2):
                left -= 1
        except KeyboardInterrupt:
            if interrupted:
                kill.set()
                continue
            interrupted = True
            stop.set()
            log(f"[jno sweep {sweep_id}] stopping: interrupting the running trial(s), which are re-queued "
                "(Ctrl-C again to kill them now). Resume with `jno sweep agent`.")
    return interrupted
