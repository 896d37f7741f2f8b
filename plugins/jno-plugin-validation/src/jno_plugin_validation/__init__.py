"""jno-plugin-validation: the test error of a trained field while training.

Installs ``jno.trackers.validation`` (the same object as ``jno.callbacks.validation``) through
the entry point ``validation = "jno_plugin_validation"`` of the group ``"jno"``::

    test = jno.domain.from_array({"interior": np.stack([X.ravel(), T.ravel()], 1)})
    val = jno.trackers.validation(u, domain=test, reference=U_ref.ravel(), interval=500)
    crux.solve(10_000, callbacks=[val])
    val.result["l2_rel"]        # (S,)
"""

from __future__ import annotations

from typing import Any, Callable

from jno_core.api import hookimpl

from ._tracker import Validation, errors

__all__ = ["validation", "Validation", "errors", "jno_register_trackers"]


def validation(expr: Any = None, domain: Any = None, reference: Any = None, interval: int = 100,
               name: str = "val") -> Validation:
    """``jno.trackers.validation(expr, domain=test, reference=values_or_fn, interval=100)``:
    logs ``val/l2_rel``, ``val/mae`` and ``val/max_abs`` of ``expr`` evaluated on ``domain``
    against ``reference`` every ``interval`` epochs. See :class:`Validation`."""
    return Validation(expr, domain=domain, reference=reference, interval=interval, name=name)


@hookimpl
def jno_register_trackers(register: Callable[..., None]) -> None:
    """Register ``validation``."""
    register("validation", validation)
