"""``jno sweep show``: a sweep's trials sorted by its metric, the best config, the failures."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ._store import Sweep

__all__ = ["sweep_summary", "format_summary"]

_STATE = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}


def _entry_error(run_dir: str | None) -> str | None:
    if not run_dir:
        return None
    try:
        return json.loads((Path(run_dir) / "config.json").read_text()).get("sweep", {}).get("error")
    except (OSError, ValueError):
        return None


def sweep_summary(sweep: Sweep) -> dict[str, Any]:
    """The sweep as a JSON-able dict: ``id``, ``dir``, ``method``, ``metric``, ``counts`` (per
    state), ``best`` (the best complete trial or None) and ``trials`` (complete ones sorted by
    value per ``goal``, then pruned, running, waiting, failed), each with ``trial``, ``name``,
    ``state``, ``value``, ``config``, ``seconds``, ``run_dir``, ``error``. Surplus asks (see
    :mod:`jno_core.sweep._agent`) are left out."""
    study = sweep.study()
    cfg = sweep.config
    trials = study.get_trials(deepcopy=False)
    requeued = {int(t.user_attrs["jno:requeued_from"]): t.number for t in trials if "jno:requeued_from" in t.user_attrs}
    rows = []
    for t in trials:
        a = t.user_attrs
        if a.get("jno:surplus"):
            continue
        state = _STATE.get(t.state.name, t.state.name.lower())
        error = a.get("jno:error") if state == "failed" else None
        if state == "failed" and t.number in requeued:
            error = error or _entry_error(a.get("jno:run_dir")) or "agent lost"
            error = f"{error.splitlines()[0]} (re-queued as trial-{requeued[t.number]:04d})"
        elif state == "failed" and error is None:
            error = _entry_error(a.get("jno:run_dir"))
        value = t.value if state in ("complete", "pruned") else None
        rows.append({
            "trial": t.number, "name": f"trial-{t.number:04d}", "state": state,
            "value": value, "config": a.get("jno:config"), "seconds": a.get("jno:seconds"),
            "run_dir": a.get("jno:run_dir"), "error": error,
        })
    sign = -1.0 if cfg.goal == "maximize" else 1.0
    order = {"complete": 0, "pruned": 1, "running": 2, "waiting": 3, "failed": 4}
    rows.sort(key=lambda r: (order.get(r["state"], 5),
                             sign * r["value"] if r["value"] is not None and math.isfinite(r["value"]) else math.inf,
                             r["trial"]))
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    best = next((r for r in rows if r["state"] == "complete"), None)
    return {"id": sweep.id, "dir": str(sweep.dir), "method": cfg.method, "metric": dict(cfg.metric),
            "counts": counts, "best": best, "trials": rows}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return json.dumps(v) if isinstance(v, (list, dict)) else str(v)


def format_summary(s: dict[str, Any]) -> str:
    """:func:`sweep_summary` as a plain-text table."""
    from ._space import flatten

    m = s["metric"]
    counts = ", ".join(f"{n} {k}" for k, n in s["counts"].items()) or "no trials yet"
    lines = [f"sweep {s['id']}  ({s['dir']})", f"method {s['method']}, metric {m['name']} ({m['goal']}, "
             f"{m.get('summary', 'last')} value): {counts}", ""]
    keys: list[str] = []
    for r in s["trials"]:
        for k in flatten(r["config"] or {}):
            if k not in keys:
                keys.append(k)
    header = ["TRIAL", "STATE", m["name"].upper(), *keys, "TIME"]
    table = [header]
    for r in s["trials"]:
        flat = flatten(r["config"] or {})
        table.append([r["name"], r["state"], "-" if r["value"] is None else f"{r['value']:.4g}",
                      *[_fmt(flat[k]) if k in flat else "-" for k in keys],
                      "-" if r["seconds"] is None else f"{r['seconds']:.1f}s"])
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
    b = s["best"]
    lines.append("")
    if b is not None:
        lines.append(f"best: {b['name']}  {m['name']}={b['value']:.6g}  config: {json.dumps(b['config'])}")
        lines.append(f"      {b['run_dir']}")
    else:
        lines.append("best: none yet (no complete trial)")
    failed = [r for r in s["trials"] if r["state"] == "failed"]
    if failed:
        lines.append("failed:")
        for r in failed:
            err = (r["error"] or "unknown error").strip().splitlines()
            last = err[-1] if err else ""
            first = err[0] if err else ""
            lines.append(f"  {r['name']}: {first}" + (f" ... {last}" if last != first else ""))
    return "\n".join(lines)
