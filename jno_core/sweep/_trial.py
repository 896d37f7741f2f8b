"""The trial side of a sweep: what ``jno.setup`` does when an agent runs the script.

An agent starts the training script with two environment variables, ``JNO_SWEEP_DIR`` (the
sweep directory) and ``JNO_SWEEP_TRIAL`` (the trial's name, e.g. ``trial-0003``), after writing
``<sweep dir>/runs/<trial>/config.json`` with the trial's ``"sweep"`` entry (its parameters).
``jno.setup`` then (see :func:`take_trial`):

* puts the run directory there instead of ``runs/<script>/<timestamp>``;
* overrides the script's ``config={...}`` defaults with the trial's values;
* registers a :class:`TrialReporter`: a sink that writes each value of the sweep's metric to
  ``sweep-metric.jsonl`` in the run directory (the agent reads it, reports it to Optuna and
  decides pruning) and, when the agent has pruned the trial (the file ``sweep-prune`` appears),
  asks the solve to stop through the stop request early stopping uses.

Nothing here imports Optuna: a trial process pays only for a JSON read and a small file.
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import attrs

from ..errors import ConfigError
from ..hookspecs import hookimpl

__all__ = [
    "ENV_DIR",
    "ENV_TRIAL",
    "ENV_AGENT_PID",
    "METRIC_FILE",
    "PRUNE_FILE",
    "TrialSpec",
    "TrialReporter",
    "take_trial",
    "activate",
    "deep_merge",
]

ENV_DIR = "JNO_SWEEP_DIR"
ENV_TRIAL = "JNO_SWEEP_TRIAL"
ENV_AGENT_PID = "JNO_SWEEP_AGENT_PID"
#: in the trial's run directory: one JSON line per logged value of the metric
METRIC_FILE = "sweep-metric.jsonl"
#: in the trial's run directory: made by the agent when it prunes the trial (holds the reason)
PRUNE_FILE = "sweep-prune"

_active: "TrialSpec | None" = None
_lock = threading.Lock()


@attrs.define
class TrialSpec:
    """A trial as its process sees it.

    :ivar sweep_dir: the sweep directory.
    :ivar name: the trial's name (its run folder, ``trial-0003``).
    :ivar entry: the ``"sweep"`` entry of its ``config.json`` (``id``, ``trial``, ``params``,
        ``state``, ``error``).
    :ivar metric: the sweep's metric name.
    :ivar agent_pid: the agent's process id (a trial whose agent died stops itself), or None.
    """

    sweep_dir: Path
    name: str
    entry: dict[str, Any]
    metric: str
    agent_pid: int | None = None

    @property
    def run_dir(self) -> Path:
        return self.sweep_dir / "runs" / self.name

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.entry.get("params") or {})


def read_trial(sweep_dir: str | os.PathLike[str], name: str, agent_pid: int | None = None) -> TrialSpec:
    """The :class:`TrialSpec` the agent prepared in ``<sweep_dir>/runs/<name>/config.json``."""
    d = Path(sweep_dir)
    cfg_file = d / "runs" / name / "config.json"
    try:
        entry = json.loads(cfg_file.read_text())["sweep"]
        metric = json.loads((d / "sweep.json").read_text())["metric"]["name"]
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(
            f"{ENV_DIR}={str(d)!r} and {ENV_TRIAL}={name!r} name a sweep trial, but {cfg_file} (with a "
            f"'sweep' entry) or {d / 'sweep.json'} could not be read ({type(exc).__name__}: {exc}). These "
            "variables are set by `jno sweep agent`; unset them to run the script on its own."
        ) from exc
    return TrialSpec(d, name, entry, metric, agent_pid)


def activate(spec: TrialSpec | None) -> None:
    """Make the next ``jno.setup`` in this process run ``spec`` (function trials run in the
    agent's process); ``None`` clears it."""
    global _active
    with _lock:
        _active = spec


def take_trial() -> TrialSpec | None:
    """The trial this process runs, once: the one :func:`activate` set, else the one the
    environment names (the variables are removed, so a second ``jno.setup`` or a child
    process is an ordinary run)."""
    global _active
    with _lock:
        spec, _active = _active, None
    if spec is not None:
        return spec
    d, name = os.environ.get(ENV_DIR), os.environ.get(ENV_TRIAL)
    if not d or not name:
        return None
    pid = os.environ.get(ENV_AGENT_PID)
    for k in (ENV_DIR, ENV_TRIAL, ENV_AGENT_PID):
        os.environ.pop(k, None)
    return read_trial(d, name, int(pid) if pid and pid.isdigit() else None)


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``over``'s entries on top; nested mappings merge key by key."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


class TrialReporter:
    """The sweep's eyes inside a trial: a sink (``log_metrics``/``log_metrics_batch``) that
    appends every value of the sweep's metric to ``sweep-metric.jsonl`` (``{"step": s,
    "value": v}`` lines, flushed per delivery), and a training-control plugin
    (``on_chunk_end``) that calls ``ctx.request_stop`` once the agent pruned the trial.

    At ``close_run`` it writes ``{"keys": [...]}``, the keys the run logged, so a trial that
    never logged the metric fails with a message naming what it did log. It also watches the
    agent: if the agent's process is gone (killed), the trial stops itself (SIGTERM), since the
    sweep has re-queued it."""

    plugin_name = "sweep"
    concurrent_hooks = ("on_chunk_end",)

    def __init__(self, spec: TrialSpec, run_dir: Path) -> None:
        self.spec = spec
        self.metric = spec.metric
        self.path = Path(run_dir) / METRIC_FILE
        self.prune_path = Path(run_dir) / PRUNE_FILE
        self._fh = open(self.path, "a", encoding="utf-8")
        self._keys: set[str] = set()
        self._lock = threading.Lock()
        self._closed = False
        self.stop_requested: str | None = None
        if spec.agent_pid is not None:
            threading.Thread(target=self._watch_agent, args=(spec.agent_pid,), name="jno-sweep-watch",
                             daemon=True).start()

    def _watch_agent(self, pid: int, every: float = 2.0) -> None:
        while not self._closed:
            time.sleep(every)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os.kill(os.getpid(), signal.SIGTERM)
                return
            except OSError:  # exists, owned by someone else: alive
                pass

    # ------------------------------------------------------------------ sink
    def _write(self, records: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
        lines = []
        for step, metrics in records:
            self._keys.update(metrics)
            m = metrics.get(self.metric)
            if m is None:
                continue
            raw = getattr(m, "value", m)
            try:
                v = float(raw)
            except (TypeError, ValueError):
                continue
            lines.append(json.dumps({"step": int(step), "value": v if math.isfinite(v) else str(v)}) + "\n")
        if lines and not self._closed:
            self._fh.write("".join(lines))
            self._fh.flush()

    @hookimpl
    def log_metrics(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Append the metric's value at ``step`` (if logged)."""
        with self._lock:
            self._write(((step, metrics),))

    @hookimpl
    def log_metrics_batch(self, records: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
        """As :meth:`log_metrics`, one write and flush per batch."""
        with self._lock:
            self._write(records)

    @hookimpl
    def close_run(self) -> None:
        """Write the logged keys and close the file."""
        with self._lock:
            if self._closed:
                return
            self._fh.write(json.dumps({"keys": sorted(self._keys)}) + "\n")
            self._fh.close()
            self._closed = True

    # ------------------------------------------------------------------ pruning
    @hookimpl
    def on_chunk_end(self, ctx: Any, epochs: Any, losses: Any) -> None:
        """Stop the solve (``ctx.request_stop``) once the agent has pruned this trial."""
        if self.stop_requested is None and self.prune_path.exists():
            try:
                why = self.prune_path.read_text().strip()
            except OSError:
                why = ""
            self.stop_requested = why or "pruned by the sweep"
        if self.stop_requested is not None:
            ctx.request_stop(f"sweep trial {self.spec.name}: {self.stop_requested}")

    def __repr__(self) -> str:
        return f"<jno sweep reporter {self.spec.name} metric={self.metric!r}>"
