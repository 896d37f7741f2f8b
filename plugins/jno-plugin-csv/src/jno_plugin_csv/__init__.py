"""jno-plugin-csv: the embedded default metrics sink.

Registers the sink name ``"csv"`` (entry point ``csv = "jno_plugin_csv"`` of the group
``"jno"``). Scalars go to ``<run dir>/metrics.csv`` (``step,key,value``), heatmaps,
histograms and arrays to compressed ``<run dir>/arrays/<key>/<first step>-<last step>.npz``
files (one per key and delivery), checkpoints to ``checkpoints.csv``.
Read them back with :func:`jno_core.replay.read_metrics`.
"""

from __future__ import annotations

from typing import Callable

from jno_core.api import hookimpl

from ._sink import CsvSink

__all__ = ["CsvSink", "jno_register_sinks"]


@hookimpl
def jno_register_sinks(register: Callable[..., None]) -> None:
    """Register the ``csv`` sink; its factory receives the :class:`jno_core.run.Run`."""
    register("csv", lambda run: CsvSink(run))
