"""Hyperparameter sweeps: W&B's sweep configuration format, Optuna as the engine, offline first.

::

    jno sweep create sweep.yaml                       # -> sweeps/<id>
    jno sweep agent sweeps/<id> --count 10 -- python train.py
    jno sweep run sweep.yaml --count 8 --workers 2 -- python train.py
    jno sweep show sweeps/<id> [--json]

The training script stays ordinary: ``dire = jno.setup(__file__, config={"lr": 1e-3})`` and
``dire.config.lr`` (the defaults alone, the trial's values under an agent). See
``docs/sweeps.md``; the parts: :mod:`._config` (the format), :mod:`._space` (Optuna
samplers, pruner and the distributions' mapping), :mod:`._store` (the sweep directory and
storage), :mod:`._agent` (agents), :mod:`._runner` (trial processes, W&B command macros),
:mod:`._trial` (the trial process's side), :mod:`._show`.

This package imports Optuna only when a sweep is created, run or shown (``jno.setup`` in a
trial process never imports it).
"""

from __future__ import annotations

from typing import Any

from ._config import DISTRIBUTIONS, METHODS, Param, SweepConfig, load_sweep_file, parse_sweep_config
from ._trial import TrialReporter, TrialSpec

__all__ = [
    "SweepConfig",
    "Param",
    "parse_sweep_config",
    "load_sweep_file",
    "METHODS",
    "DISTRIBUTIONS",
    "TrialSpec",
    "TrialReporter",
    # loaded on first use (they import Optuna when called)
    "Sweep",
    "create_sweep",
    "open_sweep",
    "Agent",
    "Budget",
    "TrialOutcome",
    "run_agents",
    "agent",
    "sweep_summary",
    "format_summary",
    "sweep_main",
]

_LAZY = {
    "Sweep": "._store", "create_sweep": "._store", "open_sweep": "._store",
    "Agent": "._agent", "Budget": "._agent", "TrialOutcome": "._agent", "run_agents": "._agent",
    "sweep_summary": "._show", "format_summary": "._show", "sweep_main": "._cli",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(mod, __name__), name)


def agent(sweep: Any, function: Any = None, count: int | None = None, *, command: Any = None,
          directory: Any = None, storage: str | None = None, **options: Any) -> list[Any]:
    """Run trials of ``sweep`` (a sweep directory, id, or :class:`Sweep`) in this process, as
    ``wandb.agent(sweep_id, function=train, count=50)``: ``function()`` calls
    ``jno.setup(...)`` and trains; or give ``command`` (a list) to run each trial as a process.
    Returns the :class:`TrialOutcome` list. ``options`` go to :func:`run_agents`
    (``heartbeat``, ``grace``, ``log``)."""
    from ._agent import run_agents
    from ._store import Sweep, open_sweep

    sw = sweep if isinstance(sweep, Sweep) else open_sweep(sweep, directory, storage=storage)
    outcomes, _ = run_agents(sw, command, function=function, count=count, **options)
    return outcomes
