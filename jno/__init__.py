"""jno: physics-informed neural networks in JAX, with a view inside training.

The public face of ``jno_core``: re-exports only. See the README for a tour."""

from jno_core import Array, Heatmap, Histogram, Scalar, hookimpl
from jno_core.core import core
from jno_core.expr import Jacobian
from jno_core.run import current_run, finish, log, setup

from . import callbacks, domain, fn, nn, np, numpy, trackers, utils

__all__ = [
    "setup",
    "finish",
    "log",
    "current_run",
    "core",
    "Jacobian",
    "domain",
    "nn",
    "np",
    "numpy",
    "fn",
    "callbacks",
    "trackers",
    "utils",
    "hookimpl",
    "Scalar",
    "Heatmap",
    "Histogram",
    "Array",
]
