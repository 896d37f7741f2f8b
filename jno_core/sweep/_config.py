"""W&B's sweep configuration format, parsed and checked (no engine imported here).

A sweep file (YAML or JSON) holds the keys W&B documents: ``method`` (``grid``, ``random``,
``bayes``), ``metric`` (``name``, ``goal``, ``target``), ``parameters``, ``run_cap``,
``early_terminate`` (``type: hyperband`` with ``min_iter``/``max_iter``/``s``/``eta``/``strict``),
``program``, ``command``, ``name``, ``description``, ``project``, ``entity``. jno adds two
optional keys of its own: ``seed`` (an integer: reproducible samplers) and ``metric.summary``
(``last``, the default, as W&B's run summary, or ``best``: the best value logged per ``goal``).

A parameter is a mapping with ``value`` (constant), ``values`` (categorical, optionally with
``probabilities``) or a ``distribution`` and its arguments (``min``/``max``, ``mu``/``sigma``,
``q``); a mapping with ``parameters`` is a nested group (its values appear as a nested dict in
the run config). Without ``distribution`` the kind is inferred as W&B infers it: ``value`` ->
constant, ``values`` -> categorical, integer ``min``/``max`` -> int_uniform, other numbers ->
uniform. Sampling follows W&B's definitions (`the W&B sweep configuration reference
<https://docs.wandb.ai/guides/sweeps/sweep-config-keys>`_): ``q_*`` rounds to a multiple of
``q`` (``round(X / q) * q``), ``log_uniform_values`` is uniform in ``log x`` between ``min``
and ``max``, ``log_uniform`` takes ``min``/``max`` already in log space, ``log_normal`` is
``exp(N(mu, sigma))``.
"""

from __future__ import annotations

import json
import math
import numbers
from pathlib import Path
from typing import Any, Mapping

import attrs

from ..errors import ConfigError

__all__ = [
    "SweepConfig",
    "Param",
    "parse_sweep_config",
    "load_sweep_file",
    "METHODS",
    "DISTRIBUTIONS",
    "TOP_LEVEL_KEYS",
]

METHODS = ("grid", "random", "bayes")
GOALS = ("minimize", "maximize")
SUMMARIES = ("last", "best")
TOP_LEVEL_KEYS = (
    "method", "metric", "parameters", "run_cap", "early_terminate", "program", "command",
    "name", "description", "project", "entity", "seed",
)
METRIC_KEYS = ("name", "goal", "target", "summary")
EARLY_TERMINATE_KEYS = ("type", "min_iter", "max_iter", "s", "eta", "strict")
PARAM_KEYS = ("value", "values", "probabilities", "distribution", "min", "max", "mu", "sigma", "q")

#: distribution -> the keys it needs (beyond ``distribution``) and the ones it may take
DISTRIBUTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "constant": (("value",), ()),
    "categorical": (("values",), ("probabilities",)),
    "int_uniform": (("min", "max"), ()),
    "uniform": (("min", "max"), ()),
    "q_uniform": (("min", "max"), ("q",)),
    "log_uniform_values": (("min", "max"), ()),
    "q_log_uniform_values": (("min", "max"), ("q",)),
    "log_uniform": (("min", "max"), ()),
    "q_log_uniform": (("min", "max"), ("q",)),
    "normal": ((), ("mu", "sigma")),
    "q_normal": ((), ("mu", "sigma", "q")),
    "log_normal": ((), ("mu", "sigma")),
    "q_log_normal": ((), ("mu", "sigma", "q")),
}
#: distributions a grid can enumerate
GRID_DISTRIBUTIONS = ("constant", "categorical", "int_uniform", "q_uniform")
_W_AND_B_ONLY = ("beta", "q_beta", "inv_log_uniform", "inv_log_uniform_values")


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


