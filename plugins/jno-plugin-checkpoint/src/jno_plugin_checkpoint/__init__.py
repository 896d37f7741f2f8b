"""jno-plugin-checkpoint: atomic, pickle-free checkpoints of the whole train state, and resume.

Registers ``jno.callbacks.checkpoint`` (entry point ``checkpoint = "jno_plugin_checkpoint"``)::

    cb = jno.callbacks.checkpoint(directory=f"{dire}/checkpoints", save_interval_epochs=500,
                                  max_to_keep=3, best_fn=lambda m: m["total_loss"])
    crux.solve(2_000, callbacks=[cb])
    cb.close()

    # resume (same script, new process): build the same problem, then
    cb = jno.callbacks.checkpoint(directory=...)
    cb.restore(crux=crux)            # latest step: params, optimizer states, schemes, epoch
    crux.solve(1_000, callbacks=[cb])

See :class:`Checkpoint` and :mod:`jno_plugin_checkpoint._format`.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from jno_core.api import hookimpl

from ._callback import Checkpoint
from ._format import CheckpointData, list_steps, read_checkpoint
from ._restore import load_into

__all__ = [
    "checkpoint",
    "Checkpoint",
    "CheckpointData",
    "read_checkpoint",
    "restore",
    "list_steps",
    "jno_register_callbacks",
]


def checkpoint(
    directory: str | os.PathLike[str] | None = None,
    save_interval_epochs: int = 500,
    max_to_keep: int | None = 3,
    best_fn: Callable[[dict[str, Any]], float] | None = None,
    **kwargs: Any,
) -> Checkpoint:
    """``jno.callbacks.checkpoint(directory=None, save_interval_epochs=500, max_to_keep=3,
    best_fn=None)``; keyword options ``best_mode="min"``, ``fsync=True``.
    See :class:`Checkpoint`."""
    return Checkpoint(directory, save_interval_epochs, max_to_keep, best_fn, **kwargs)


def restore(path: str | os.PathLike[str], crux: Any = None) -> CheckpointData:
    """Read the checkpoint directory ``path`` (``<checkpoints>/<epoch>``) and, with ``crux``,
    load it into that solver (see :meth:`Checkpoint.restore`)."""
    data = read_checkpoint(path)
    if crux is not None:
        load_into(crux, data)
    return data


@hookimpl
def jno_register_callbacks(register: Callable[..., None]) -> None:
    """Register ``checkpoint`` (``jno.callbacks.checkpoint``)."""
    register("checkpoint", checkpoint)
