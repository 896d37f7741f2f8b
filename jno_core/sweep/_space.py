"""The sweep's search space and search strategy as Optuna objects.

Each W&B distribution becomes an Optuna suggestion (the engine's parameter, what its sampler
models) and a map from that to the run-config value:

===========================  ==========================================  ======================
W&B distribution             Optuna suggestion                           config value
===========================  ==========================================  ======================
constant                     none                                        ``value``
categorical                  ``suggest_categorical(values)`` (indices     the value
                             when a value is not a scalar)
categorical + probabilities  ``suggest_float(0, 1)`` = ``u``              inverse CDF of ``u``
int_uniform                  ``suggest_int(min, max)``                   the integer
uniform                      ``suggest_float(min, max)``                 the number
q_uniform                    ``suggest_int/float(kq .. Kq, step=q)``     the multiple of q
log_uniform_values           ``suggest_float(min, max, log=True)``       the number
q_log_uniform_values         ``suggest_float(min, max, log=True)``       ``round(x / q) * q``
log_uniform                  ``suggest_float(e^min, e^max, log=True)``    the number
normal / log_normal / q_*    ``suggest_float(eps, 1 - eps)`` = ``u``      ``mu + sigma Phi^-1(u)``
                                                                          (``exp``, rounded)
===========================  ==========================================  ======================

(``round(X / q) * q`` and ``q`` multiples as in W&B's definitions; ``q`` results are integers
when ``min``, ``max`` and ``q`` are.) Samplers: ``grid`` enqueues every grid point as a waiting
trial (Optuna's ``enqueue_trial``; a waiting trial is handed to exactly one ``ask()``, atomically
in every Optuna storage, so concurrent agents never run a point twice), ``random`` is
``RandomSampler``, ``bayes`` is ``TPESampler`` (Bergstra et al., "Algorithms for
Hyper-Parameter Optimization", NeurIPS 2011). ``early_terminate: hyperband`` is Optuna's
``HyperbandPruner`` (Li et al., "Hyperband", JMLR 18, 2018) with ``min_iter`` as its
``min_resource``, ``max_iter`` as ``max_resource`` (``"auto"`` when absent) and ``eta`` as its
``reduction_factor``; the resource is the number of times the trial has logged the metric,
W&B's ``iter``.
"""

from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING, Any

import numpy as np

from ._config import Param, SweepConfig

if TYPE_CHECKING:  # pragma: no cover
    import optuna

__all__ = ["suggest", "engine_params", "to_config", "make_sampler", "make_pruner", "nest", "flatten"]

#: the open interval a normal's uniform variable lives in (about +-5.3 sigma)
_EPS = 1e-7
_SCALARS = (str, int, float, bool, type(None))


def _choices(p: Param) -> tuple[list[Any], bool]:
    """The categorical choices Optuna sees, and whether they are indices into ``values``."""
    vals = p.spec["values"]
    if all(isinstance(v, _SCALARS) for v in vals) and len({json_key(v) for v in vals}) == len(vals):
        return list(vals), False
    return list(range(len(vals))), True


def json_key(v: Any) -> str:
    import json

    return json.dumps(v, sort_keys=True)


def _quantize(x: float, q: float, as_int: bool) -> Any:
    v = round(x / q) * q
    return int(v) if as_int else float(v)


def _ints(*vals: Any) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) for v in vals)


def _suggest_one(trial: "optuna.Trial", p: Param) -> Any:
    """Suggest ``p`` on ``trial``; returns the engine's value (see the module table)."""
    d, s, n = p.distribution, p.spec, p.name
    if d == "categorical":
        if "probabilities" in s:
            return trial.suggest_float(n, 0.0, 1.0)
        choices, _ = _choices(p)
        return trial.suggest_categorical(n, choices)
    if d == "int_uniform":
        return trial.suggest_int(n, int(s["min"]), int(s["max"]))
    if d == "uniform":
        return trial.suggest_float(n, float(s["min"]), float(s["max"]))
    if d == "q_uniform":
        q = s["q"]
        lo, hi = round(s["min"] / q), round(s["max"] / q)
        if _ints(s["min"], s["max"], q):
            return trial.suggest_int(n, lo * q, hi * q, step=q)
        return trial.suggest_float(n, lo * q, hi * q, step=q)
    if d in ("log_uniform_values", "q_log_uniform_values"):
        return trial.suggest_float(n, float(s["min"]), float(s["max"]), log=True)
    if d in ("log_uniform", "q_log_uniform"):
        return trial.suggest_float(n, math.exp(s["min"]), math.exp(s["max"]), log=True)
    if d in ("normal", "q_normal", "log_normal", "q_log_normal"):
        return trial.suggest_float(n, _EPS, 1.0 - _EPS)
    raise AssertionError(d)  # constant has no suggestion; parse_sweep_config checked the rest


