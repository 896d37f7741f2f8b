"""``jno report``: one self-contained HTML file showing a run, several runs overlaid, or a sweep.

The report reads what the csv sink wrote (the same readers as ``jno sync``, so a killed run
works too) and draws it with BokehJS, whose JavaScript is inlined: the file opens offline from
disk, with no server and no network request. See ``docs/report.md``.

>>> from jno_core.report import write_report
>>> result = write_report(["runs/train/20260101-120000"])   # doctest: +SKIP
>>> result.path                                              # doctest: +SKIP
PosixPath('runs/train/20260101-120000/report.html')
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

import attrs

from ._build import Limits, build_spec
from ._html import ReportDependencyError, render_html, require_bokeh, write_html
from ._load import Inputs, NotARunError, RunData, SweepData, load_inputs, load_run_dir, load_sweep_dir

__all__ = [
    "REPORT_FILE",
    "Limits",
    "ReportResult",
    "ReportDependencyError",
    "NotARunError",
    "RunData",
    "SweepData",
    "Inputs",
    "write_report",
    "default_output",
    "build_spec",
    "render_html",
    "require_bokeh",
    "load_inputs",
    "load_run_dir",
    "load_sweep_dir",
    "report_main",
]

#: the report's file name inside a run or sweep directory
REPORT_FILE = "report.html"


@attrs.frozen
class ReportResult:
    """What :func:`write_report` wrote: the file, its size in bytes, the seconds it took, the
    number of runs shown and the problems met reading the input (each names its path)."""

    path: Path
    size: int
    seconds: float
    runs: int
    problems: tuple[str, ...]


def default_output(paths: Sequence[str | os.PathLike[str]]) -> Path:
    """``<dir>/report.html`` for one run or sweep directory, else ``./report.html``."""
    return Path(paths[0]) / REPORT_FILE if len(paths) == 1 else Path.cwd() / REPORT_FILE


def write_report(
    paths: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str] | None = None,
    *,
    title: str | None = None,
    limits: Limits = Limits(),
) -> ReportResult:
    """Write one self-contained HTML report of the run and sweep directories ``paths``.

    :param paths: run directories (``jno.setup``'s return value) and/or sweep directories
        (holding ``sweep.json``); several are overlaid with a legend.
    :param output: the HTML file (default: :func:`default_output`).
    :param title: the report's title (default: the run's name, or "N runs").
    :param limits: how much is displayed before downsampling (see :class:`Limits`).
    :returns: a :class:`ReportResult`; problems reading the input (a corrupt array file, a run
        with no metrics yet, a path that is no run) are listed in the report and in the result.
    :raises NotARunError: when no path could be read as a run or a sweep (nothing is written).
    :raises ReportDependencyError: when ``bokeh`` is not installed.
    """
    if not paths:
        raise ValueError("write_report needs at least one run or sweep directory, received none.")
    t0 = time.perf_counter()
    require_bokeh()
    inputs = load_inputs(paths)
    if not inputs.runs and not inputs.sweeps:
        raise NotARunError("nothing to report: " + " ".join(inputs.problems))
    spec = build_spec(inputs, limits=limits, title=title)
    out = write_html(spec, output if output is not None else default_output(paths))
    return ReportResult(path=out, size=out.stat().st_size, seconds=time.perf_counter() - t0,
                        runs=len(spec["runs"]), problems=tuple(spec["problems"]))


def report_main(argv: Sequence[str] | None = None) -> int:
    """``jno report RUN_DIR [RUN_DIR ...] [-o report.html]``; see :mod:`jno_core.report._cli`."""
    from ._cli import main

    return main(argv)
