"""jno-plugin-tensorboard: TensorBoard event files for jno runs.

Registers the sink name ``"tensorboard"`` (entry point ``tensorboard = "jno_plugin_tensorboard"``
of the group ``"jno"``); ``jno.setup(__file__, tensorboard=True)`` or ``sinks=["tensorboard"]``
opens it. Events go to ``<run dir>/tensorboard``. ``tensorboardX`` is imported only when a run
opens the sink, so ``jno plugins`` and ``import jno`` stay fast.
"""

from __future__ import annotations

from typing import Callable

from jno_core.api import hookimpl

from ._sink import TensorBoardSink

__all__ = ["TensorBoardSink", "jno_register_sinks"]


@hookimpl
def jno_register_sinks(register: Callable[..., None]) -> None:
    """Register the ``tensorboard`` sink; its factory receives the :class:`jno_core.run.Run`."""
    register("tensorboard", TensorBoardSink)