def _value(p: Param, x: Any) -> Any:
    """The run-config value of ``p`` for the engine's value ``x``."""
    d, s = p.distribution, p.spec
    if d == "constant":
        return s["value"]
    if d == "categorical":
        if "probabilities" in s:
            cdf = np.cumsum(s["probabilities"])
            i = int(np.searchsorted(cdf, float(x) * cdf[-1], side="right"))
            return s["values"][min(i, len(s["values"]) - 1)]
        _, indexed = _choices(p)
        return s["values"][int(x)] if indexed else x
    if d == "q_log_uniform_values":
        return _quantize(float(x), s["q"], _ints(s["min"], s["max"], s["q"]))
    if d == "q_log_uniform":
        return _quantize(float(x), s["q"], _ints(s["q"]))
    if d in ("normal", "q_normal", "log_normal", "q_log_normal"):
        v = s["mu"] + s["sigma"] * statistics.NormalDist().inv_cdf(float(x))
        if d in ("log_normal", "q_log_normal"):
            v = math.exp(v)
        return _quantize(v, s["q"], _ints(s["q"])) if d.startswith("q_") else float(v)
    return x


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1, "c": 2}`` -> ``{"a": {"b": 1}, "c": 2}``."""
    out: dict[str, Any] = {}
    for k, v in flat.items():
        *head, last = k.split(".")
        d = out
        for h in head:
            d = d.setdefault(h, {})
        d[last] = v
    return out


def flatten(cfg: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Inverse of :func:`nest`."""
    out: dict[str, Any] = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def suggest(trial: "optuna.Trial", cfg: SweepConfig) -> dict[str, Any]:
    """Suggest every parameter of ``cfg`` on ``trial``; returns the trial's run config (nested
    like ``parameters``, constants included)."""
    flat = {}
    for p in cfg.params:
        flat[p.name] = _value(p, None if p.distribution == "constant" else _suggest_one(trial, p))
    return nest(flat)


def to_config(cfg: SweepConfig, engine: dict[str, Any]) -> dict[str, Any]:
    """The run config for the engine's parameter values ``engine`` (``{dotted name: x}``)."""
    return nest({p.name: _value(p, engine.get(p.name)) for p in cfg.params})


def engine_params(cfg: SweepConfig, point: dict[str, Any]) -> dict[str, Any]:
    """The engine's parameter values of a grid point ``{dotted name: config value}`` (what
    ``enqueue_trial`` receives): categorical values become their index where the engine sees
    indices; constants are left out."""
    out = {}
    for p in cfg.params:
        if p.distribution == "constant":
            continue
        v = point[p.name]
        if p.distribution == "categorical":
            _, indexed = _choices(p)
            if indexed:
                keys = [json_key(x) for x in p.spec["values"]]
                v = keys.index(json_key(v))
        out[p.name] = v
    return out


def trial_seed(seed: int, number: int) -> int:
    """The sampler seed of trial ``number`` of a sweep seeded with ``seed``: independent of
    which agent runs the trial, so a seeded sweep is reproducible."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(number)]).generate_state(1)[0])


def make_sampler(cfg: SweepConfig, seed: int | None = None) -> "optuna.samplers.BaseSampler":
    """Optuna's sampler for ``cfg.method`` (``grid`` trials come from the queue; its sampler
    only ever serves surplus asks, which are discarded)."""
    import optuna

    if cfg.method == "bayes":
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def make_pruner(cfg: SweepConfig) -> "optuna.pruners.BasePruner":
    """``HyperbandPruner`` for ``early_terminate: {type: hyperband}``, else no pruning. With
    ``max_iter`` and ``s`` but no ``min_iter`` (W&B's second form), ``min_iter`` is
    ``max_iter / eta**s``."""
    import optuna

    hb = cfg.hyperband
    if hb is None:
        return optuna.pruners.NopPruner()
    eta = hb["eta"]
    min_iter = hb.get("min_iter")
    if min_iter is None:
        min_iter = max(1, int(hb["max_iter"] / eta ** hb["s"]))
    return optuna.pruners.HyperbandPruner(min_resource=int(min_iter), max_resource=hb.get("max_iter", "auto"),
                                          reduction_factor=int(eta))
