"""``jno report RUN_DIR|SWEEP_DIR [...] [-o FILE]``: exit status 0 when the report was written
(problems reading part of the input are printed and listed in the report), 1 when nothing
could be read or Bokeh is missing, 2 for a usage error."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    from . import Limits

    d = Limits()
    p = argparse.ArgumentParser(
        prog="jno report",
        description="Write one self-contained HTML file (opens offline, no server) showing runs recorded by the "
        "csv sink: loss curves, diagnostics, heatmaps and histograms over steps, timing, config, checkpoints. "
        "Several runs are overlaid; a sweep directory adds its trials table and parameter-vs-metric plots.",
    )
    p.add_argument("paths", nargs="+", metavar="DIR", help="run directory (from jno.setup) or sweep directory")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="the HTML file (default: DIR/report.html for one directory, else ./report.html)")
    p.add_argument("--title", help="the report's title (default: the run's name)")
    p.add_argument("--max-points", type=int, default=d.max_points, metavar="N",
                   help=f"points per scalar series before min-max downsampling (default {d.max_points})")
    p.add_argument("--max-frames", type=int, default=d.max_frames, metavar="N",
                   help=f"steps of a heatmap/histogram history before evenly spaced selection (default {d.max_frames})")
    p.add_argument("--max-trials", type=int, default=d.max_overlay, metavar="N",
                   help=f"best trials of a sweep whose curves are overlaid (default {d.max_overlay})")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from . import Limits, NotARunError, ReportDependencyError, write_report

    parser = _parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    for name, least in (("max_points", 2), ("max_frames", 2), ("max_trials", 0)):
        if getattr(args, name) < least:
            print(f"jno report: --{name.replace('_', '-')} must be at least {least}, received {getattr(args, name)}.",
                  file=sys.stderr)
            return 2
    limits = Limits(max_points=args.max_points, max_frames=args.max_frames, max_overlay=args.max_trials)
    try:
        result = write_report(args.paths, args.output, title=args.title, limits=limits)
    except (NotARunError, ReportDependencyError) as exc:
        print(f"jno report: {exc}", file=sys.stderr)
        return 1
    for p in result.problems:
        print(f"jno report: warning: {p}", file=sys.stderr)
    print(f"jno report: wrote {result.path} ({result.size / 1e6:.2f} MB, {result.runs} run"
          f"{'s' if result.runs != 1 else ''}, {result.seconds:.2f} s)")
    return 0
