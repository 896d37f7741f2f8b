"""``jno.setup(report=True)``: check at set-up that a report can be written (fail before
training, not after), and write ``report.html`` when the run closes."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Sequence

from ..errors import ConfigError

__all__ = ["check_report_possible", "report_at_close"]


def check_report_possible(sink_names: Sequence[str]) -> None:
    """Raise now if ``report=True`` cannot work: the report reads the csv sink's files, and
    needs Bokeh's JavaScript.

    :raises ConfigError: when ``"csv"`` is not among the run's sinks.
    :raises ReportDependencyError: when ``bokeh`` is not installed.
    """
    from ._html import require_bokeh

    if "csv" not in sink_names:
        raise ConfigError(
            f"report=True reads the files of the 'csv' sink, but the run's sinks are {list(sink_names)!r}. "
            "Add 'csv' to the sinks (e.g. sinks=['csv', 'tensorboard']) or turn the report off."
        )
    require_bokeh()


def report_at_close(run_dir: Path, strict: bool = False) -> Path | None:
    """Write ``<run_dir>/report.html``; return its path (``None`` if it failed: the failure is
    reported as a warning, and re-raised in strict mode, so a finished run is never lost to a
    report)."""
    from . import REPORT_FILE, write_report

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return write_report([run_dir], Path(run_dir) / REPORT_FILE).path
    except Exception as exc:  # noqa: BLE001
        if strict:
            raise
        msg = (f"jno: could not write the report of {run_dir} ({type(exc).__name__}: {exc}); the run's files are "
               f"intact: retry with jno report {run_dir}")
        print(msg, file=sys.stderr)
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
        return None
