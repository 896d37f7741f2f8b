"""jno-plugin-saliency: input sensitivity (saliency) of any expression for jno.

Installs ``jno.trackers.input_sensitivity`` (the same object as
``jno.callbacks.input_sensitivity``) through the entry point ``saliency = "jno_plugin_saliency"``
of the group ``"jno"``.
"""

from __future__ import annotations

from typing import Any, Callable

from jno_core.api import hookimpl

from ._tracker import InputSensitivity, saliency_summary

__all__ = ["input_sensitivity", "InputSensitivity", "saliency_summary", "jno_register_trackers"]


def input_sensitivity(expr: Any, interval: int = 100) -> InputSensitivity:
    """``jno.trackers.input_sensitivity``: ``expr`` (e.g. ``u.d(x)`` or
    ``jno.Jacobian(u, [x, y])``) evaluated at its collocation points every ``interval`` epochs.
    ``result``: ``epochs`` ``(S,)``, ``values`` ``(S, *expr_shape)``. See
    :class:`InputSensitivity`."""
    return InputSensitivity(expr, interval=interval)


@hookimpl
def jno_register_trackers(register: Callable[..., None]) -> None:
    """Register ``input_sensitivity``."""
    register("input_sensitivity", input_sensitivity)