@attrs.frozen
class Param:
    """One swept parameter (a leaf of ``parameters``).

    :ivar path: its place in the run config, e.g. ``("optimizer", "lr")``.
    :ivar distribution: one of :data:`DISTRIBUTIONS`.
    :ivar spec: the checked arguments (``min``/``max``/``mu``/``sigma``/``q``/``value``/
        ``values``/``probabilities``, with W&B's defaults filled in: ``mu=0``, ``sigma=1``,
        ``q=1``).
    """

    path: tuple[str, ...]
    distribution: str
    spec: dict[str, Any]

    @property
    def name(self) -> str:
        """The dotted name (``optimizer.lr``): the engine's parameter name."""
        return ".".join(self.path)

    def grid_values(self) -> list[Any]:
        """The values a grid takes, in order (constant, categorical, int_uniform and q_uniform
        only)."""
        d, s = self.distribution, self.spec
        if d == "constant":
            return [s["value"]]
        if d == "categorical":
            return list(s["values"])
        if d == "int_uniform":
            return list(range(int(s["min"]), int(s["max"]) + 1))
        if d == "q_uniform":
            q = s["q"]
            lo, hi = round(s["min"] / q), round(s["max"] / q)
            as_int = _is_int(s["min"]) and _is_int(s["max"]) and _is_int(q)
            return [int(k * q) if as_int else k * q for k in range(lo, hi + 1)]
        raise ConfigError(
            f"parameter {self.name!r} has distribution {d!r}, which a grid cannot enumerate; "
            f"method 'grid' needs {', '.join(GRID_DISTRIBUTIONS)} (or `values: [...]`). Fix: list "
            "the values to try, or use method 'random' or 'bayes'."
        )


@attrs.frozen
class SweepConfig:
    """A checked sweep configuration.

    :ivar raw: the configuration as given (parsed YAML/JSON), with ``metric`` filled in
        (``goal`` defaults to ``minimize``, ``summary`` to ``last``; without a ``metric``
        the sweep ranks trials by ``loss/total``, which every solve logs).
    :ivar method: ``grid``, ``random`` or ``bayes``.
    :ivar metric: ``{"name", "goal", "summary"}`` (and ``target`` when given).
    :ivar params: the parameter leaves, in file order.
    :ivar run_cap: the most trials the sweep runs (None: unlimited; a grid stops at its size).
    :ivar hyperband: the ``early_terminate`` mapping (None: no pruning).
    """

    raw: dict[str, Any]
    method: str
    metric: dict[str, Any]
    params: tuple[Param, ...]
    run_cap: int | None
    hyperband: dict[str, Any] | None
    seed: int | None

    @property
    def goal(self) -> str:
        return str(self.metric["goal"])

    def constants(self) -> dict[str, Any]:
        """``{dotted name: value}`` of the constant parameters."""
        return {p.name: p.spec["value"] for p in self.params if p.distribution == "constant"}

    def grid_points(self) -> list[dict[str, Any]]:
        """Every grid point as ``{dotted name: value}``, in W&B's order (the last parameter
        varies fastest), capped at ``run_cap``."""
        import itertools

        names = [p.name for p in self.params]
        points = [dict(zip(names, combo)) for combo in itertools.product(*(p.grid_values() for p in self.params))]
        return points[: self.run_cap] if self.run_cap is not None else points


def _fail(where: str, msg: str) -> ConfigError:
    return ConfigError(f"sweep config, {where}: {msg}")


def _check_keys(where: str, given: Mapping[str, Any], valid: tuple[str, ...]) -> None:
    unknown = [k for k in given if k not in valid]
    if unknown:
        raise _fail(where, f"unknown key(s) {unknown}; the valid keys are {list(valid)}.")


