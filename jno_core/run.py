"""Run set-up: ``jno.setup(__file__, ...)`` creates the run directory, writes ``config.json``
and opens the configured metrics sinks (see :mod:`jno_core.sinkconfig` for how sinks are
chosen)."""

from __future__ import annotations

import atexit
import datetime as _dt
import json
import os
import platform
import shutil
import sys
import threading
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import attrs

from . import compile_cache, plugins
from .delivery import MetricsBus
from .runconfig import RunConfig
from .rundir import RunLock, atomic_write_text, make_run_dir

__all__ = ["Run", "RunPath", "setup", "current_run", "finish", "log", "package_versions"]

_current: "Run | None" = None
_lock = threading.Lock()


def package_versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("jno-core", "jax", "jaxlib", "equinox", "optax", "numpy", "pluggy", "foundax",
                 "wandb", "tensorboardX"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


class RunPath(str):
    """The run directory as a ``str`` (the spec writes ``f"{dire}/checkpoints"``) with the
    :class:`Run` attached as ``.run`` and the run's hyperparameters as ``.config`` (a
    :class:`~jno_core.runconfig.RunConfig`: ``dire.config["lr"]`` or ``dire.config.lr``)."""

    run: "Run"
    config: RunConfig


@attrs.define(eq=False)
class Run:
    """One experiment: its directory, config, sinks and metrics bus."""

    dir: Path
    name: str
    script: str | None
    config: dict[str, Any]
    sink_names: list[str]
    sink_options: dict[str, Any]
    strict: bool = False
    progress: bool | None = None
    sinks: list[Any] = attrs.field(factory=list)
    bus: MetricsBus | None = None
    step: int = -1  # last step delivered; sinks see monotone steps
    closed: bool = False
    report: bool = False  # write report.html into dir at close (jno.setup(report=True))
    report_path: Path | None = None  # where close() wrote it
    lock: Any = None  # the RunLock held while the run is open

    @property
    def config_path(self) -> Path:
        return self.dir / "config.json"

    def write_config(self) -> None:
        """Rewrite ``config.json`` atomically (temporary file, ``fsync``, rename). A failure
        (e.g. a full disk) leaves the previous file and no temporary one, and is reported
        with a ``RuntimeWarning``: it never stops training."""
        err = atomic_write_text(self.config_path, json.dumps(self.config, indent=2, sort_keys=True, default=str))
        if err is not None:
            warnings.warn(f"jno: could not rewrite {self.config_path} ({type(err).__name__}: {err}); the previous "
                          "version is kept and training goes on. Free space or fix the directory's permissions.",
                          RuntimeWarning, stacklevel=3)

    def record_solve(self, entry: dict[str, Any]) -> None:
        """Add a ``solve()`` call to ``config["solves"]`` and rewrite ``config.json``.

        ``entry`` has ``start_epoch`` and ``epochs`` plus the solve's set-up (constraints,
        networks, points, callbacks). A call that continues the last entry (it starts where
        that one ended) with the same set-up is merged into it: the epochs add up and
        ``calls`` counts the ``solve()`` calls. So a script that calls ``solve`` in a loop keeps
        a config of constant size (a list entry per call made every rewrite longer, a cost that
        grew with the number of calls; see benchmarks/README.md)."""
        solves = self.config.setdefault("solves", [])
        last = solves[-1] if solves else None
        if last is not None and entry["start_epoch"] == last["start_epoch"] + last["epochs"] and (
            {k: v for k, v in last.items() if k not in _SOLVE_COUNTS}
            == {k: v for k, v in entry.items() if k not in _SOLVE_COUNTS}
        ):
            last["epochs"] += entry["epochs"]
            last["calls"] += 1
        else:
            solves.append({**entry, "calls": 1})
        self.write_config()

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Send ``metrics`` (``{key: number or metric}``) to every sink at ``step`` (default:
        the epoch the last ``solve()`` ended at, 0 before any), e.g. a validation error
        computed after training: ``dire.run.log({"val/l2_rel": err})``."""
        from .metrics import as_metrics

        if self.closed:
            raise RuntimeError(f"run {self.dir} is closed (jno.finish); log before finishing it.")
        if step is None:
            solves = self.config.get("solves") or []
            step = solves[-1]["start_epoch"] + solves[-1]["epochs"] if solves else 0
        if self.bus is not None:
            self.bus.put(int(step), as_metrics(dict(metrics), source="script"))

    def update_config(self, **entries: Any) -> None:
        self.config.update(entries)
        self.write_config()

    def close(self) -> None:
        """Flush and close every sink (idempotent)."""
        if self.closed:
            return
        self.closed = True
        try:
            if self.bus is not None:
                self.bus.close()
            for s in self.sinks:
                plugins.unregister_plugin(s)
            if self.report:
                from .report._hook import report_at_close

                self.report_path = report_at_close(self.dir, strict=self.strict)
        finally:
            if self.lock is not None:
                self.lock.release()


#: the keys of a ``config["solves"]`` entry that merged calls add up (see Run.record_solve)
_SOLVE_COUNTS = ("start_epoch", "epochs", "calls")


def _timestamp() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def setup(
    file: str | os.PathLike[str] | None = None,
    name: str | None = None,
    *,
    sinks: Sequence[str] | str | None = None,
    wandb: bool | Mapping[str, Any] | None = None,
    tensorboard: bool | Mapping[str, Any] | None = None,
    root: str | os.PathLike[str] | None = None,
    seed: int = 0,
    strict: bool | None = None,
    progress: bool | None = None,
    config: Mapping[str, Any] | None = None,
    report: bool | None = None,
) -> RunPath:
    """Create the run directory ``<root>/<script stem>/<name or timestamp>`` (``root``
    defaults to ``runs`` in the working directory), write ``config.json`` and open sinks.

    :param file: the calling script (``__file__``); its stem names the run group.
    :param name: the run's folder name (default: a timestamp).
    :param sinks: sink plugin names, e.g. ``["csv", "tensorboard"]``; ``"none"`` disables all.
    :param wandb: ``True`` adds the W&B sink; a dict also goes to ``wandb.init`` (its keys win).
    :param tensorboard: ``True`` adds the TensorBoard sink (a dict: its options).
    :param seed: recorded in ``config.json`` (the spec's scripts seed their own keys).
    :param strict: re-raise sink and plugin errors instead of reporting them.
    :param progress: force the progress display on/off (default: only on a terminal, not CI).
    :param config: the run's hyperparameters with their defaults, stored under ``"user"`` in
        ``config.json`` and read back as ``dire.config["lr"]`` / ``dire.config.lr``. When a
        sweep agent runs the script (``jno sweep``), the trial's values override them, the run
        directory is the trial's (``<sweep dir>/runs/<trial>``) and ``config.json`` has a
        ``"sweep"`` entry (see :mod:`jno_core.sweep`).
    :param report: write ``report.html`` (``jno report``) into the run directory when the run
        closes (default: ``JNO_REPORT``, else ``report`` in ``jno.toml``, else off).
    :returns: the run directory as a :class:`RunPath` (a ``str``).
    """
    from .sweep._trial import take_trial

    global _current
    _close_current()
    if strict is not None:
        plugins.set_strict(strict)
    script = str(Path(file).resolve()) if file else None
    stem = Path(file).stem if file else "jno"
    base = Path(root) if root is not None else Path.cwd() / "runs"
    trial = take_trial()
    user = _user_config(config, trial)
    names, options, want_report = _outputs(sinks, wandb, tensorboard, stem, report)
    run_dir, run_name, created = _run_folder(trial, base, stem, name)
    run = _open_locked(run_dir, created, lambda: _open_run(
        run_dir, run_name, script, stem, names, options, seed, user, progress, trial, want_report))
    with _lock:
        _current = run
    out = RunPath(str(run.dir))
    out.run = run
    out.config = RunConfig(user)
    return out


def _close_current() -> None:
    """Close the run the previous :func:`setup` opened, if any (one run at a time)."""
    global _current
    with _lock:
        if _current is not None:
            _current.close()
            _current = None


def _user_config(config: Mapping[str, Any] | None, trial: Any) -> dict[str, Any]:
    """The run's hyperparameters: ``config``'s defaults, overridden by a sweep trial's values
    when an agent runs the script (``trial`` not None)."""
    from .sweep._trial import deep_merge

    user = dict(config or {})
    if trial is not None:  # run by a sweep agent: the trial's values
        user = deep_merge(user, trial.params)
    return user


def _outputs(sinks: Sequence[str] | str | None, wandb: bool | Mapping[str, Any] | None,
             tensorboard: bool | Mapping[str, Any] | None, stem: str,
             report: bool | None) -> tuple[list[str], dict[str, Any], bool]:
    """``(sink names, sink options, write report.html)`` from :func:`setup`'s arguments and
    the configuration (:mod:`jno_core.sinkconfig`); a report that cannot be written fails
    here, before the run directory exists, not after training."""
    from .sinkconfig import resolve_report, resolve_sinks

    names, options = resolve_sinks(sinks=sinks, wandb=wandb, tensorboard=tensorboard, project=stem)
    want_report = resolve_report(report)
    if want_report:  # fail before the run directory exists, not after training
        from .report._hook import check_report_possible

        check_report_possible(names)
    return names, options, want_report


def _run_folder(trial: Any, base: Path, stem: str, name: str | None) -> tuple[Path, str, bool]:
    """``(run directory, run name, created)``: a sweep trial's own folder, else a new
    ``<base>/<stem>/<name or timestamp>``; ``created`` says whether this call made it."""
    if trial is not None:  # the trial's folder
        run_dir, run_name = Path(trial.run_dir), trial.name
        created = not run_dir.exists()
        run_dir.mkdir(parents=True, exist_ok=True)
    else:
        # atomic: a new timestamped directory per process; a named one is locked (jno_core.rundir)
        run_dir, created = make_run_dir(base, stem, name, _timestamp())
        run_name = run_dir.name
    return run_dir, run_name, created


def _open_locked(run_dir: Path, created: bool, open_run: Callable[[], Run]) -> Run:
    """Lock ``run_dir`` (:class:`~jno_core.rundir.RunLock`) and open the run with
    ``open_run()``, holding the lock in ``run.lock``. A failure leaves no stray run directory
    (when this setup ``created`` it) nor a half-opened run, and re-raises."""
    try:
        lock = RunLock(run_dir)
    except BaseException:
        if created:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    run: Run | None = None
    try:
        run = open_run()
        run.lock = lock
    except BaseException:
        # a failed setup leaves no stray run directory (nor a half-opened run)
        if run is not None:
            run.close()
        lock.release()
        if created:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return run


def _open_run(run_dir: Path, run_name: str, script: str | None, stem: str, names: list[str], options: dict[str, Any],
              seed: int, user: dict[str, Any], progress: bool | None, trial: Any, want_report: bool) -> Run:
    """Write ``config.json`` into ``run_dir`` and open the sinks ``names`` (and, for a sweep
    trial, its reporter)."""
    import jax

    if jax.process_index() != 0:
        # multi-host (jax.distributed): only process 0 opens sinks, so no metric is duplicated
        names = []
    cfg = _run_config(run_dir, run_name, script, stem, names, options, seed, user)
    if trial is not None:
        cfg["sweep"] = {**trial.entry, "metric": trial.metric}
    run = Run(
        dir=run_dir.resolve(),
        name=run_name,
        script=script,
        config=cfg,
        sink_names=names,
        sink_options=options,
        strict=plugins.strict_mode(),
        progress=progress,
        report=want_report and "csv" in names,  # multi-host: process 0 only
    )
    run.write_config()
    run.bus = MetricsBus(strict=run.strict)
    try:
        _attach_sinks(run, names, trial)
    except BaseException:
        run.close()
        raise
    return run


def _run_config(run_dir: Path, run_name: str, script: str | None, stem: str, names: list[str],
                options: dict[str, Any], seed: int, user: dict[str, Any]) -> dict[str, Any]:
    """The ``config.json`` contents of a new run: where and how it runs (script, argv,
    versions, platform, devices, compilation cache), its sinks and the user's config."""
    import jax

    return {
        "script": script,
        "argv": list(sys.argv),
        "name": run_name,
        "project": stem,
        "run_dir": str(run_dir.resolve()),
        "created": _dt.datetime.now().isoformat(),
        "seed": seed,
        "versions": package_versions(),
        "platform": platform.platform(),
        "devices": [str(d) for d in jax.devices()],
        "compilation_cache": compile_cache.describe(),
        "sinks": names,
        "sink_options": {k: v for k, v in options.items()},
        "user": user,
        "solves": [],
    }


def _attach_sinks(run: Run, names: list[str], trial: Any) -> None:
    """Build the sinks ``names`` for ``run``, register each as a plugin and add it to the
    run's metrics bus; for a sweep trial, also its reporter (the sweep sees the metric and
    can stop a pruned trial's solve)."""
    from .sweep._trial import TrialReporter

    for sink_name in names:
        entry = plugins.lookup("sinks", sink_name, namespace="sink")
        sink = entry.factory(run)
        plugins.register_plugin(sink, name=f"sink:{sink_name}:{id(sink)}")
        run.sinks.append(sink)
        run.bus.add_sink(sink, label=f"{sink_name} ({entry.plugin})")
    if trial is not None:  # the sweep sees the metric and can stop a pruned trial's solve
        reporter = TrialReporter(trial, run.dir)
        plugins.register_plugin(reporter, name=f"sweep:{trial.name}:{id(reporter)}")
        run.sinks.append(reporter)
        run.bus.add_sink(reporter, label="sweep reporter")


def current_run() -> Run | None:
    """The run opened by the last :func:`setup` (None before)."""
    return _current


def log(metrics: Mapping[str, Any], step: int | None = None) -> None:
    """``jno.log({"val/l2_rel": err})``: send metrics to the current run's sinks (see
    :meth:`Run.log`); a sweep reads its metric from what the run logs this way or during
    training."""
    run = _current
    if run is None:
        raise RuntimeError("jno.log needs a run: call jno.setup(__file__) first.")
    run.log(metrics, step=step)


def finish() -> None:
    """Flush and close the current run's sinks (also done at interpreter exit)."""
    global _current
    with _lock:
        run, _current = _current, None
    if run is not None:
        run.close()


atexit.register(finish)
