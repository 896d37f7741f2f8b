"""jno_core: the engine behind ``jno`` (expressions, domains, networks, the solve loop,
hookspecs, plugin manager, metric types, run set-up and the plugin authors' testing kit)."""

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
from .metrics import Array, Heatmap, Histogram, Scalar
from .precision import apply_default_precision

apply_default_precision()  # full float32 matmuls unless the user chose (see jno_core.precision)

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
