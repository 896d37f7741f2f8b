"""The statistics object ``solve()`` returns."""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

__all__ = ["History", "TrackerHistory"]


@attrs.define
class TrackerHistory:
    """Values of one tracker expression: ``epochs`` ``(S,)`` and ``values`` ``(S, *shape)``."""

    name: str
    interval: int
    epochs: list[int] = attrs.field(factory=list)
    _values: list[np.ndarray] = attrs.field(factory=list)

    def append(self, epoch: int, value: np.ndarray) -> None:
        self.epochs.append(int(epoch))
        self._values.append(np.asarray(value))

    @property
    def values(self) -> np.ndarray:
        return np.stack(self._values) if self._values else np.zeros((0,))

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"epochs": np.asarray(self.epochs, dtype=np.int64), "values": self.values}


@attrs.define
class History:
    """Per-epoch training record of one or more solves.

    * ``epochs`` ``(E,)`` global epoch numbers; ``total_loss`` ``(E,)``; ``losses`` ``(E, N)``
      each constraint's loss (weighted as in training); all computed from the parameters each
      epoch's step starts from. ``grad_norm`` and ``param_norm`` ``(E,)`` are the global
      gradient and parameter norms, recorded at the logged epochs (``epoch % log_every == 0``)
      and NaN elsewhere (computing them every epoch is a noticeable share of a small PINN
      step; see benchmarks/README.md).
    * ``trackers``: ``{name: TrackerHistory}`` with their epochs.
    * ``wall_time`` seconds spent in the loop (excluding compilation), ``compile_time`` seconds
      spent compiling the train step, ``stopped`` a reason when training stopped early.
    """

    constraint_names: list[str]
    _rows: list[np.ndarray] = attrs.field(factory=list)
    _epochs: list[np.ndarray] = attrs.field(factory=list)
    trackers: dict[str, TrackerHistory] = attrs.field(factory=dict)
    wall_time: float = 0.0
    compile_time: float = 0.0
    stopped: str | None = None

    def _append(self, epochs: np.ndarray, rows: np.ndarray) -> None:
        self._epochs.append(np.asarray(epochs, dtype=np.int64))
        self._rows.append(np.asarray(rows, dtype=np.float64))

    def _table(self) -> np.ndarray:
        n = len(self.constraint_names)
        return np.concatenate(self._rows) if self._rows else np.zeros((0, n + 3))

    @property
    def epochs(self) -> np.ndarray:
        return np.concatenate(self._epochs) if self._epochs else np.zeros((0,), np.int64)

    @property
    def total_loss(self) -> np.ndarray:
        return self._table()[:, 0]

    @property
    def losses(self) -> np.ndarray:
        n = len(self.constraint_names)
        return self._table()[:, 1 : 1 + n]

    @property
    def grad_norm(self) -> np.ndarray:
        return self._table()[:, -2]

    @property
    def param_norm(self) -> np.ndarray:
        return self._table()[:, -1]

    @property
    def n_epochs(self) -> int:
        return int(self.epochs.shape[0])

    @property
    def final_loss(self) -> float:
        t = self.total_loss
        return float(t[-1]) if t.size else float("nan")

    def tracker(self, name: str) -> dict[str, np.ndarray]:
        if name not in self.trackers:
            raise KeyError(f"no tracker named {name!r}; trackers are {sorted(self.trackers)}.")
        return self.trackers[name].as_dict()

    def as_dict(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "total_loss": self.total_loss,
            "losses": self.losses,
            "grad_norm": self.grad_norm,
            "param_norm": self.param_norm,
            "trackers": {k: v.as_dict() for k, v in self.trackers.items()},
            "wall_time": self.wall_time,
            "compile_time": self.compile_time,
        }

    def __getitem__(self, key: str) -> Any:
        d = self.as_dict()
        if key in d:
            return d[key]
        if key in self.trackers:
            return self.trackers[key].as_dict()
        raise KeyError(key)

    def __repr__(self) -> str:
        return (
            f"<History {self.n_epochs} epochs, final loss {self.final_loss:.4e}, "
            f"trackers {sorted(self.trackers)}, wall {self.wall_time:.2f}s, "
            f"compile {self.compile_time:.2f}s>"
        )