def _parse_param(path: tuple[str, ...], spec: Any) -> list[Param]:
    """The parameter leaves of ``spec`` at ``path``: one :class:`Param` for a leaf (its
    distribution given or inferred, its settings checked, defaults filled in), or those of a
    nested ``parameters:`` group."""
    where = f"parameters.{'.'.join(path)}"
    if not isinstance(spec, Mapping):
        raise _fail(where, f"expected a mapping such as {{values: [1, 2]}} or {{value: 3}}, received {spec!r}.")
    if "parameters" in spec:
        _check_keys(where, spec, ("parameters",))
        return _parse_params(spec["parameters"], path)
    _check_keys(where, spec, PARAM_KEYS + ("parameters",))
    dist = _distribution(where, spec)
    s = {k: spec[k] for k in spec if k != "distribution"}
    _check_numbers(where, dist, s)
    if "min" in s:
        _check_range(where, dist, s)
    if dist == "categorical":
        _check_categorical(where, s)
    return [Param(path, dist, s)]


def _distribution(where: str, spec: Mapping[str, Any]) -> str:
    """The distribution of the leaf ``spec`` (given, or inferred from ``value``, ``values``
    or ``min``/``max``), checked to be one jno sweeps support with exactly the keys it
    needs and may take."""
    dist = spec.get("distribution")
    if dist is None:
        if "value" in spec:
            dist = "constant"
        elif "values" in spec:
            dist = "categorical"
        elif "min" in spec and "max" in spec:
            dist = "int_uniform" if _is_int(spec["min"]) and _is_int(spec["max"]) else "uniform"
        else:
            raise _fail(where, "cannot tell the distribution; give `value`, `values`, `min` and `max`, "
                               f"or `distribution` (one of {list(DISTRIBUTIONS)}).")
    if dist in _W_AND_B_ONLY:
        raise _fail(where, f"distribution {dist!r} is not supported by jno sweeps; the supported ones "
                           f"are {list(DISTRIBUTIONS)}.")
    if dist not in DISTRIBUTIONS:
        raise _fail(where, f"unknown distribution {dist!r}; the valid ones are {list(DISTRIBUTIONS)}.")
    need, may = DISTRIBUTIONS[dist]
    allowed = set(need) | set(may) | {"distribution"}
    extra = sorted(set(spec) - allowed)
    if extra:
        raise _fail(where, f"distribution {dist!r} takes {sorted(allowed)}, received also {extra}.")
    missing = [k for k in need if k not in spec]
    if missing:
        raise _fail(where, f"distribution {dist!r} needs {list(need)}, missing {missing}.")
    return dist


def _check_numbers(where: str, dist: str, s: dict[str, Any]) -> None:
    """Check that ``min``, ``max``, ``mu``, ``sigma`` and ``q`` are numbers, and fill in
    (and check) ``mu = 0``, ``sigma = 1`` for the normal families and ``q = 1`` for the
    quantised ones (``s`` is updated in place)."""
    for k in ("min", "max", "mu", "sigma", "q"):
        if k in s and not _is_num(s[k]):
            raise _fail(where, f"`{k}` must be a number, received {s[k]!r}.")
    if dist in ("normal", "q_normal", "log_normal", "q_log_normal"):
        s.setdefault("mu", 0.0)
        s.setdefault("sigma", 1.0)
        if s["sigma"] <= 0:
            raise _fail(where, f"`sigma` must be > 0, received {s['sigma']!r}.")
    if dist.startswith("q_"):
        s.setdefault("q", 1)
        if s["q"] <= 0:
            raise _fail(where, f"`q` must be > 0, received {s['q']!r}.")


def _check_range(where: str, dist: str, s: Mapping[str, Any]) -> None:
    """Check ``min < max`` and what ``dist`` asks of them: integers for ``int_uniform``,
    ``min > 0`` for the log-uniform-values families, a multiple of ``q`` in the range for
    the quantised ones."""
    if not s["min"] < s["max"]:
        raise _fail(where, f"needs min < max, received min={s['min']!r}, max={s['max']!r}.")
    if dist == "int_uniform" and not (_is_int(s["min"]) and _is_int(s["max"])):
        raise _fail(where, f"int_uniform needs integer min and max, received {s['min']!r}, {s['max']!r}.")
    if dist in ("log_uniform_values", "q_log_uniform_values") and s["min"] <= 0:
        raise _fail(where, f"{dist} needs min > 0 (values are sampled in log space), received "
                           f"min={s['min']!r}. Fix: use `log_uniform` for min/max given as logarithms.")
    if dist in ("q_uniform", "q_log_uniform_values", "q_log_uniform"):
        lo_k, hi_k = _q_range(dist, s)
        if hi_k < lo_k:
            raise _fail(where, f"no multiple of q={s['q']!r} lies in [{s['min']!r}, {s['max']!r}]; "
                               "use a smaller q.")


