"""jno: physics-informed neural networks in JAX, with a view inside training.

The public face of ``jno_core``: re-exports only. See the README for a tour.

``import jno`` applies jno's JAX settings (full float32 matmuls, the persistent compilation
cache: :mod:`jno_core._startup`) and loads the rest on first use (``jno.core``,
``jno.domain``, ...), so importing it costs little beyond JAX itself."""

from __future__ import annotations

import importlib
from typing import Any

from jno_core import hookimpl
from jno_core._startup import configure_jax

configure_jax()

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
    "resampling",
    "utils",
    "hookimpl",
    "Scalar",
    "Heatmap",
    "Histogram",
    "Array",
]

#: name -> (module, attribute) loaded on first access (attribute None: the module itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    "setup": ("jno_core.run", "setup"),
    "finish": ("jno_core.run", "finish"),
    "current_run": ("jno_core.run", "current_run"),
    "log": ("jno_core.run", "log"),
    "core": ("jno_core.core", "core"),
    "Jacobian": ("jno_core.expr", "Jacobian"),
    "Scalar": ("jno_core.metrics", "Scalar"),
    "Heatmap": ("jno_core.metrics", "Heatmap"),
    "Histogram": ("jno_core.metrics", "Histogram"),
    "Array": ("jno_core.metrics", "Array"),
    **{m: (f"jno.{m}", None) for m in ("domain", "nn", "np", "numpy", "fn", "callbacks", "trackers",
                                         "resampling", "utils")},
}


def __getattr__(name: str) -> Any:
    spec = _LAZY.get(name)
    if spec is None:
        raise AttributeError(f"module 'jno' has no attribute {name!r}")
    module = importlib.import_module(spec[0])
    value = module if spec[1] is None else getattr(module, spec[1])
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
