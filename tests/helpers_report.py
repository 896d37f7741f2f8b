"""Run directories for the report's tests, written by the real csv sink (no training)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Mapping

import numpy as np

from jno_core.metrics import Heatmap, Histogram, Scalar


def write_run(run_dir: Path, records: list[tuple[int, Mapping[str, Any]]], config: Mapping[str, Any] | None = None,
              checkpoints: list[tuple[int, dict[str, Any]]] = ()) -> Path:
    """Write ``records`` (``(step, {key: metric})``) with jno-plugin-csv's sink into ``run_dir``
    and a ``config.json``."""
    from jno_plugin_csv import CsvSink

    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = {"name": run_dir.name, "project": "test", "created": "2026-01-01T00:00:00", "seed": 0,
           "versions": {"jax": "0.0-test", "numpy": np.__version__}, "sinks": ["csv"], "solves": [
               {"start_epoch": 0, "epochs": 100, "calls": 1, "constraints": ["mse(...)", "mse(...)"],
                "networks": {"net0": {"type": "MLP", "n_params": 17, "optimizer": "adam"}},
                "points": {"line0:interior": [19, 1]}, "callbacks": ["gradient_norms"]}]}
    cfg.update(config or {})
    (run_dir / "config.json").write_text(json.dumps(cfg))
    sink = CsvSink(SimpleNamespace(dir=run_dir, sink_options={}))
    sink.log_metrics_batch(records=records)
    for epoch, md in checkpoints:
        sink.save_checkpoint(path=str(run_dir / "checkpoints" / str(epoch)), epoch=epoch, metadata=md)
    sink.close_run()
    return run_dir


def diagnostics_records(n_steps: int = 12, every: int = 10, seed: int = 0, scale: float = 1.0) -> list:
    """Records like script 09's: losses, gradient norms, a 2x2 cosine matrix, a landscape,
    residual histograms, tracker timings."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_steps):
        step = i * every
        loss = scale * 10.0 ** (-i / 3)
        m: dict[str, Any] = {
            "loss/total": Scalar(loss),
            "loss/constraint_0": Scalar(0.7 * loss),
            "loss/constraint_1": Scalar(0.3 * loss),
            "explainability/gradient_norm/constraint_0": Scalar(2.0 * 10.0 ** (-i / 4)),
            "explainability/residual/constraint_0/mean": Scalar(float(rng.normal())),
            "explainability/cos_sim_matrix": Heatmap(np.array([[1.0, np.cos(i)], [np.cos(i), 1.0]])),
            "explainability/loss_landscape": Heatmap(rng.random((5, 5)) + i),
            "explainability/residual/constraint_0/histogram": Histogram(rng.normal(size=40) * (i + 1), bins=16),
            "explainability/time_ms/gradient_norms": Scalar(5.0 + i),
            "explainability/time_ms/loss_landscape": Scalar(20.0 + 2 * i),
        }
        out.append((step, m))
    return out


def write_sweep(tmp_path: Path, goal: str) -> Path:
    """A sweep directory (sweep.json + runs/trial-000k/) of three complete trials and a failed one."""
    d = tmp_path / f"sweep-{goal}"
    d.mkdir()
    (d / "sweep.json").write_text(json.dumps({"id": "s1", "method": "random",
                                              "metric": {"name": "loss/total", "goal": goal},
                                              "parameters": {"lr": {"min": 1e-4, "max": 1e-1,
                                                                            "distribution": "log_uniform_values"}}}))
    finals = {0: 0.5, 1: 0.05, 2: 0.2}
    for t, fin in finals.items():
        recs = [(s, {"loss/total": Scalar(v), "train/x": Scalar(1.0)}) for s, v in enumerate([fin / 2, fin, 0.8 * fin])]
        write_run(d / "runs" / f"trial-{t:04d}", recs, config={"sweep": {
            "id": "s1", "trial": t, "params": {"lr": 10.0 ** -(t + 1), "act": ["tanh", "relu", "tanh"][t]},
            "state": "complete", "error": None}})
    write_run(d / "runs" / "trial-0003", [], config={"sweep": {"id": "s1", "trial": 3, "params": {"lr": 0.5},
                                                                 "state": "failed", "error": "NaN loss"}})
    return d
