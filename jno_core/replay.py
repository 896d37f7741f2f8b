"""Read what the embedded ``csv`` sink wrote, and replay a finished (or killed) run into any
other sink: ``jno sync RUN_DIR --to tensorboard|wandb``.

The on-disk layout of a run directory (written by ``jno-plugin-csv``, defined here so the
writer and the reader share one definition):

``metrics.csv``
    one row per scalar: ``step,key,value`` (long layout, header once). Values are written with
    ``repr(float)``, so ``nan``/``inf``/``-inf`` round-trip and float64 values are exact.
``arrays/<key with "/" replaced by "__">/<first step:08d>-<last step:08d>.npz``
    heatmap / histogram / array values, one compressed archive per key and delivery (a single
    step's file is ``<step:08d>.npz``), which ``np.load`` reads: ``steps`` ``(S,)`` and
    ``values`` ``(S, ...)`` (format in :mod:`jno_core.arrayfile`). A second key mapping to
    the same folder name (``"a/b"`` and ``"a__b"``) gets the folder ``<name>~2``; every file
    records its key.
``checkpoints.csv``
    one row per saved checkpoint: ``epoch,path,timestamp,metadata`` (metadata as JSON).
``config.json``
    the run's configuration, written by ``jno.setup``.

A killed process may leave a half-written last line, which is not read (only lines ending in a
newline are), and a temporary ``arrays/<key>/.tmp-*`` file, which is skipped.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import warnings
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import attrs
import numpy as np

from .arrayfile import SUFFIX as ARRAY_SUFFIX
from .arrayfile import parse_name, read_array_file

__all__ = [
    "METRICS_FILE",
    "METRICS_HEADER",
    "CHECKPOINTS_FILE",
    "CHECKPOINTS_HEADER",
    "ARRAYS_DIR",
    "ARRAY_SUFFIX",
    "array_dirname",
    "read_metrics",
    "read_checkpoints",
    "CHECKPOINT_DIR",
    "load_run",
    "iter_batches",
    "ReplaySummary",
    "replay",
    "sync_main",
]

METRICS_FILE = "metrics.csv"
METRICS_HEADER = ("step", "key", "value")
CHECKPOINTS_FILE = "checkpoints.csv"
CHECKPOINTS_HEADER = ("epoch", "path", "timestamp", "metadata")
ARRAYS_DIR = "arrays"


def array_dirname(key: str) -> str:
    """The folder under ``arrays/`` holding the values of ``key`` (``"/"`` becomes ``"__"``)."""
    name = key.replace("/", "__").replace("\\", "__").replace("\x00", "")
    return name if name not in ("", ".", "..") else f"_{name}"


# ---------------------------------------------------------------------------- reading
def _complete_rows(path: Path) -> Iterator[list[str]]:
    """CSV rows of ``path`` from complete lines only (a killed writer's partial last line is
    dropped)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    lines.pop()  # "" after the final newline, or the incomplete last line
    yield from csv.reader(lines)


def _read_scalars(path: Path) -> dict[str, dict[str, np.ndarray]]:
    steps: dict[str, list[int]] = {}
    values: dict[str, list[float]] = {}
    bad = 0
    for row in _complete_rows(path):
        if tuple(row) == METRICS_HEADER or not row:
            continue
        if len(row) != 3:
            bad += 1
            continue
        try:
            step, key, value = int(row[0]), row[1], float(row[2])
        except ValueError:
            bad += 1
            continue
        steps.setdefault(key, []).append(step)
        values.setdefault(key, []).append(value)
    if bad:
        warnings.warn(
            f"{path}: skipped {bad} malformed row(s); expected 'step,key,value' rows. The file "
            "was edited or written by something other than the csv sink.",
            RuntimeWarning,
            stacklevel=3,
        )
    out: dict[str, dict[str, np.ndarray]] = {}
    for key in steps:
        s = np.asarray(steps[key], dtype=np.int64)
        v = np.asarray(values[key], dtype=np.float64)
        order = np.argsort(s, kind="stable")
        out[key] = {"steps": s[order], "values": v[order]}
    return out


