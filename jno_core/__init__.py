"""jno_core: the engine behind ``jno`` (expressions, domains, networks, the solve loop,
hookspecs, plugin manager, metric types, run set-up and the plugin authors' testing kit).

Importing ``jno_core`` is cheap (no JAX): the metric types load on first use, and the JAX
settings jno makes (:mod:`jno_core._startup`) are applied by ``import jno`` and by the solver
module."""

from __future__ import annotations

from typing import Any

from .errors import (
    CheckpointError,
    ConfigError,
    JnoError,
    JnoPluginError,
    MaskError,
    NonFiniteLossError,
    ShapeError,
    UnknownNameError,
)
from .hookspecs import hookimpl, hookspec

__all__ = [
    "hookimpl",
    "hookspec",
    "Scalar",
    "Heatmap",
    "Histogram",
    "Array",
    "JnoError",
    "JnoPluginError",
    "UnknownNameError",
    "ShapeError",
    "MaskError",
    "NonFiniteLossError",
    "ConfigError",
    "CheckpointError",
]

__version__ = "0.2.0"

_METRICS = ("Scalar", "Heatmap", "Histogram", "Array")


def __getattr__(name: str) -> Any:
    if name in _METRICS:  # jno_core.metrics imports attrs and NumPy: on first use
        from . import metrics

        return getattr(metrics, name)
    raise AttributeError(f"module 'jno_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
