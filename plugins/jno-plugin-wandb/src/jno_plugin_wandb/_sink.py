"""The ``wandb`` sink: one W&B run per jno run.

``wandb.init`` receives ``project`` (the script's stem unless the user sets one), ``dir``
(the run directory), ``config`` (the run's ``config.json``), ``name`` (the run's name) and
then every user option from ``jno.setup(wandb={...})`` / ``[sink_options.wandb]``, which win.
Two option keys are jno's own and are not passed on: ``weave`` (``True``/``False``/unset,
see :meth:`WandbSink.init_weave`) and ``offline_fallback`` (default ``True``: when an online
``wandb.init`` fails, e.g. no network or no API key, log offline instead of stopping the
script, and say how to upload later).

A run made by a sweep agent (``jno sweep``; its ``config.json`` has a ``"sweep"`` entry) gets
``group`` = the sweep id and its hyperparameters (the run config: defaults overridden by the
trial's values) at the top level of ``config``, as W&B's own sweeps set them.

How each metric type is rendered:

* :class:`~jno_core.metrics.Scalar` -> the number (``nan``/``inf`` kept);
* :class:`~jno_core.metrics.Heatmap` -> ``wandb.Image`` of
  :func:`jno_core.colormap.heatmap_to_rgb` (min dark purple, max yellow, non-finite magenta),
  the caption giving the value range;
* :class:`~jno_core.metrics.Histogram` -> ``wandb.Histogram`` with ``bins`` bins (binned by
  :func:`jno_core.binning.histogram_lists`, exactly as ``wandb.Histogram(values, num_bins=bins)``
  bins them, and passed as ``np_histogram``);
* :class:`~jno_core.metrics.Array` -> ``wandb.Histogram`` of the flattened values
  (``min(64, size)`` bins).

Histograms drop non-finite values; a value with no finite entry is not sent. Steps sent to
W&B never decrease: a smaller step is logged at the last step, with a warning.

The metrics delivery thread hands the sink everything it had queued in one
``log_metrics_batch`` call; records with the same step become one ``wandb_run.log`` call (W&B
merges them into one history row anyway). W&B's own work per call dominates (a ``log`` call
is a round trip through its background thread; every image is also a media file and a file
record; figures in benchmarks/README.md), so the sink adds as little Python as it can around
it.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import re
import time
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from jno_core.api import finite_values, histogram_lists
from jno_core.api import heatmap_to_rgb
from jno_core.api import hookimpl
from jno_core.api import Array, Heatmap, Histogram, Scalar, as_metric

__all__ = ["WandbSink", "import_wandb", "artifact_name", "JNO_OPTIONS", "DEFAULT_INIT_TIMEOUT"]

#: option keys the sink consumes itself (not passed to ``wandb.init``)
JNO_OPTIONS = ("weave", "offline_fallback")
#: seconds ``wandb.init`` may wait for the W&B service (wandb's own default is 90)
DEFAULT_INIT_TIMEOUT = 60.0
_ARRAY_MAX_BINS = 64
_WANDB_MAX_BINS = 512
_METRIC_TYPES = (Scalar, Heatmap, Histogram, Array)


def import_wandb() -> Any:
    """The ``wandb`` module, or an ImportError that says how to install it."""
    try:
        import wandb
    except ImportError as exc:
        raise ImportError(
            "the jno 'wandb' sink (distribution jno-plugin-wandb, plugins/jno-plugin-wandb) "
            f"needs the wandb package, which could not be imported ({exc}). Fix: pip install "
            "wandb (or pip install -e plugins/jno-plugin-wandb), or drop 'wandb' from the "
            "run's sinks (jno.setup without wandb=True, JNO_SINKS, jno.toml)."
        ) from exc
    return wandb


def artifact_name(name: str) -> str:
    """``name`` made a valid W&B artifact name: characters other than letters, digits, ``-``,
    ``_`` and ``.`` become ``-``; at most 128 characters."""
    clean = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")
    return (clean or "jno-checkpoint")[:128]


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    try:
        arr = np.asarray(value)
    except Exception:  # noqa: BLE001
        return str(value)
    return arr.tolist() if arr.dtype.kind in "biuf" else str(value)


def _weave_installed() -> bool:
    try:
        return importlib.util.find_spec("weave") is not None
    except (ValueError, ImportError):  # a module in sys.modules without __spec__
        return False


class WandbSink:
    """Send a run's metrics to a W&B run (online, or offline with ``WANDB_MODE=offline``).

    :param run: the :class:`jno_core.run.Run`; options come from
        ``run.sink_options["wandb"]`` (``wandb.init`` keyword arguments plus
        :data:`JNO_OPTIONS`).
    :ivar wandb_run: the ``wandb`` run object.
    :ivar init_kwargs: the keyword arguments ``wandb.init`` received.
    """

    plugin_name = "wandb"

    def __init__(self, run: Any) -> None:
        wandb = import_wandb()
        self._wandb = wandb
        opts = dict((getattr(run, "sink_options", None) or {}).get("wandb", {}) or {})
        want_weave = opts.pop("weave", None)
        offline_fallback = bool(opts.pop("offline_fallback", True))
        config = getattr(run, "config", None) or {}
        self.run_name = str(run.name)
        kwargs: dict[str, Any] = {
            "project": config.get("project") or "jno",
            "dir": str(run.dir),
            "config": config,
            "name": self.run_name,
        }
        sweep = config.get("sweep")
        if isinstance(sweep, dict) and sweep.get("id"):
            # a sweep trial: grouped by sweep, its hyperparameters at the top of the config (as
            # W&B's own sweeps set them), so the runs line up in W&B's UI
            kwargs["group"] = str(sweep["id"])
            kwargs["config"] = {**config, **dict(config.get("user") or {})}
        kwargs.update(opts)
        if "settings" not in kwargs:
            kwargs["settings"] = wandb.Settings(init_timeout=DEFAULT_INIT_TIMEOUT)
        self.init_kwargs = kwargs
        self.wandb_run = self._init(kwargs, offline_fallback, Path(run.dir))
        self._jno_run = run
        self._closed = False
        self._last_step: int | None = None
        self._backwards = 0
        self._skipped: set[str] = set()
        self.weave_project: str | None = None
        self.init_weave(want_weave)
        # wandb tears its service down at interpreter exit; jno's own exit hook was
        # registered earlier, so it would run after that. This one runs first (LIFO).
        atexit.register(self._finish_at_exit)

    # ------------------------------------------------------------------ set-up
    def _init(self, kwargs: dict[str, Any], offline_fallback: bool, run_dir: Path) -> Any:
        wandb = self._wandb
        try:
            return wandb.init(**kwargs)
        except Exception as exc:  # noqa: BLE001 - wandb raises many types
            mode = str(kwargs.get("mode") or os.environ.get("WANDB_MODE", "")).lower()
            if not offline_fallback or mode in ("offline", "disabled", "dryrun"):
                raise RuntimeError(
                    f"wandb.init failed ({type(exc).__name__}: {exc}). Expected a reachable W&B "
                    "server and a configured API key. Fix: run `wandb login`, or log offline "
                    "with WANDB_MODE=offline (upload later with `wandb sync`), or remove 'wandb' "
                    "from the run's sinks."
                ) from exc
            warnings.warn(
                f"wandb.init could not start an online run ({type(exc).__name__}: {exc}); "
                f"logging offline under {run_dir / 'wandb'} instead. Upload it later with "
                f"`wandb sync {run_dir / 'wandb'}/offline-run-*` (or `jno sync {run_dir} --to "
                "wandb`). Set wandb={'offline_fallback': False} to make this an error.",
                RuntimeWarning,
                stacklevel=3,
            )
            kwargs["mode"] = "offline"
            return wandb.init(**kwargs)

    @property
    def offline(self) -> bool:
        """Whether the W&B run is offline or disabled (nothing is sent over the network)."""
        r = self.wandb_run
        return bool(getattr(r, "offline", False) or getattr(r, "disabled", False))

    def init_weave(self, want: bool | None = None) -> str | None:
        """Start Weave tracing in the W&B project when the ``weave`` package is installed.

        :param want: ``False`` never starts it; ``None`` (default) starts it only for online
            runs; ``True`` also tries offline (Weave needs a server) and warns when ``weave``
            is missing.
        :returns: the project passed to ``weave.init`` (``"<entity>/<project>"`` when the
            user set an entity, else the W&B project name), or ``None``.
        """
        if want is False:
            return None
        if not _weave_installed():
            if want:
                warnings.warn("wandb={'weave': True} but the weave package is not installed; "
                              "pip install weave.", RuntimeWarning, stacklevel=2)
            return None
        if self.offline and not want:
            return None
        project = str(getattr(self.wandb_run, "project", None) or self.init_kwargs["project"])
        entity = self.init_kwargs.get("entity")
        target = f"{entity}/{project}" if entity else project
        try:
            import weave

            weave.init(target)
        except Exception as exc:  # noqa: BLE001 - tracing is optional
            warnings.warn(f"weave.init({target!r}) failed ({type(exc).__name__}: {exc}); Weave "
                          "tracing is off for this run.", RuntimeWarning, stacklevel=2)
            return None
        self.weave_project = target
        return target

    # ------------------------------------------------------------------ helpers
    def _monotone(self, step: int) -> int:
        if self._last_step is not None and step < self._last_step:
            self._backwards += 1
            if self._backwards == 1:
                warnings.warn(
                    f"wandb sink received step {step} after step {self._last_step}; W&B steps "
                    f"must not decrease, so it is logged at step {self._last_step} (later "
                    "occurrences are counted, not repeated).",
                    RuntimeWarning,
                    stacklevel=3,
                )
            return self._last_step
        self._last_step = step
        return step

    def _histogram(self, key: str, values: Any, step: int, bins: int) -> Any:
        finite = finite_values(values)
        if finite.size == 0:
            if key not in self._skipped:
                self._skipped.add(key)
                warnings.warn(f"wandb sink: {key!r} at step {step} has no finite values; its "
                              "histogram is not sent (further skips of this key are silent).",
                              RuntimeWarning, stacklevel=3)
            return None
        # lists (plain Python below binning.SMALL): what wandb.Histogram keeps anyway
        counts, edges = histogram_lists(finite, int(min(max(1, bins), _WANDB_MAX_BINS)))
        return self._wandb.Histogram(np_histogram=(counts, edges))

    def _render(self, key: str, raw: Any, step: int) -> Any:
        value = raw if type(raw) in _METRIC_TYPES else as_metric(raw, key=key, source="wandb sink")
        kind = value.kind
        if kind == "scalar":
            return float(value.value)
        if kind == "heatmap":
            img, vmin, vmax = heatmap_to_rgb(value.values)
            return self._wandb.Image(
                img, caption=f"{key} at step {step}: min {vmin:.4g} (purple), max {vmax:.4g} (yellow)"
            )
        if kind == "histogram":
            return self._histogram(key, value.values, step, value.bins)
        return self._histogram(key, value.values, step, min(_ARRAY_MAX_BINS, max(1, int(np.size(value.values)))))

    def _require_open(self) -> None:
        if self._closed:
            raise RuntimeError(
                "the wandb sink was closed (close_run) and received more metrics; expected no "
                "calls after close_run. Open a new run with jno.setup()."
            )

    # ------------------------------------------------------------------ hooks
    def _write(self, records: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
        self._require_open()
        log = self.wandb_run.log
        payload: dict[str, Any] = {}
        at: int | None = None
        for step, metrics in records:
            step = self._monotone(int(step))
            if at is not None and step != at:
                if payload:
                    log(payload, step=at)
                    time.sleep(0)  # W&B's work holds the GIL: let the training thread in
                payload = {}
            at = step
            for key, raw in metrics.items():
                rendered = self._render(key, raw, step)
                if rendered is not None:
                    payload[key] = rendered
        if payload:
            log(payload, step=at)

    @hookimpl
    def log_metrics(self, step: int, metrics: Mapping[str, Any]) -> None:
        """``wandb_run.log({key: rendered value}, step=step)`` with a non-decreasing step."""
        self._write(((step, metrics),))

    @hookimpl
    def log_metrics_batch(self, records: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
        """One ``wandb_run.log`` call per distinct step of ``records`` (records with the same
        step are merged, later keys winning, as W&B merges them into one row)."""
        self._write(records)

    @hookimpl
    def save_checkpoint(self, path: str, epoch: int, metadata: Mapping[str, Any]) -> None:
        """Log the checkpoint directory as a versioned artifact ``<run name>-checkpoint`` of type
        ``checkpoint`` with ``metadata`` and aliases ``latest`` and ``epoch-<epoch>``."""
        self._require_open()
        p = Path(path)
        if not p.exists():
            warnings.warn(f"wandb sink: checkpoint {p} (epoch {epoch}) does not exist; nothing "
                          "uploaded.", RuntimeWarning, stacklevel=2)
            return
        art = self._wandb.Artifact(
            name=artifact_name(f"{self.run_name}-checkpoint"),
            type="checkpoint",
            metadata=_jsonable({"epoch": int(epoch), **dict(metadata)}),
        )
        if p.is_dir():
            # file by file, as Artifact.add_dir adds them (name = path within the directory),
            # without the 8-thread pool add_dir starts and joins on every call, a sizeable share
            # of the delivery thread's time in script 09 (see benchmarks/README.md)
            for f in sorted(q for q in p.rglob("*") if q.is_file()):
                art.add_file(str(f), name=f.relative_to(p).as_posix())
        else:
            art.add_file(str(p))
        self.wandb_run.log_artifact(art, aliases=["latest", f"epoch-{int(epoch)}"])

    @hookimpl
    def flush_metrics(self) -> None:
        """Nothing to do: ``wandb`` streams every ``log`` to its service as it happens."""

    @hookimpl
    def close_run(self) -> None:
        """Finish the W&B run (idempotent)."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self._finish_at_exit)
        if self._backwards > 1:
            warnings.warn(f"wandb sink: {self._backwards} batches arrived with a decreasing step "
                          "and were logged at the last step.", RuntimeWarning, stacklevel=2)
        self.wandb_run.finish()

    def _finish_at_exit(self) -> None:
        """At interpreter exit, before wandb's own teardown: deliver what the run queued and
        finish the W&B run."""
        if self._closed:
            return
        try:
            from jno_core.api import run as jrun

            current = jrun.current_run()
            if current is self._jno_run and self in getattr(current, "sinks", []):
                jrun.finish()
        finally:
            if not self._closed:
                self.close_run()

    def __repr__(self) -> str:
        return f"WandbSink({self.run_name!r}, project={self.init_kwargs.get('project')!r})"
