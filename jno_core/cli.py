"""The ``jno`` command.

``jno plugins [--json]``
    List the installed plugins (entry-point group ``"jno"``): name, distribution, version,
    the names each registers per kind (trackers, callbacks, sinks, weightings, resamplers) and the hooks
    it implements. The same records as :func:`jno_core.plugins.describe_plugins`, reused from
    jno's cache folder while no plugin changed (see :mod:`jno_core._plugin_cache`).

``jno sync ...``
    Replay an offline run into remote sinks (see :mod:`jno_core.replay`).

``jno sweep create|agent|run|show ...``
    Hyperparameter sweeps (see :mod:`jno_core.sweep`, imported only when this command runs).

The environment variables of :mod:`jno_core.plugins` apply (``JNO_LOAD_PLUGINS``,
``JNO_DISABLE_PLUGINS``, ``JNO_STRICT``, ``JNO_TRACE_PLUGINS``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Sequence

__all__ = ["main", "format_plugin_table"]

_KIND_ORDER = ("trackers", "callbacks", "sinks", "weightings", "resamplers")


def _registers_text(registers: dict[str, list[str]]) -> str:
    parts = [f"{kind}: {', '.join(names)}" for kind in _KIND_ORDER if (names := registers.get(kind))]
    return "; ".join(parts) or "-"


def _hooks_text(record: dict[str, Any]) -> str:
    """Module hooks, then the hooks of the objects its factories make (marked ``(objects)``)."""
    own = list(record.get("hooks", []))
    objs = sorted({h for hs in record.get("object_hooks", {}).values() for h in hs} - set(own))
    parts = [", ".join(own)] if own else []
    if objs:
        parts.append(f"{', '.join(objs)} (objects)")
    return "; ".join(parts) or "-"


def format_plugin_table(records: Sequence[dict[str, Any]]) -> str:
    """Render :func:`~jno_core.plugins.describe_plugins` records as a plain-text table
    (one row per plugin; columns NAME, DISTRIBUTION, VERSION, REGISTERS, HOOKS; HOOKS lists
    the module's hooks, then those of the objects its factories make)."""
    if not records:
        return (
            "No jno plugins installed (entry-point group 'jno'). Install one, e.g. "
            "pip install -e plugins/jno-plugin-example."
        )
    header = ("NAME", "DISTRIBUTION", "VERSION", "REGISTERS", "HOOKS")
    rows = [
        (
            r["name"],
            r.get("distribution") or "-",
            r.get("version") or "-",
            _registers_text(r.get("registers", {})),
            _hooks_text(r),
        )
        for r in records
    ]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cmd_plugins(args: argparse.Namespace) -> int:
    from ._plugin_cache import describe_cached  # the plugins import JAX: reuse a description

    records = describe_cached()
    if args.json:
        print(json.dumps(records, indent=2, sort_keys=True))
    else:
        print(format_plugin_table(records))
    return 0


def _cmd_sync(args: argparse.Namespace) -> int:
    return _sync(list(args.rest))


def _sync(argv: list[str]) -> int:
    """``jno sync ...``: every argument goes to :func:`jno_core.replay.sync_main`."""
    from .replay import sync_main

    return int(sync_main(argv) or 0)


def _sweep(argv: list[str]) -> int:
    """``jno sweep ...``: every argument goes to :func:`jno_core.sweep._cli.sweep_main`."""
    from .sweep._cli import sweep_main

    return int(sweep_main(argv) or 0)


def _report(argv: list[str]) -> int:
    """``jno report ...``: every argument goes to :func:`jno_core.report.report_main` (imported
    here, so ``jno --help`` does not load it)."""
    from .report import report_main

    return int(report_main(argv) or 0)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jno", description="jno: physics-informed neural networks in JAX.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    pl = sub.add_parser("plugins", help="list the installed jno plugins",
                        description="List the installed jno plugins and what they register.")
    pl.add_argument("--json", action="store_true", help="print JSON records instead of a table")
    pl.set_defaults(func=_cmd_plugins)
    sy = sub.add_parser("sync", help="replay an offline run into remote sinks", add_help=False)
    sy.add_argument("rest", nargs=argparse.REMAINDER)
    sy.set_defaults(func=_cmd_sync)
    sw = sub.add_parser("sweep", help="hyperparameter sweeps: create, agent, run, show", add_help=False)
    sw.add_argument("rest", nargs=argparse.REMAINDER)
    sw.set_defaults(func=lambda a: _sweep(list(a.rest)))
    rp = sub.add_parser("report", help="write one self-contained HTML report of runs or a sweep", add_help=False)
    rp.add_argument("rest", nargs=argparse.REMAINDER)
    rp.set_defaults(func=lambda args: _report(list(args.rest)))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jno`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sync"]:  # its own parser handles every option, --help included
        return _sync(argv[1:])
    if argv[:1] == ["sweep"]:
        return _sweep(argv[1:])
    if argv[:1] == ["report"]:
        return _report(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except BrokenPipeError:  # e.g. `jno plugins --json | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
