"""The sweep directory and its Optuna storage.

Layout (shared with ``jno report``)::

    sweeps/<id>/sweep.json          the sweep config as given (normalized to JSON) + "id"
                                    (+ "storage" when not the embedded default)
    sweeps/<id>/optuna-journal.log  the embedded storage: Optuna's journal file
    sweeps/<id>/runs/<trial>/       each trial's ordinary run directory; its config.json has a
                                    "sweep" entry {id, trial, params, state, error}

The storage is the source of truth (trial states, values, parameters); the ``"sweep"`` entries
are a copy anyone can read without jno. Any storage URL Optuna accepts
(``postgresql://...``, ``mysql://...``, ``sqlite:///...``) can replace the journal, so agents on
several machines serve one sweep; a password in the URL is not written to ``sweep.json``
(agents then need ``--storage`` or ``JNO_SWEEP_STORAGE``).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import string
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ._config import SweepConfig, parse_sweep_config

if TYPE_CHECKING:  # pragma: no cover
    import optuna

__all__ = ["Sweep", "create_sweep", "open_sweep", "JOURNAL_FILE", "SWEEP_FILE", "ENV_STORAGE", "write_json"]

JOURNAL_FILE = "optuna-journal.log"
SWEEP_FILE = "sweep.json"
ENV_STORAGE = "JNO_SWEEP_STORAGE"
_MASK = "***"
_ID_CHARS = string.ascii_lowercase + string.digits
_CONFIG_ATTR = "jno:config"


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` atomically (a temporary file, then ``os.replace``)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


def _mask_password(url: str) -> str:
    return re.sub(r"(://[^:/@]+:)[^@]*@", rf"\1{_MASK}@", url)


class Sweep:
    """An open sweep: its directory, config and Optuna storage.

    :ivar dir: the sweep directory.
    :ivar id: the sweep id (the Optuna study name).
    :ivar config: the checked :class:`~jno_core.sweep.SweepConfig`.
    :ivar storage_url: the storage URL, or None for the embedded journal file.
    """

    def __init__(self, directory: Path, sweep_id: str, config: SweepConfig, storage_url: str | None) -> None:
        self.dir = Path(directory).resolve()
        self.id = sweep_id
        self.config = config
        self.storage_url = storage_url

    @property
    def runs_dir(self) -> Path:
        return self.dir / "runs"

    def storage(self) -> "optuna.storages.BaseStorage":
        """A new storage object (one per agent: Optuna's journal storage tells its writers
        apart per object and thread)."""
        import optuna

        if self.storage_url is None:
            from optuna.storages.journal import JournalFileBackend

            return optuna.storages.JournalStorage(JournalFileBackend(str(self.dir / JOURNAL_FILE)))
        if _MASK in self.storage_url:
            raise ConfigError(
                f"sweep {self.id}: its storage URL {self.storage_url!r} had a password, which was not "
                f"written to {SWEEP_FILE}; pass the full URL with --storage or {ENV_STORAGE}."
            )
        return optuna.storages.get_storage(self.storage_url)

    def study(self, storage: Any = None, sampler: Any = None) -> "optuna.Study":
        """Load the sweep's Optuna study (with the sweep's pruner)."""
        import optuna

        from ._space import make_pruner

        return optuna.load_study(study_name=self.id, storage=storage if storage is not None else self.storage(),
                                 sampler=sampler, pruner=make_pruner(self.config))

    def run_dir(self, trial_name: str) -> Path:
        return self.runs_dir / trial_name

    def __repr__(self) -> str:
        return f"<jno sweep {self.id} at {self.dir}>"


def _new_id(parent: Path) -> str:
    while True:
        sid = "".join(secrets.choice(_ID_CHARS) for _ in range(8))
        if not (parent / sid).exists():
            return sid


def create_sweep(config: SweepConfig | dict[str, Any], directory: str | os.PathLike[str] | None = None, *,
                 storage: str | None = None, seed: int | None = None) -> Sweep:
    """Create a sweep: ``<directory>/<id>/`` (``directory`` defaults to ``sweeps`` in the
    working directory) with ``sweep.json``, the Optuna study (direction from ``metric.goal``,
    the config in its user attribute ``jno:config``) and, for ``method: grid``, every grid point
    enqueued as a waiting trial.

    :param storage: an Optuna storage URL (default: a journal file in the sweep directory).
    :param seed: seeds the samplers (overrides the config's ``seed``).
    """
    import optuna

    from ._space import engine_params

    cfg = config if isinstance(config, SweepConfig) else parse_sweep_config(config)
    if seed is not None:
        cfg = parse_sweep_config({**cfg.raw, "seed": int(seed)})
    parent = Path(directory) if directory is not None else Path.cwd() / "sweeps"
    storage = storage or os.environ.get(ENV_STORAGE) or None
    sid = _new_id(parent)
    d = parent / sid
    (d / "runs").mkdir(parents=True)
    sweep = Sweep(d, sid, cfg, storage)
    study = optuna.create_study(study_name=sid, storage=sweep.storage(),
                                direction="maximize" if cfg.goal == "maximize" else "minimize")
    study.set_user_attr(_CONFIG_ATTR, cfg.raw)
    if cfg.method == "grid":
        for i, point in enumerate(cfg.grid_points()):
            study.enqueue_trial(engine_params(cfg, point), user_attrs={"jno:grid": i})
    data = {**cfg.raw, "id": sid}
    if storage is not None:
        data["storage"] = _mask_password(storage)
    write_json(d / SWEEP_FILE, data)
    return sweep


def open_sweep(ref: str | os.PathLike[str], directory: str | os.PathLike[str] | None = None, *,
               storage: str | None = None) -> Sweep:
    """Open a sweep by its directory or its id (looked up in ``directory``, default
    ``sweeps``). With ``storage`` and an id that has no directory here (an agent on another
    machine), the directory is made from the config kept in the storage."""
    storage = storage or os.environ.get(ENV_STORAGE) or None
    p = Path(ref)
    parent = Path(directory) if directory is not None else Path.cwd() / "sweeps"
    candidates = [p, parent / str(ref)] if not p.is_absolute() else [p]
    for c in candidates:
        f = c / SWEEP_FILE
        if f.is_file():
            data = json.loads(f.read_text())
            url = storage or data.get("storage")
            return Sweep(c, data["id"], parse_sweep_config(data), url)
    if storage is not None and re.fullmatch(r"[a-z0-9]+", str(ref)):
        import optuna

        try:
            study = optuna.load_study(study_name=str(ref), storage=storage)
        except KeyError:
            raise ConfigError(f"no sweep {str(ref)!r} in storage {_mask_password(storage)}.") from None
        raw = study.user_attrs.get(_CONFIG_ATTR)
        if raw is None:
            raise ConfigError(f"study {str(ref)!r} in {_mask_password(storage)} was not made by `jno sweep create`.")
        d = parent / str(ref)
        (d / "runs").mkdir(parents=True, exist_ok=True)
        write_json(d / SWEEP_FILE, {**raw, "id": str(ref), "storage": _mask_password(storage)})
        return Sweep(d, str(ref), parse_sweep_config(raw), storage)
    raise ConfigError(
        f"no sweep at {str(ref)!r}: expected a sweep directory holding {SWEEP_FILE} (as printed by `jno sweep "
        f"create`) or a sweep id under {parent}. With agents on another machine, also give --storage URL."
    )