def _stack(items: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    if items and all(a.shape == items[0].shape for a in items):
        return np.stack(items)
    return items


def _read_arrays(root: Path) -> dict[str, dict[str, Any]]:
    found: dict[str, list[tuple[int, tuple[int, int, int], int, np.ndarray, str, int | None]]] = {}
    if not root.is_dir():
        return {}
    for f in root.glob("*/*" + ARRAY_SUFFIX):
        parsed = parse_name(f.name)
        if parsed is None:
            continue
        try:
            key, records = read_array_file(f)
        except Exception as exc:  # noqa: BLE001 - a damaged file must not hide the others
            warnings.warn(f"{f}: unreadable array file skipped ({type(exc).__name__}: {exc}).",
                          RuntimeWarning, stacklevel=3)
            continue
        if key is None:
            key = f.parent.name.split("~")[0].replace("__", "/")
        found.setdefault(key, []).extend(
            (step, parsed, i, values, kind, bins) for i, (step, kind, bins, values) in enumerate(records))
    out: dict[str, dict[str, Any]] = {}
    for key, items in found.items():
        items.sort(key=lambda t: t[:3])  # values logged at one step keep their order
        kinds = [t[4] for t in items]
        entry: dict[str, Any] = {
            "steps": np.asarray([t[0] for t in items], dtype=np.int64),
            "values": _stack([t[3] for t in items]),
            "kind": kinds[0] if len(set(kinds)) == 1 else kinds,
        }
        if any(t[5] is not None for t in items):
            entry["bins"] = np.asarray([t[5] if t[5] is not None else -1 for t in items], dtype=np.int64)
        out[key] = entry
    return out


def read_metrics(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Everything the ``csv`` sink wrote under ``run_dir``.

    :param run_dir: the run directory (``jno.setup``'s return value).
    :returns: ``{key: entry}``. Scalar keys: ``{"steps": int64 (S,), "values": float64 (S,),
        "kind": "scalar"}``. Array keys: ``{"steps": int64 (S,), "values": ndarray (S, ...)
        when every step has the same shape, else a list of S arrays, "kind": "heatmap" |
        "histogram" | "array"}`` (histograms also carry ``"bins"`` int64 ``(S,)``). Entries
        are sorted by step. A truncated last line (a killed run) is ignored.
    :raises FileNotFoundError: when ``run_dir`` holds neither ``metrics.csv`` nor ``arrays/``.
    """
    d = Path(run_dir)
    mfile, adir = d / METRICS_FILE, d / ARRAYS_DIR
    if not mfile.is_file() and not adir.is_dir():
        raise FileNotFoundError(
            f"{d} holds no metrics written by the csv sink (expected {METRICS_FILE} or "
            f"{ARRAYS_DIR}/). Pass the run directory returned by jno.setup, and keep 'csv' among "
            "the run's sinks (it is the default)."
        )
    out: dict[str, dict[str, Any]] = {}
    if mfile.is_file():
        for key, entry in _read_scalars(mfile).items():
            out[key] = {**entry, "kind": "scalar"}
    for key, entry in _read_arrays(adir).items():
        if key in out:
            warnings.warn(f"{key!r} was logged both as a scalar and as an array; the array wins.",
                          RuntimeWarning, stacklevel=2)
        out[key] = entry
    return out


#: the folder of a run's checkpoints (``jno.callbacks.checkpoint()``'s default directory)
CHECKPOINT_DIR = "checkpoints"


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is a checkpoint directory ``<folder>/<epoch>`` (links resolved: a
    link leading out of ``folder`` is outside)."""
    try:
        real = path.resolve()
    except (OSError, RuntimeError):
        return False
    return real.parent == folder and real.name.isdigit()


def read_checkpoints(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of ``checkpoints.csv``: ``{"epoch", "path", "timestamp", "metadata"}`` in the
    order written (``[]`` when no checkpoint was saved). Malformed rows are skipped with a
    ``RuntimeWarning`` naming the file."""
    f = Path(run_dir) / CHECKPOINTS_FILE
    if not f.is_file():
        return []
    out = []
    bad = 0
    for row in _complete_rows(f):
        if tuple(row) == CHECKPOINTS_HEADER or not row:
            continue
        if len(row) != 4:
            bad += 1
            continue
        try:
            out.append({"epoch": int(row[0]), "path": row[1], "timestamp": float(row[2]),
                        "metadata": json.loads(row[3])})
        except ValueError:
            bad += 1
    if bad:
        warnings.warn(
            f"{f}: skipped {bad} malformed row(s); expected 'epoch,path,timestamp,metadata' rows with JSON "
            "metadata. The file was edited or written by something other than the csv sink.",
            RuntimeWarning,
            stacklevel=2,
        )
    return out


# ---------------------------------------------------------------------------- replay
def load_run(run_dir: str | Path, sink_name: str | None = None, options: Mapping[str, Any] | None = None) -> Any:
    """A :class:`jno_core.run.Run` for an existing run directory (no sinks opened, no bus),
    built from its ``config.json``; ``options`` are merged over the config's
    ``sink_options[sink_name]``."""
    from .run import Run

    d = Path(run_dir).resolve()
    if not d.is_dir():
        raise FileNotFoundError(f"run directory {d} does not exist; pass a directory created by jno.setup.")
    cfg_file = d / "config.json"
    config: dict[str, Any] = json.loads(cfg_file.read_text()) if cfg_file.is_file() else {}
    config.setdefault("name", d.name)
    config.setdefault("project", d.parent.name or "jno")
    sink_options = {k: dict(v) for k, v in (config.get("sink_options") or {}).items() if isinstance(v, Mapping)}
    sink_options.setdefault("wandb", {}).setdefault("project", config["project"])
    if sink_name is not None and options:
        sink_options[sink_name] = {**sink_options.get(sink_name, {}), **dict(options)}
    return Run(
        dir=d,
        name=str(config["name"]),
        script=config.get("script"),
        config=config,
        sink_names=[sink_name] if sink_name else [],
        sink_options=sink_options,
        strict=True,
    )


def _metric(kind: str, values: Any, bins: int | None) -> Any:
    from .metrics import Array, Heatmap, Histogram, Scalar

    if kind == "scalar":
        return Scalar(values)
    if kind == "heatmap":
        return Heatmap(values)
    if kind == "histogram":
        return Histogram(values, bins=int(bins)) if bins and bins > 0 else Histogram(values)
    return Array(values)


def iter_batches(data: Mapping[str, Mapping[str, Any]]) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(step, {key: MetricValue})`` in increasing step order from :func:`read_metrics`'s
    result (every key logged at a step goes into that step's batch)."""
    by_step: dict[int, dict[str, Any]] = {}
    for key, entry in data.items():
        kinds = entry.get("kind", "scalar")
        bins = entry.get("bins")
        for i, step in enumerate(np.asarray(entry["steps"]).tolist()):
            kind = kinds if isinstance(kinds, str) else kinds[i]
            b = None if bins is None else int(bins[i])
            by_step.setdefault(int(step), {})[key] = _metric(kind, entry["values"][i], b)
    for step in sorted(by_step):
        yield step, by_step[step]


#: records per ``log_metrics_batch`` call when replaying into a sink that implements it
REPLAY_BATCH = 256


@attrs.frozen
class ReplaySummary:
    """What :func:`replay` delivered."""

    run_dir: Path
    sink: str
    steps: int
    keys: int
    checkpoints: int


def replay(run_dir: str | Path, sink_name: str, *, checkpoints: bool = True, **opts: Any) -> ReplaySummary:
    """Replay every step the ``csv`` sink recorded in ``run_dir`` through the sink
    ``sink_name`` (e.g. ``"tensorboard"`` or ``"wandb"``), in step order, then call its
    ``flush_metrics`` and ``close_run``. A sink implementing ``log_metrics_batch`` receives
    the steps in batches of up to :data:`REPLAY_BATCH` (split at checkpoints), others one
    ``log_metrics`` call per step.

    :param run_dir: a run directory written with the ``csv`` sink.
    :param sink_name: a registered sink name other than ``"csv"``.
    :param checkpoints: also replay ``checkpoints.csv`` through ``save_checkpoint`` (after the
        metrics of the checkpoint's epoch); checkpoints whose directory is gone are skipped, and
        so is (with a warning) any row naming a path outside the run's own ``checkpoints/``
        folder: a sync never uploads other directories.
    :param opts: options for the sink, merged over the run's ``sink_options[sink_name]`` (for
        W&B these are ``wandb.init`` keyword arguments, e.g. ``project="jNO"``).
    :returns: a :class:`ReplaySummary`.
    """
    from . import plugins

    if sink_name == "csv":
        raise ValueError(
            "replaying a run into the 'csv' sink would append its metrics to its own files; "
            "expected another sink name, e.g. --to tensorboard or --to wandb."
        )
    data = read_metrics(run_dir)
    ckpts = read_checkpoints(run_dir) if checkpoints else []
    entry = plugins.lookup("sinks", sink_name, namespace="sink")
    # options the sink asks jno sync for (TensorBoard: replace the previous sync's events)
    opts = {**dict(getattr(entry.factory, "replay_options", None) or {}), **opts}
    run = load_run(run_dir, sink_name, opts)
    own = (Path(run.dir) / CHECKPOINT_DIR).resolve()
    sink = entry.factory(run)
    delivery = _Delivery(sink, ckpts, own)
    try:
        n_steps = delivery.deliver(iter_batches(data))
    finally:
        _close_sink(sink)
    return ReplaySummary(Path(run.dir), sink_name, n_steps, len(data), delivery.n_ckpt)


class _Delivery:
    """Sends one replay's steps and checkpoints into ``sink`` in order: metrics in batches of
    up to :data:`REPLAY_BATCH` when the sink implements ``log_metrics_batch`` (else one
    ``log_metrics`` call per step), each checkpoint after the metrics of its epoch.

    :param sink: the sink built for the replayed run.
    :param ckpts: ``read_checkpoints`` rows, by epoch (ignored when the sink has no
        ``save_checkpoint``).
    :param own: the run's resolved ``checkpoints/`` folder: rows naming a path outside it are
        skipped with a warning.
    """

    def __init__(self, sink: Any, ckpts: list[dict[str, Any]], own: Path) -> None:
        self.sink = sink
        self.own = own
        self.saver = getattr(sink, "save_checkpoint", None)
        self.pending = [c for c in ckpts if self.saver is not None]
        self.n_ckpt = 0
        self.batch_fn = getattr(sink, "log_metrics_batch", None)
        self.records: list[tuple[int, dict[str, Any]]] = []

    def deliver(self, batches: Iterator[tuple[int, dict[str, Any]]]) -> int:
        """Send every ``(step, metrics)`` of ``batches`` and then the remaining checkpoints;
        returns the number of steps sent."""
        n_steps = 0
        for step, batch in batches:
            if self.pending and self.pending[0]["epoch"] <= step - 1:
                self._send()  # the checkpoint goes after the metrics up to its epoch
                self._save_until(step - 1)
            if self.batch_fn is None:
                self.sink.log_metrics(step=step, metrics=batch)
            else:
                self.records.append((step, batch))
                if len(self.records) >= REPLAY_BATCH:
                    self._send()
            n_steps += 1
        self._send()
        self._save_until(float("inf"))
        return n_steps

    def _send(self) -> None:
        """Hand the buffered records to ``log_metrics_batch`` (nothing when none are)."""
        if self.records:
            self.batch_fn(records=list(self.records))
            self.records.clear()

    def _save_until(self, limit: float) -> None:
        """Replay the pending checkpoints of epochs ``<= limit`` through ``save_checkpoint``,
        skipping (with a ``RuntimeWarning`` pointing at :func:`replay`'s caller) rows outside
        the run's own folder and directories that no longer exist."""
        while self.pending and self.pending[0]["epoch"] <= limit:
            c = self.pending.pop(0)
            if not _inside(Path(c["path"]), self.own):
                warnings.warn(
                    f"checkpoints.csv names {c['path']!r} for epoch {c['epoch']}, which is not a checkpoint directory "
                    f"inside the run's own {self.own}; jno sync uploads only those, so it is skipped.",
                    RuntimeWarning, stacklevel=4)
                continue
            if not Path(c["path"]).exists():
                warnings.warn(f"checkpoint {c['path']} (epoch {c['epoch']}) no longer exists; not replayed.",
                              RuntimeWarning, stacklevel=4)
                continue
            self.saver(path=c["path"], epoch=c["epoch"], metadata=c["metadata"])
            self.n_ckpt += 1


def _close_sink(sink: Any) -> None:
    """Call the sink's ``flush_metrics`` and ``close_run``, those it implements."""
    for method in ("flush_metrics", "close_run"):
        fn = getattr(sink, method, None)
        if fn is not None:
            fn()


# ---------------------------------------------------------------------------- CLI
def _parse_option(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, received {text!r} (e.g. --option project=jNO)")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jno sync",
        description="Replay runs recorded by the csv sink into another sink "
        "(e.g. upload an offline run to W&B, or write TensorBoard event files).",
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directory created by jno.setup")
    p.add_argument("--to", required=True, metavar="SINK", help="target sink: tensorboard | wandb (any installed sink)")
    p.add_argument("--option", "-o", action="append", default=[], type=_parse_option, metavar="KEY=VALUE",
                   help="sink option (W&B: a wandb.init argument, e.g. -o project=jNO); VALUE is JSON or text")
    p.add_argument("--no-checkpoints", action="store_true", help="do not replay saved checkpoints")
    return p


def sync_main(argv: Sequence[str] | None = None) -> int:
    """``jno sync RUN_DIR [RUN_DIR ...] --to SINK [-o KEY=VALUE ...]``; returns the exit status
    (0 success, 1 when a run could not be replayed, 2 for a usage error)."""
    parser = _parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    opts = dict(args.option)
    status = 0
    for run_dir in args.run_dirs:
        try:
            s = replay(run_dir, args.to, checkpoints=not args.no_checkpoints, **opts)
        except Exception as exc:  # noqa: BLE001 - report and go on with the next run
            print(f"jno sync: {run_dir}: {type(exc).__name__}: {exc}", file=sys.stderr)
            status = 1
            continue
        print(f"jno sync: replayed {s.steps} steps ({s.keys} keys, {s.checkpoints} checkpoints) "
              f"from {s.run_dir} into {s.sink}.")
    return status
