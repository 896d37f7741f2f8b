"""jno-plugin-wandb: Weights & Biases sink for jno runs.

Registers the sink name ``"wandb"`` (entry point ``wandb = "jno_plugin_wandb"`` of the group
``"jno"``); ``jno.setup(__file__, wandb=True)`` (or ``wandb={...}`` with ``wandb.init``
arguments) opens it. ``wandb`` is imported only when a run opens the sink, so ``jno plugins``
and ``import jno`` stay fast and work without it.

:func:`read_offline_run` reads back what an offline run recorded (history, summary, config,
artifacts) without syncing it.
"""

from __future__ import annotations

from typing import Callable

from jno_core.api import hookimpl

from ._offline import OfflineRun, find_offline_runs, read_offline_run
from ._sink import WandbSink, artifact_name, import_wandb

__all__ = [
    "WandbSink",
    "artifact_name",
    "import_wandb",
    "OfflineRun",
    "find_offline_runs",
    "read_offline_run",
    "jno_register_sinks",
]


@hookimpl
def jno_register_sinks(register: Callable[..., None]) -> None:
    """Register the ``wandb`` sink; its factory receives the :class:`jno_core.run.Run`."""
    register("wandb", lambda run: WandbSink(run))
