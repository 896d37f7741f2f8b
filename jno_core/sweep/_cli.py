"""``jno sweep create|agent|run|show`` (imported only when ``jno sweep`` runs)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from ..errors import JnoError

__all__ = ["sweep_main"]

_EPILOG = """examples:
  jno sweep create sweep.yaml                     # prints sweeps/<id>
  jno sweep agent sweeps/<id> --count 10 -- python train.py
  jno sweep run sweep.yaml --count 8 --workers 2 -- python train.py
  jno sweep show sweeps/<id> [--json]
Several agents (here or on other machines, with --storage postgresql://...) can serve one sweep."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jno sweep", description="Hyperparameter sweeps (W&B's sweep format, Optuna "
                                "as the engine, offline first).", epilog=_EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--dir", help="the folder holding sweeps (default: ./sweeps)")
        sp.add_argument("--storage", help="an Optuna storage URL shared by agents on several machines "
                        "(default: a journal file in the sweep directory; env JNO_SWEEP_STORAGE)")

    def agents(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--count", type=int, help="run at most this many trials (default: until the sweep is done)")
        sp.add_argument("--heartbeat", type=float, default=30.0,
                        help="seconds between heartbeats; a trial silent for max(60, 4x this) is re-queued")

    c = sub.add_parser("create", help="create a sweep from a YAML/JSON sweep file; prints its directory")
    c.add_argument("file")
    c.add_argument("--seed", type=int, help="seed the samplers (reproducible random/bayes sweeps)")
    common(c)
    a = sub.add_parser("agent", help="run trials of a sweep: jno sweep agent SWEEP [--count N] -- python train.py")
    a.add_argument("sweep", help="the sweep directory (or its id under --dir)")
    common(a)
    agents(a)
    r = sub.add_parser("run", help="create a sweep and run W local agents on it")
    r.add_argument("file")
    r.add_argument("--workers", type=int, default=1, help="agents run at once on this machine (default 1)")
    r.add_argument("--seed", type=int, help="seed the samplers")
    common(r)
    agents(r)
    s = sub.add_parser("show", help="trials sorted by the metric, the best config, failed trials with their error")
    s.add_argument("sweep")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    common(s)
    return p


def sweep_main(argv: Sequence[str]) -> int:
    """``jno sweep ...``; returns the exit status (130 when stopped with Ctrl-C)."""
    argv = list(argv)
    command: list[str] | None = None
    if "--" in argv:
        i = argv.index("--")
        argv, command = argv[:i], argv[i + 1:] or None
    parser = _parser()
    args = parser.parse_args(argv)
    if args.cmd is None:
        parser.print_help()
        return 2
    if command is not None and args.cmd not in ("agent", "run"):
        parser.error(f"`jno sweep {args.cmd}` takes no trial command after `--`.")
    try:
        return _dispatch(args, command)
    except JnoError as exc:
        print(f"jno sweep: error: {exc}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace, command: list[str] | None) -> int:
    import optuna

    from ._config import load_sweep_file

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from ._store import create_sweep, open_sweep

    if args.cmd == "create":
        sweep = create_sweep(load_sweep_file(args.file), args.dir, storage=args.storage, seed=args.seed)
        print(sweep.dir)
        return 0
    if args.cmd == "show":
        from ._show import format_summary, sweep_summary

        summary = sweep_summary(open_sweep(args.sweep, args.dir, storage=args.storage))
        print(json.dumps(summary, indent=2, default=str) if args.json else format_summary(summary))
        return 0
    from ._agent import run_agents
    from ._show import format_summary, sweep_summary

    if args.cmd == "run":
        sweep = create_sweep(load_sweep_file(args.file), args.dir, storage=args.storage, seed=args.seed)
        print(f"[jno sweep {sweep.id}] created {sweep.dir}", file=sys.stderr, flush=True)
        workers = args.workers
    else:
        sweep = open_sweep(args.sweep, args.dir, storage=args.storage)
        workers = 1
    _, interrupted = run_agents(sweep, command, workers=workers, count=args.count, heartbeat=args.heartbeat)
    if interrupted:
        return 130
    if args.cmd == "run":
        print(format_summary(sweep_summary(sweep)))
    return 0