def _check_categorical(where: str, s: dict[str, Any]) -> None:
    """Check a categorical leaf: ``values`` a non-empty list, ``probabilities`` (optional)
    one non-negative number per value summing to 1; both stored as lists (in place)."""
    vals = s["values"]
    if not isinstance(vals, (list, tuple)) or len(vals) == 0:
        raise _fail(where, f"`values` must be a non-empty list, received {vals!r}.")
    s["values"] = list(vals)
    if "probabilities" in s:
        pr = s["probabilities"]
        if (not isinstance(pr, (list, tuple)) or len(pr) != len(vals)
                or not all(_is_num(p) and p >= 0 for p in pr) or not math.isclose(sum(pr), 1.0, abs_tol=1e-6)):
            raise _fail(where, f"`probabilities` must be {len(vals)} non-negative numbers summing to 1 "
                               f"(one per value), received {pr!r}.")
        s["probabilities"] = [float(p) for p in pr]


def _q_range(dist: str, s: Mapping[str, Any]) -> tuple[int, int]:
    """The integer range of ``k`` with ``k * q`` a possible value."""
    lo, hi = float(s["min"]), float(s["max"])
    if dist == "q_log_uniform":
        lo, hi = math.exp(lo), math.exp(hi)
    return round(lo / s["q"]), round(hi / s["q"])


def _parse_params(params: Any, prefix: tuple[str, ...] = ()) -> list[Param]:
    where = "parameters" + ("." + ".".join(prefix) if prefix else "")
    if not isinstance(params, Mapping) or not params:
        raise _fail(where, f"expected a non-empty mapping of parameter names to specs, received {params!r}.")
    out: list[Param] = []
    for name, spec in params.items():
        if not isinstance(name, str) or not name or "." in name:
            raise _fail(where, f"parameter names must be non-empty strings without '.', received {name!r} "
                               "(nest groups with `parameters:` instead).")
        out.extend(_parse_param(prefix + (name,), spec))
    return out


def _positive_int(where: str, v: Any) -> int:
    if not _is_int(v) or v <= 0:
        raise _fail(where, f"expected a positive integer, received {v!r}.")
    return int(v)


def _parse_hyperband(et: Any) -> dict[str, Any] | None:
    if et is None:
        return None
    if not isinstance(et, Mapping):
        raise _fail("early_terminate", f"expected a mapping such as {{type: hyperband, min_iter: 3}}, received {et!r}.")
    _check_keys("early_terminate", et, EARLY_TERMINATE_KEYS)
    if et.get("type") != "hyperband":
        raise _fail("early_terminate",
                    f"`type` must be 'hyperband' (the only type W&B defines), received {et.get('type')!r}.")
    out: dict[str, Any] = {"type": "hyperband"}
    for k in ("min_iter", "max_iter", "s"):
        if k in et:
            out[k] = _positive_int(f"early_terminate.{k}", et[k])
    eta = et.get("eta", 3)
    if not _is_int(eta) or eta < 2:
        raise _fail("early_terminate.eta", f"expected an integer >= 2, received {eta!r}.")
    out["eta"] = eta
    if "strict" in et:
        out["strict"] = bool(et["strict"])
    if "min_iter" not in out and not ("max_iter" in out and "s" in out):
        raise _fail("early_terminate", "needs `min_iter`, or `max_iter` and `s` (as in W&B).")
    if "min_iter" in out and "max_iter" in out and out["max_iter"] < out["min_iter"]:
        raise _fail("early_terminate", f"needs max_iter >= min_iter, received {out['max_iter']} < {out['min_iter']}.")
    return out


