"""Read run and sweep directories for the report, the way ``jno sync`` reads them
(:func:`jno_core.replay.read_metrics` / :func:`~jno_core.replay.read_checkpoints` over the csv
sink's files), collecting every problem as a message that names the path instead of stopping:
the report shows what could be read and lists the rest.

A *run directory* holds ``config.json`` and/or the csv sink's ``metrics.csv`` / ``arrays/``.
A *sweep directory* (``jno sweep``) holds ``sweep.json`` and one run directory per trial under
``runs/<trial-name>/``, each with a ``"sweep"`` entry in its ``config.json``
(``{"id", "trial", "params", "state", "error"}``).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any, Sequence

import attrs
import numpy as np

from ..replay import ARRAYS_DIR, CHECKPOINTS_FILE, METRICS_FILE, read_checkpoints, read_metrics

__all__ = ["RunData", "Trial", "SweepData", "Inputs", "NotARunError", "load_run_dir", "load_sweep_dir",
           "load_inputs", "trial_metric"]

SWEEP_FILE = "sweep.json"
CONFIG_FILE = "config.json"


class NotARunError(ValueError):
    """A path given to the report is neither a run directory nor a sweep directory."""


@attrs.define
class RunData:
    """What could be read of one run directory.

    :ivar metrics: :func:`jno_core.replay.read_metrics`'s result (``{}`` when nothing was read).
    :ivar problems: messages naming the path of everything that could not be read.
    """

    dir: Path
    name: str
    config: dict[str, Any] = attrs.field(factory=dict)
    metrics: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    checkpoints: list[dict[str, Any]] = attrs.field(factory=list)
    problems: list[str] = attrs.field(factory=list)


@attrs.define
class Trial:
    """One trial of a sweep: its run, parameters, state and metric value (``None`` when its
    metrics hold no finite value of the sweep's metric)."""

    name: str
    number: int | None
    run: RunData
    params: dict[str, Any]
    state: str
    error: str | None
    best: float | None
    final: float | None


@attrs.define
class SweepData:
    """A sweep directory: ``sweep.json`` and its trials (sorted best first by the metric's
    best value per ``goal``; trials without a value last)."""

    dir: Path
    id: str
    config: dict[str, Any]
    metric: str | None
    goal: str
    trials: list[Trial]
    problems: list[str] = attrs.field(factory=list)


@attrs.define
class Inputs:
    """Everything :func:`load_inputs` read: single runs, sweeps, and problems with paths that
    could not be read at all."""

    runs: list[RunData]
    sweeps: list[SweepData]
    problems: list[str]


def _read_json(path: Path, problems: list[str]) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        problems.append(f"{path}: not readable as JSON ({type(exc).__name__}: {exc}); its contents are "
                        "left out of the report.")
        return {}
    if not isinstance(data, dict):
        problems.append(f"{path}: expected a JSON object, received {type(data).__name__}; left out.")
        return {}
    return data


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` looks like a run directory (``config.json``, ``metrics.csv`` or
    ``arrays/``)."""
    return path.is_dir() and any((path / n).exists() for n in (CONFIG_FILE, METRICS_FILE, ARRAYS_DIR))


def _not_a_run_message(path: Path) -> str:
    if not path.exists():
        return f"{path} does not exist; expected a run directory created by jno.setup or a sweep directory."
    if not path.is_dir():
        return (f"{path} is a file, not a directory; expected a run directory created by jno.setup "
                f"(holding {CONFIG_FILE} and {METRICS_FILE}) or a sweep directory (holding {SWEEP_FILE}).")
    inner = sorted(p for p in path.iterdir() if is_run_dir(p))
    hint = ""
    if inner:
        shown = ", ".join(p.name for p in inner[:3]) + (", ..." if len(inner) > 3 else "")
        hint = (f" It contains {len(inner)} run director{'y' if len(inner) == 1 else 'ies'} ({shown}): "
                f"pass them, e.g. jno report {path}/*")
    return (f"{path} is not a run directory: it holds none of {CONFIG_FILE}, {METRICS_FILE}, {ARRAYS_DIR}/ "
            f"(written by jno.setup and the csv sink) nor {SWEEP_FILE} (a sweep).{hint}")


def load_run_dir(path: str | Path, name: str | None = None) -> RunData:
    """Read one run directory; nothing raises: every problem becomes a message in
    ``RunData.problems`` naming the file.

    :raises NotARunError: when ``path`` is not a run directory at all.
    """
    d = Path(path)
    if not is_run_dir(d):
        raise NotARunError(_not_a_run_message(d))
    problems: list[str] = []
    config = _read_json(d / CONFIG_FILE, problems) if (d / CONFIG_FILE).is_file() else {}
    if not (d / CONFIG_FILE).is_file():
        problems.append(f"{d / CONFIG_FILE} is missing: the run's configuration and versions are unknown.")
    run_name = name or str(config.get("name") or d.name)
    metrics: dict[str, dict[str, Any]] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            metrics = read_metrics(d)
        except FileNotFoundError:
            problems.append(f"{d / METRICS_FILE}: no metrics logged yet (the file does not exist). The run "
                            "may not have reached its first delivery, or its sinks did not include 'csv'.")
        except Exception as exc:  # noqa: BLE001 - report what else can be read
            problems.append(f"{d / METRICS_FILE}: could not be read ({type(exc).__name__}: {exc}).")
        try:
            checkpoints = read_checkpoints(d)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{d / CHECKPOINTS_FILE}: could not be read ({type(exc).__name__}: {exc}).")
            checkpoints = []
    problems.extend(str(w.message) for w in caught)
    if not metrics and (d / METRICS_FILE).is_file():
        problems.append(f"{d / METRICS_FILE}: no metrics logged yet (the file holds no complete row).")
    return RunData(dir=d, name=run_name, config=config, metrics=metrics, checkpoints=checkpoints,
                   problems=problems)


def trial_metric(run: RunData, metric: str | None, goal: str) -> tuple[float | None, float | None]:
    """``(best, final)`` finite values of the scalar ``metric`` in ``run`` (best per ``goal``:
    the minimum for ``"minimize"``, the maximum for ``"maximize"``); ``None`` where absent."""
    entry = run.metrics.get(metric) if metric else None
    if entry is None or entry.get("kind") != "scalar":
        return None, None
    v = np.asarray(entry["values"], dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None, None
    best = float(v.max() if goal == "maximize" else v.min())
    return best, float(v[-1])


def load_sweep_dir(path: str | Path) -> SweepData:
    """Read a sweep directory (``sweep.json`` + ``runs/*/``); trials are sorted best first."""
    d = Path(path)
    problems: list[str] = []
    cfg = _read_json(d / SWEEP_FILE, problems)
    metric_cfg = cfg.get("metric") if isinstance(cfg.get("metric"), dict) else {}
    metric = metric_cfg.get("name") if isinstance(metric_cfg.get("name"), str) else None
    goal = str(metric_cfg.get("goal", "minimize")).lower()
    if goal not in ("minimize", "maximize"):
        problems.append(f"{d / SWEEP_FILE}: metric goal {goal!r} is neither 'minimize' nor 'maximize'; "
                        "trials are sorted as for 'minimize'.")
        goal = "minimize"
    if metric is None:
        problems.append(f"{d / SWEEP_FILE}: no metric name (expected \"metric\": {{\"name\": ..., \"goal\": "
                        "...}}); trials are listed unsorted.")
    trials: list[Trial] = []
    runs_dir = d / "runs"
    trial_dirs = sorted(p for p in runs_dir.iterdir() if p.is_dir()) if runs_dir.is_dir() else []
    if not trial_dirs:
        problems.append(f"{runs_dir}: no trial run directories yet.")
    for td in trial_dirs:
        try:
            run = load_run_dir(td, name=td.name)
        except NotARunError as exc:
            problems.append(str(exc))
            continue
        entry = run.config.get("sweep") if isinstance(run.config.get("sweep"), dict) else {}
        if entry.get("state") in ("failed", "pruned", "running"):  # no metrics is expected there
            run.problems = [p for p in run.problems if "no metrics logged yet" not in p]
        best, final = trial_metric(run, metric, goal)
        number = entry.get("trial")
        trials.append(Trial(
            name=td.name,
            number=int(number) if isinstance(number, (int, float)) and not isinstance(number, bool) else None,
            run=run,
            params=dict(entry.get("params") or {}),
            state=str(entry.get("state") or "unknown"),
            error=entry.get("error"),
            best=best,
            final=final,
        ))
    sign = -1.0 if goal == "maximize" else 1.0
    trials.sort(key=lambda t: (t.best is None, sign * t.best if t.best is not None else math.inf, t.name))
    return SweepData(dir=d, id=str(cfg.get("id") or d.name), config=cfg, metric=metric, goal=goal,
                     trials=trials, problems=problems)


def load_inputs(paths: Sequence[str | Path]) -> Inputs:
    """Read every path: a sweep directory (``sweep.json``), else a run directory; a path that
    is neither becomes a problem message (the others are still read)."""
    runs: list[RunData] = []
    sweeps: list[SweepData] = []
    problems: list[str] = []
    names: set[str] = set()
    for p in paths:
        d = Path(p)
        if (d / SWEEP_FILE).is_file():
            sweeps.append(load_sweep_dir(d))
            continue
        try:
            run = load_run_dir(d)
        except NotARunError as exc:
            problems.append(str(exc))
            continue
        if run.name in names:  # two runs of the same name (e.g. same timestamp in two projects)
            run.name = f"{d.parent.name}/{d.name}"
        names.add(run.name)
        runs.append(run)
    return Inputs(runs=runs, sweeps=sweeps, problems=problems)
