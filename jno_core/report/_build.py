"""Turn what :mod:`._load` read into the report's specification: a JSON-able dict of sections,
each a list of charts and tables that ``report.js`` draws with BokehJS.

Sections follow the metric keys' first component (``loss/``, ``train/``, ``lr/``, ``val/``,
``explainability/``, ``perf/``, then any other prefix); ``explainability/`` is split by tracker
(its second component). Only keys some run logged make charts, so empty groups never appear.
Within a group, scalar keys with the same parent path share a chart (all ``loss/`` keys share
one), split into a positive and a signed chart so that a log axis is used where the values are
positive and span decades (and always for losses and gradient norms); charts with more than
:data:`MAX_LINES_PER_CHART` keys are split by key family (``eigval_0`` ... ``eigval_4`` together).
``explainability/time_ms/*`` becomes the timing table instead of charts.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections import defaultdict
from typing import Any, Sequence

import attrs
import numpy as np

from ._encode import packed, packed_steps
from ._load import Inputs, RunData, SweepData
from ._reduce import (block_factor, block_mean, color_range, display_bins, histogram_frames, minmax_downsample,
                      pick_frames, wants_log)

__all__ = ["Limits", "build_spec", "SECTION_ORDER"]

#: sections in this order first, then other prefixes alphabetically
SECTION_ORDER = ("loss", "train", "lr", "val", "explainability", "perf")
SECTION_TITLES = {"loss": "Losses", "train": "Training", "lr": "Learning rates", "val": "Validation",
                  "explainability": "Explainability", "perf": "Performance"}
TIMING_PREFIX = "explainability/time_ms/"
MAX_LINES_PER_CHART = 8
_FAMILY = re.compile(r"^(.*?)_?\d+$")


@attrs.frozen
class Limits:
    """How much of a run the report displays (everything beyond is reduced, and the chart says
    how).

    :ivar max_points: points per scalar series (min-max decimation beyond), for one or two runs;
        with more runs overlaid, ``max(400, 2 * max_points // n_runs)``.
    :ivar max_frames: steps of a heatmap / histogram history (evenly spaced beyond).
    :ivar max_side: cells per side of a heatmap (block means beyond).
    :ivar max_frame_values: cells of all frames of one heatmap together (fewer frames beyond).
    :ivar max_overlay: trials of a sweep whose curves are overlaid (the best ones by the metric).
    """

    max_points: int = 2000
    max_frames: int = 200
    max_side: int = 100
    max_frame_values: int = 250_000
    max_overlay: int = 10


def _section_of(key: str) -> tuple[str, str | None]:
    parts = key.split("/")
    if len(parts) == 1:
        return "other", None
    if parts[0] == "explainability":
        return "explainability", parts[1]
    return parts[0], None


def _family(name: str) -> str:
    m = _FAMILY.match(name)
    return m.group(1) if m and m.group(1) else name


def _common_parent(keys: Sequence[str]) -> str:
    """The ``a/b/`` prefix every key shares ("" when they share none or there is one key)."""
    if len(keys) < 2:
        return ""
    parts = [k.split("/")[:-1] for k in keys]
    common: list[str] = []
    for level in zip(*parts):
        if len(set(level)) != 1:
            break
        common.append(level[0])
    return "/".join(common) + "/" if common else ""


def _prefers_log(key: str) -> bool:
    leaf = key.rsplit("/", 1)[-1]
    return key.startswith("loss/") or "norm" in key or "gradient_norm" in key or leaf in ("total", "loss")


def _scalar_groups(keys: Sequence[str], positive: dict[str, bool]) -> list[tuple[str, list[str]]]:
    """``(title, keys)`` of the line charts of one section group."""
    by_parent: dict[str, list[str]] = defaultdict(list)
    for k in keys:
        parent = "loss" if k.startswith("loss/") else k.rsplit("/", 1)[0]
        by_parent[parent].append(k)
    out: list[tuple[str, list[str]]] = []
    for parent in sorted(by_parent):
        ks = sorted(by_parent[parent])
        if len(ks) == 1:
            out.append((ks[0], ks))
            continue
        for sign_keys, suffix in (([k for k in ks if positive[k]], ""), ([k for k in ks if not positive[k]], " (signed)")):
            if not sign_keys:
                continue
            fam_sizes: dict[str, int] = defaultdict(int)
            for k in sign_keys:
                fam_sizes[_family(k.rsplit("/", 1)[-1])] += 1
            mixed = any(n > 1 for n in fam_sizes.values()) and len(fam_sizes) > 1
            if len(sign_keys) <= MAX_LINES_PER_CHART and not (mixed and len(sign_keys) > 4):
                out.append((f"{parent}/*{suffix}" if len(sign_keys) > 1 else sign_keys[0], sign_keys))
                continue
            fams: dict[str, list[str]] = defaultdict(list)
            for k in sign_keys:
                fams[_family(k.rsplit("/", 1)[-1])].append(k)
            singles = [k for f, g in fams.items() if len(g) == 1 for k in g]
            for f, g in sorted(fams.items()):
                if len(g) > 1:
                    out.append((f"{parent}/{f}_*{suffix}", g))
            for i in range(0, len(singles), MAX_LINES_PER_CHART):
                chunk = singles[i:i + MAX_LINES_PER_CHART]
                out.append((f"{parent}/*{suffix}" if len(chunk) > 1 else chunk[0], chunk))
    return out


class _Builder:
    def __init__(self, runs: list[RunData], limits: Limits) -> None:
        self.runs = runs
        self.limits = limits
        self.n_reduced = 0
        self._ids = 0
        self.max_points = (limits.max_points if len(runs) <= 2
                           else max(400, 2 * limits.max_points // len(runs)))

    def _id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{self._ids}"

    def _note(self, notes: list[str], text: str) -> None:
        notes.append(text)
        self.n_reduced += 1

    # ------------------------------------------------------------------ scalars
    def lines(self, title: str, keys: list[str]) -> dict[str, Any]:
        series, notes = [], []
        allv = []
        prefix = _common_parent(keys)
        for ri, run in enumerate(self.runs):
            for k in keys:
                e = run.metrics.get(k)
                if e is None or e.get("kind") != "scalar":
                    continue
                s, v = np.asarray(e["steps"]), np.asarray(e["values"], dtype=np.float64)
                allv.append(v)
                bad = int((~np.isfinite(v)).sum())
                short = k[len(prefix):] if prefix else k.rsplit("/", 1)[-1]
                label = short if len(self.runs) == 1 else (run.name if len(keys) == 1 else f"{run.name}: {short}")
                ds, dv = minmax_downsample(s, v, self.max_points)
                if len(dv) < len(v):
                    self._note(notes, f"{label}: {len(v):,} points shown as {len(dv):,} (minimum and maximum of "
                                      f"each of {self.max_points // 2:,} step buckets)")
                if bad:
                    notes.append(f"{label}: {bad} non-finite value(s) (nan/inf) not drawn")
                series.append({"run": ri, "key": k, "label": label, "x": packed_steps(ds), "y": packed(dv, "f8")})
        vals = np.concatenate(allv) if allv else np.zeros(0)
        log = wants_log(vals, prefer=all(_prefers_log(k) for k in keys))
        return {"type": "lines", "id": self._id("c"), "title": title, "log": log, "series": series, "notes": notes}

    # ------------------------------------------------------------------ arrays
    def _frames(self, steps: np.ndarray, values: Any, notes: list[str], cells: int) -> tuple[np.ndarray, list[Any]]:
        lim = self.limits
        n = len(steps)
        cap = max(1, min(lim.max_frames, lim.max_frame_values // max(1, cells)))
        idx = pick_frames(n, cap)
        if len(idx) < n:
            self._note(notes, f"{n} steps shown as {len(idx)} evenly spaced ones (first and last kept)")
        return np.asarray(steps)[idx], [values[i] for i in idx]

    def heatmap(self, key: str, ri: int, entry: dict[str, Any]) -> dict[str, Any] | None:
        values = entry["values"]
        shapes = {np.shape(v) for v in values}
        notes: list[str] = []
        if len(shapes) != 1 or len(next(iter(shapes))) != 2:
            return None
        shape = next(iter(shapes))
        f = block_factor(shape, self.limits.max_side)
        out_shape = (-(-shape[0] // f), -(-shape[1] // f))
        steps, frames = self._frames(entry["steps"], values, notes, out_shape[0] * out_shape[1])
        if f > 1:
            self._note(notes, f"{shape[0]}x{shape[1]} cells shown as {out_shape[0]}x{out_shape[1]} "
                              f"(mean of {f}x{f} blocks)")
        arr = np.stack([block_mean(fr, f) for fr in frames]) if frames else np.zeros((0, *out_shape))
        symmetric = "cos" in key.rsplit("/", 1)[-1]
        color = color_range(arr, symmetric=symmetric)
        if symmetric:
            color.update(low=min(color["low"], -1.0), high=max(color["high"], 1.0))
        return {"type": "heatmap", "id": self._id("h"), "title": self._title(key, ri), "run": ri, "key": key,
                "steps": packed_steps(steps), "frames": packed(arr, "f4"), "color": color, "notes": notes}

    def histogram(self, key: str, ri: int, entry: dict[str, Any]) -> dict[str, Any]:
        notes: list[str] = []
        bins_arr = entry.get("bins")
        logged = int(np.max(bins_arr)) if bins_arr is not None and np.size(bins_arr) and np.max(bins_arr) > 0 else 30
        n_vals = max((int(np.size(v)) for v in entry["values"]), default=0)
        bins = display_bins(logged, n_vals)
        steps, frames = self._frames(entry["steps"], entry["values"], notes, bins + n_vals // 16)
        h = histogram_frames(frames, bins)
        if bins < logged:
            notes.append(f"{n_vals} values per step binned in {bins} bins (logged with {logged}): more bins would "
                         "leave most of them empty")
        if h["nonfinite"]:
            notes.append(f"{h['nonfinite']} non-finite value(s) (nan/inf) not counted")
        if h["log"]:
            notes.append("binned in log10(value): the values are positive and span decades"
                         + (f"; {h['zeros']} zero value(s) left out" if h["zeros"] else ""))
        return {"type": "histogram", "id": self._id("g"), "title": self._title(key, ri), "run": ri, "key": key,
                "steps": packed_steps(steps), "edges": packed(h["edges"], "f8"), "counts": packed(h["counts"], "i4"),
                "quantiles": packed(h["quantiles"], "f8"), "log": h["log"], "notes": notes}

    def profile(self, key: str, ri: int, entry: dict[str, Any]) -> dict[str, Any] | None:
        values = entry["values"]
        shapes = {np.shape(v) for v in values}
        if len(shapes) != 1 or len(next(iter(shapes))) != 1:
            return None
        notes: list[str] = []
        n = next(iter(shapes))[0]
        if n > self.limits.max_points:
            return None
        steps, frames = self._frames(entry["steps"], values, notes, n)
        arr = np.stack(frames) if frames else np.zeros((0, n))
        return {"type": "profile", "id": self._id("p"), "title": self._title(key, ri), "run": ri, "key": key,
                "steps": packed_steps(steps), "frames": packed(arr, "f4"), "log": wants_log(arr), "notes": notes}

    def _title(self, key: str, ri: int) -> str:
        return key if len(self.runs) == 1 else f"{key} ({self.runs[ri].name})"

    # ------------------------------------------------------------------ sections
    def sections(self) -> tuple[list[dict[str, Any]], list[str]]:
        skipped: list[str] = []
        scalar_keys: dict[str, bool] = {}  # key -> all values positive (over runs)
        array_keys: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
        for ri, run in enumerate(self.runs):
            for k, e in run.metrics.items():
                if k.startswith(TIMING_PREFIX):
                    continue
                if e.get("kind") == "scalar":
                    v = np.asarray(e["values"], dtype=np.float64)
                    v = v[np.isfinite(v)]
                    scalar_keys[k] = scalar_keys.get(k, True) and bool(v.size == 0 or v.min() > 0)
                else:
                    array_keys[k].append((ri, e))
        groups: dict[tuple[str, str | None], dict[str, list[Any]]] = defaultdict(lambda: {"scalars": [], "arrays": []})
        for k in scalar_keys:
            groups[_section_of(k)]["scalars"].append(k)
        for k in array_keys:
            groups[_section_of(k)]["arrays"].append(k)
        sections: dict[str, dict[str, Any]] = {}
        for (sec, sub) in sorted(groups, key=lambda t: (t[0], t[1] or "")):
            g = groups[(sec, sub)]
            items: list[dict[str, Any]] = []
            for title, keys in _scalar_groups(g["scalars"], scalar_keys):
                items.append(self.lines(title, keys))
            for k in sorted(g["arrays"]):
                for ri, e in array_keys[k]:
                    kind = e.get("kind")
                    item = None
                    if kind == "histogram":
                        item = self.histogram(k, ri, e)
                    elif kind in ("heatmap", "array"):
                        item = self.heatmap(k, ri, e) or (self.profile(k, ri, e) if kind == "array" else None)
                    if item is None:
                        shapes = sorted({str(np.shape(v)) for v in e["values"]})
                        skipped.append(f"{k} ({self.runs[ri].name}): {kind} values of shape(s) {', '.join(shapes)} "
                                       "have no display (heatmaps need 2-D values of one shape)")
                        continue
                    items.append(item)
            if not items:
                continue
            s = sections.setdefault(sec, {"id": f"sec-{sec}", "title": SECTION_TITLES.get(sec, sec), "groups": []})
            s["groups"].append({"title": sub, "items": items})
        order = [s for s in SECTION_ORDER if s in sections] + sorted(s for s in sections if s not in SECTION_ORDER)
        out = [sections[s] for s in order]
        timing = self.timing()
        if timing is not None:
            out.append({"id": "sec-timing", "title": "Tracker timing", "groups": [{"title": None, "items": [timing]}]})
        out.append(self.run_info())
        return out, skipped

    def timing(self) -> dict[str, Any] | None:
        rows = []
        multi = len(self.runs) > 1
        for run in self.runs:
            for k in sorted(run.metrics):
                if not k.startswith(TIMING_PREFIX) or run.metrics[k].get("kind") != "scalar":
                    continue
                v = np.asarray(run.metrics[k]["values"], dtype=np.float64)
                v = v[np.isfinite(v)]
                if v.size == 0:
                    continue
                row = [k[len(TIMING_PREFIX):], int(v.size), float(v[0]), float(v.mean()), float(np.median(v)),
                       float(v.max()), float(v.sum() / 1000.0)]
                rows.append(([run.name] if multi else []) + row)
        if not rows:
            return None
        cols = (["run"] if multi else []) + ["tracker", "calls", "first call (ms)", "mean (ms)", "median (ms)",
                                             "max (ms)", "total (s)"]
        total_col = len(cols) - 1
        rows.sort(key=lambda r: -r[total_col])
        return {"type": "table", "id": self._id("t"), "title": "explainability/time_ms/*: host time per tracker call",
                "columns": cols, "rows": rows, "notes": ["sorted by total time; click a column to sort"]}

    def run_info(self) -> dict[str, Any]:
        runs_rows, solves_rows, items = [], [], []
        versions: dict[str, list[Any]] = {}
        for ri, run in enumerate(self.runs):
            c = run.config
            solves = c.get("solves") if isinstance(c.get("solves"), list) else []
            epochs = sum(int(s.get("epochs", 0)) for s in solves if isinstance(s, dict))
            runs_rows.append([run.name, str(run.dir), c.get("created", ""), c.get("script") or "", c.get("seed", ""),
                              ", ".join(map(str, c.get("devices", []) or [])), epochs,
                              ", ".join(map(str, c.get("sinks", []) or []))])
            for pkg, ver in (c.get("versions") or {}).items():
                versions.setdefault(pkg, [None] * len(self.runs))[ri] = ver
            for s in solves:
                if not isinstance(s, dict):
                    continue
                nets = s.get("networks") or {}
                nets_txt = ", ".join(f"{n} ({v.get('type', '?')}, {v.get('n_params', '?')} params, "
                                     f"{v.get('optimizer', '?')})" for n, v in nets.items() if isinstance(v, dict))
                pts = ", ".join(f"{n} {tuple(v)}" for n, v in (s.get("points") or {}).items())
                solves_rows.append([run.name, s.get("start_epoch", ""), s.get("epochs", ""), s.get("calls", ""),
                                    len(s.get("constraints") or []), nets_txt, pts,
                                    ", ".join(map(str, s.get("callbacks") or []))])
        items.append({"type": "table", "id": self._id("t"), "title": "Runs", "columns": [
            "run", "directory", "created", "script", "seed", "devices", "epochs", "sinks"], "rows": runs_rows,
            "notes": []})
        if solves_rows:
            items.append({"type": "table", "id": self._id("t"), "title": "solve() calls", "columns": [
                "run", "start epoch", "epochs", "calls", "constraints", "networks", "points", "callbacks"],
                "rows": solves_rows, "notes": []})
        if versions:
            cols = ["package"] + ([r.name for r in self.runs] if len(self.runs) > 1 else ["version"])
            items.append({"type": "table", "id": self._id("t"), "title": "Versions", "columns": cols,
                          "rows": [[p, *(v if v is not None else "-" for v in vs)] for p, vs in sorted(versions.items())],
                          "notes": []})
        for run in self.runs:
            if run.checkpoints:
                rows = []
                for c in run.checkpoints:
                    md = c.get("metadata") if isinstance(c.get("metadata"), dict) else {}
                    ts = _dt.datetime.fromtimestamp(c["timestamp"]).isoformat(timespec="seconds") if c.get("timestamp") else ""
                    rows.append([c["epoch"], md.get("total_loss", ""), md.get("best_value", ""), ts, c["path"]])
                items.append({"type": "table", "id": self._id("t"), "title": f"Checkpoints ({run.name})",
                              "columns": ["epoch", "total loss", "best value", "saved", "path"], "rows": rows,
                              "notes": []})
        for run in self.runs:
            if run.config:
                items.append({"type": "json", "id": self._id("j"), "title": f"config.json ({run.name})",
                              "text": json.dumps(run.config, indent=2, sort_keys=True, default=str)})
        return {"id": "sec-run", "title": "Configuration, versions, checkpoints", "groups": [{"title": None, "items": items}]}


def _sweep_spec(sw: SweepData, b: _Builder, overlaid: list[str]) -> dict[str, Any]:
    params = sorted({p for t in sw.trials for p in t.params})
    m = sw.metric or "metric"
    cols = ["rank", "trial", "state", f"best {m}", f"final {m}", *params, "error"]
    rows = []
    for i, t in enumerate(sw.trials):
        rows.append([i + 1 if t.best is not None else "", t.name, t.state, t.best, t.final,
                     *(_jsonable(t.params.get(p)) for p in params), t.error or ""])
    scatters = []
    for p in params:
        xs, ys, names = [], [], []
        for t in sw.trials:
            if t.best is None or p not in t.params:
                continue
            xs.append(_jsonable(t.params[p]))
            ys.append(t.best)
            names.append(t.name)
        if not xs:
            continue
        numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs)
        pcfg = (sw.config.get("parameters") or {}).get(p) if isinstance(sw.config.get("parameters"), dict) else None
        dist = str(pcfg.get("distribution", "")) if isinstance(pcfg, dict) else ""
        xlog = numeric and wants_log(np.asarray(xs, dtype=np.float64), prefer="log" in dist)
        ylog = wants_log(np.asarray(ys, dtype=np.float64))
        scatters.append({"type": "scatter", "id": b._id("s"), "title": f"{p} vs best {m}", "param": p, "metric": m,
                         "x": xs if numeric else [str(x) for x in xs], "categorical": not numeric, "y": ys,
                         "trials": names, "xlog": xlog, "ylog": ylog,
                         "notes": [f"red: the best trial ({names[0]})"]})
    return {"id": sw.id, "dir": str(sw.dir), "metric": sw.metric, "goal": sw.goal,
            "table": {"type": "table", "id": b._id("t"), "title": f"Trials sorted by {m} ({sw.goal})",
                      "columns": cols, "rows": rows, "notes": []},
            "scatters": scatters, "overlaid": overlaid, "n_trials": len(sw.trials)}


def _jsonable(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return json.dumps(v, default=str)


def build_spec(inputs: Inputs, limits: Limits = Limits(), title: str | None = None) -> dict[str, Any]:
    """The report's specification (JSON-able; numeric arrays packed by :mod:`._encode`).

    Runs are overlaid in the order given; each sweep adds its :attr:`Limits.max_overlay` best
    trials (named ``<sweep id>/<trial>``), and its section says which.
    """
    runs: list[RunData] = list(inputs.runs)
    problems = list(inputs.problems)
    sweep_overlay: list[tuple[SweepData, list[str]]] = []
    for sw in inputs.sweeps:
        problems.extend(sw.problems)
        chosen = sw.trials[: limits.max_overlay]
        names = []
        for t in chosen:
            run = attrs.evolve(t.run, name=f"{sw.id}/{t.name}")
            runs.append(run)
            names.append(run.name)
        sweep_overlay.append((sw, names))
    for run in runs:
        problems.extend(run.problems)
    b = _Builder(runs, limits)
    sweeps = [_sweep_spec(sw, b, names) for sw, names in sweep_overlay]
    sections, skipped = b.sections() if runs else ([], [])
    if title is None:
        if len(inputs.sweeps) == 1 and not inputs.runs:
            title = f"sweep {inputs.sweeps[0].id}"
        elif len(runs) == 1:
            title = runs[0].name
        else:
            title = f"{len(runs)} runs"
    from importlib import metadata

    def _ver(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {
        "title": title,
        "generated": _dt.datetime.now().isoformat(timespec="seconds"),
        "jno_version": _ver("jno-core"),
        "runs": [{"name": r.name, "dir": str(r.dir)} for r in runs],
        "problems": problems,
        "skipped": skipped,
        "n_reduced": b.n_reduced,
        "sweeps": sweeps,
        "sections": sections,
    }