def _parse_metric(metric: Any) -> dict[str, Any]:
    """The checked ``metric`` entry with its defaults (``goal: minimize``, ``summary:
    last``) filled in."""
    if not isinstance(metric, Mapping):
        raise _fail("metric", f"expected a mapping {{name: ..., goal: minimize|maximize}}, received {metric!r}.")
    _check_keys("metric", metric, METRIC_KEYS)
    if not isinstance(metric.get("name"), str) or not metric["name"]:
        raise _fail("metric.name",
                    f"expected the logged key to optimize (e.g. val/l2_rel), received {metric.get('name')!r}.")
    metric = {"goal": "minimize", "summary": "last", **metric}
    if metric["goal"] not in GOALS:
        raise _fail("metric.goal", f"expected one of {list(GOALS)}, received {metric['goal']!r}.")
    if metric["summary"] not in SUMMARIES:
        raise _fail("metric.summary", f"expected one of {list(SUMMARIES)}, received {metric['summary']!r}.")
    if "target" in metric and not _is_num(metric["target"]):
        raise _fail("metric.target", f"expected a number, received {metric['target']!r}.")
    return metric


def parse_sweep_config(raw: Mapping[str, Any]) -> SweepConfig:
    """Check a sweep configuration (a parsed YAML/JSON mapping) and return it as a
    :class:`SweepConfig`. Raises :class:`~jno_core.errors.ConfigError` naming the key at fault
    and the valid choices."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"sweep config: expected a mapping (method, metric, parameters, ...), received {raw!r}.")
    raw = json.loads(json.dumps(raw))  # plain JSON types, a copy
    raw.pop("id", None)  # a sweep.json read back
    _check_keys("top level", raw, TOP_LEVEL_KEYS)
    method = raw.get("method")
    if method not in METHODS:
        raise _fail("method", f"expected one of {list(METHODS)}, received {method!r}.")
    metric = _parse_metric(raw.get("metric", {"name": "loss/total", "goal": "minimize"}))
    raw["metric"] = metric
    if "parameters" not in raw:
        raise _fail("parameters", "missing; a sweep needs at least one parameter.")
    params = tuple(_parse_params(raw["parameters"]))
    run_cap = _positive_int("run_cap", raw["run_cap"]) if "run_cap" in raw else None
    seed = raw.get("seed")
    if seed is not None and not _is_int(seed):
        raise _fail("seed", f"expected an integer, received {seed!r}.")
    for k in ("program", "name", "description", "project", "entity"):
        if k in raw and not isinstance(raw[k], str):
            raise _fail(k, f"expected a string, received {raw[k]!r}.")
    command = raw.get("command", [])
    if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
        raise _fail("command", f"expected a list of strings such as ['${{env}}', '${{interpreter}}', "
                               f"'${{program}}', '${{args}}'], received {raw['command']!r}.")
    cfg = SweepConfig(raw=raw, method=method, metric=metric, params=params, run_cap=run_cap,
                      hyperband=_parse_hyperband(raw.get("early_terminate")), seed=seed)
    if method == "grid":
        for p in params:
            if p.distribution not in GRID_DISTRIBUTIONS:
                p.grid_values()  # raises, naming the parameter
    return cfg


def load_sweep_file(path: str | Path) -> SweepConfig:
    """Read a sweep file (``.yaml``/``.yml`` or ``.json``) and check it."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"sweep file {str(p)!r} does not exist; expected a YAML or JSON sweep configuration.")
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() == ".json":
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"sweep file {str(p)!r} is not valid JSON: {exc}.") from exc
    else:
        import yaml

        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"sweep file {str(p)!r} is not valid YAML: {exc}.") from exc
    return parse_sweep_config(raw)
