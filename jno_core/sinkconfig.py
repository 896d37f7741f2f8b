"""Which sinks a run uses.

Precedence (first that applies wins):

1. ``jno.setup(sinks=[...])`` (``"none"`` disables all);
2. the environment variable ``JNO_SINKS=csv,tensorboard`` (``none`` disables all);
3. ``jno.toml`` in the working directory (``sinks = [...]``), else ``[tool.jno]`` in
   ``pyproject.toml`` there;
4. the default: ``["csv"]`` (local, no account, no server).

``wandb=True`` / ``wandb={...}`` and ``tensorboard=True`` add their sink to whatever the
above chose (unless it is ``none``). Options for a sink come from ``jno.setup`` (``wandb={...}``)
over the config file's ``[sink_options.<name>]`` table.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Mapping, Sequence

from .errors import ConfigError

__all__ = ["resolve_sinks", "resolve_report", "read_config_file", "CONFIG_KEYS"]


#: the keys ``jno.toml`` / ``[tool.jno]`` may hold
CONFIG_KEYS = ("sinks", "sink_options", "report")


def _load_toml(f: Path) -> dict[str, Any]:
    try:
        with f.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{f} is not valid TOML ({exc}); fix that line or remove the file.") from None


def _check_keys(table: Any, where: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table, received {table!r}.")
    unknown = sorted(set(table) - set(CONFIG_KEYS))
    if unknown:
        raise ConfigError(
            f"{where} has unknown key(s) {unknown}; the valid keys are {list(CONFIG_KEYS)} "
            "(e.g. sinks = [\"csv\", \"tensorboard\"] and a [sink_options.csv] table)."
        )
    opts = table.get("sink_options", {})
    if not isinstance(opts, dict) or not all(isinstance(v, dict) for v in opts.values()):
        raise ConfigError(f"sink_options in {where} must hold one table per sink ([sink_options.<name>]), "
                          f"received {opts!r}.")
    return table


def read_config_file(cwd: Path | None = None) -> dict[str, Any]:
    """The ``jno.toml`` table, else ``[tool.jno]`` of ``pyproject.toml``, else ``{}``.
    A TOML syntax error or an unknown key is a :class:`~jno_core.errors.ConfigError` naming
    the file (and listing the valid keys)."""
    cwd = cwd or Path.cwd()
    f = cwd / "jno.toml"
    if f.is_file():
        return _check_keys(_load_toml(f), str(f))
    p = cwd / "pyproject.toml"
    if p.is_file():
        table = _load_toml(p).get("tool", {}).get("jno", {})
        return _check_keys(table, f"[tool.jno] of {p}")
    return {}


def _as_list(v: Any, where: str) -> list[str]:
    if isinstance(v, str):
        return [s.strip() for s in v.split(",") if s.strip()]
    if isinstance(v, (list, tuple)) and all(isinstance(s, str) for s in v):
        return list(v)
    raise ConfigError(
        f"{where} must name sinks as a list of strings (e.g. ['csv', 'tensorboard']), "
        f"received {v!r}."
    )


def resolve_sinks(
    *,
    sinks: Sequence[str] | str | None = None,
    wandb: bool | Mapping[str, Any] | None = None,
    tensorboard: bool | Mapping[str, Any] | None = None,
    project: str = "jno",
) -> tuple[list[str], dict[str, Any]]:
    """Return the sink names and per-sink options for a run (see the module docstring)."""
    file_cfg = read_config_file()
    options: dict[str, Any] = {
        k: dict(v) for k, v in (file_cfg.get("sink_options", {}) or {}).items()
    }
    if sinks is not None:
        names = _as_list(sinks, "jno.setup(sinks=...)")
    elif os.environ.get("JNO_SINKS") is not None:
        names = _as_list(os.environ["JNO_SINKS"], "JNO_SINKS")
        if not names:
            raise ConfigError(
                f"JNO_SINKS is set but names no sink ({os.environ['JNO_SINKS']!r}); set it to sink names "
                "such as 'csv,tensorboard', to 'none' to disable metrics, or unset it."
            )
    elif "sinks" in file_cfg:
        names = _as_list(file_cfg["sinks"], "the sinks entry of jno.toml / [tool.jno]")
    else:
        names = ["csv"]
    if [n.lower() for n in names] == ["none"] or not names:
        return [], options
    if "none" in names:
        raise ConfigError(f"'none' cannot be combined with other sinks, received {names!r}.")
    for flag, sink in ((wandb, "wandb"), (tensorboard, "tensorboard")):
        if flag:
            if sink not in names:
                names.append(sink)
            if isinstance(flag, Mapping):
                options[sink] = {**options.get(sink, {}), **dict(flag)}
    options.setdefault("wandb", {}).setdefault("project", project)
    seen: list[str] = []
    for n in names:
        if n not in seen:
            seen.append(n)
    return seen, options


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def resolve_report(report: bool | None = None) -> bool:
    """Whether the run writes ``report.html`` when it closes: ``jno.setup(report=...)``, else
    the environment variable ``JNO_REPORT`` (``1``/``0``, ``true``/``false``, ``yes``/``no``),
    else ``report = true`` in ``jno.toml`` (or ``[tool.jno]``), else ``False``."""
    if report is not None:
        return bool(report)
    env = os.environ.get("JNO_REPORT")
    if env is not None:
        v = env.strip().lower()
        if v in _TRUE | _FALSE:
            return v in _TRUE
        raise ConfigError(f"JNO_REPORT must be 1/0, true/false, yes/no or on/off, received {env!r}.")
    value = read_config_file().get("report", False)
    if not isinstance(value, bool):
        raise ConfigError(f"the report entry of jno.toml / [tool.jno] must be true or false, received {value!r}.")
    return value
