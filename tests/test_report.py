"""jno report without a browser: the reductions against NumPy and hand-made cases, the loader's
messages for bad input, the report's contents, sweeps, the CLI and jno.setup(report=True).
(tests/test_report_browser.py opens the reports in headless Chromium.)"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest

from helpers_report import diagnostics_records, write_run, write_sweep
from jno_core.metrics import Scalar
from jno_core.report import Limits, NotARunError, load_inputs, load_run_dir, write_report
from jno_core.report._build import build_spec
from jno_core.report._reduce import (block_mean, color_range, display_bins, histogram_frames, minmax_downsample,
                                     pick_frames)


def _unpack(p):
    return np.frombuffer(base64.b64decode(p["b64"]), dtype=np.dtype(p["dtype"]).newbyteorder("<")).reshape(p["shape"])


def _spec_of(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="jno-spec">(.*?)</script>', html, re.S)
    assert m, "no spec in the report"
    return json.loads(m.group(1))


def _items(spec):
    for s in spec["sections"]:
        for g in s["groups"]:
            yield from g["items"]


# ---------------------------------------------------------------------------- reductions
def test_minmax_downsample_matches_a_bucket_loop():
    rng = np.random.default_rng(1)
    n, max_points = 10_007, 200
    steps = np.arange(n) * 3
    values = rng.normal(size=n).cumsum()
    values[4321] = 1e6  # a spike must survive
    values[77] = np.nan
    s, v = minmax_downsample(steps, values, max_points)
    assert len(v) <= max_points
    nb = max_points // 2
    want = set()
    for b in range(nb):  # bucket b holds the indices i with i * nb // n == b
        idx = [i for i in range(n) if i * nb // n == b]
        seg = np.array([values[i] if np.isfinite(values[i]) else np.nan for i in idx])
        want.add(idx[int(np.nanargmin(seg))])
        want.add(idx[int(np.nanargmax(seg))])
    assert sorted(want) == sorted((s // 3).tolist())
    assert 1e6 in v and np.nanmin(values) in v
    assert np.all(np.diff(s) > 0)
    s2, v2 = minmax_downsample(steps[:50], values[:50], max_points)
    assert np.array_equal(s2, steps[:50])


def test_pick_frames_and_block_mean():
    idx = pick_frames(1000, 7)
    assert idx[0] == 0 and idx[-1] == 999 and len(idx) == 7
    assert np.allclose(np.diff(idx), 999 / 6, atol=1)
    assert np.array_equal(pick_frames(5, 7), np.arange(5))
    a = np.arange(35, dtype=float).reshape(5, 7)
    a[0, 0] = np.nan
    got = block_mean(a, 3)
    assert got.shape == (2, 3)
    assert got[0, 0] == pytest.approx(np.mean([1, 2, 7, 8, 9, 14, 15, 16]))  # NaN ignored
    assert got[1, 2] == pytest.approx(np.mean([27, 34]))  # an edge block averages what it holds


def test_histogram_frames_match_numpy():
    rng = np.random.default_rng(2)
    vals = [rng.normal(size=50) * (k + 1) for k in range(4)]
    vals[2][3] = np.inf
    h = histogram_frames(vals, 12)
    assert not h["log"] and h["nonfinite"] == 1
    for k, v in enumerate(vals):
        f = v[np.isfinite(v)]
        counts, edges = np.histogram(f, bins=12)
        assert np.array_equal(h["counts"][k], counts)
        assert np.allclose(h["edges"][k], edges)
        assert np.allclose(h["quantiles"][k], np.percentile(f, [0, 5, 25, 50, 75, 95, 100]))
    # a spectrum: positive over decades with exact zeros -> log10 bins, zeros left out and counted
    spec = [np.array([100.0, 3.0, 0.01, 1e-5, 0.0, 0.0]), np.array([50.0, 1.0, 1e-3, 1e-6, 0.0, 0.0])]
    h = histogram_frames(spec, 4)
    assert h["log"] and h["zeros"] == 4
    assert np.array_equal(h["counts"][0], np.histogram(np.log10(spec[0][:4]), bins=4)[0])
    assert display_bins(64, 19) == 10 and display_bins(16, 10_000) == 16


def test_color_range():
    assert color_range(np.array([[1.0, -0.2], [-0.2, 1.0]]), symmetric=True) == {
        "scale": "diverging", "low": -1.0, "high": 1.0}
    assert color_range(np.array([1e-4, 1.0]))["scale"] == "log"
    assert color_range(np.array([2.0, 3.0])) == {"scale": "linear", "low": 2.0, "high": 3.0}
    assert color_range(np.array([np.nan]))["scale"] == "linear"


# ---------------------------------------------------------------------------- contents
def test_report_of_a_run(tmp_path):
    run = write_run(tmp_path / "run", diagnostics_records(), checkpoints=[(50, {"total_loss": 0.5})])
    res = write_report([run])
    assert res.path == run / "report.html" and res.problems == ()
    html = res.path.read_text()
    assert "Copyright (c) Anaconda, Inc., and Bokeh Contributors" in html  # BokehJS licence kept
    markup = re.sub(r"<script[^>]*>.*?</script>", "<script></script>", html, flags=re.S)
    assert not re.search(r"(src|href)\s*=|<link|@import", markup), "the report must not load anything"
    spec = _spec_of(html)
    titles = [s["title"] for s in spec["sections"]]
    assert titles == ["Losses", "Explainability", "Tracker timing", "Configuration, versions, checkpoints"]
    items = {i["title"]: i for i in _items(spec)}
    loss = items["loss/*"]
    assert loss["log"] and {s["key"] for s in loss["series"]} == {"loss/total", "loss/constraint_0", "loss/constraint_1"}
    total = next(s for s in loss["series"] if s["key"] == "loss/total")
    assert np.array_equal(_unpack(total["x"]), np.arange(12) * 10)
    assert np.allclose(_unpack(total["y"]), 10.0 ** (-np.arange(12) / 3))
    assert items["explainability/gradient_norm/constraint_0"]["log"]
    assert not items["explainability/residual/constraint_0/mean"]["log"]  # signed values: linear
    cos = items["explainability/cos_sim_matrix"]
    frames = _unpack(cos["frames"])
    assert frames.shape == (12, 2, 2) and np.allclose(frames[:, 0, 1], np.cos(np.arange(12)), atol=1e-6)
    assert cos["color"] == {"scale": "diverging", "low": -1.0, "high": 1.0}
    hist = items["explainability/residual/constraint_0/histogram"]
    # 40 values per step: 2 sqrt(40) -> 12 of the 16 logged bins, and the chart says so
    assert _unpack(hist["counts"]).shape == (12, 12) and _unpack(hist["counts"]).sum(axis=1).tolist() == [40] * 12
    assert any("binned in 12 bins (logged with 16)" in t for t in hist["notes"])
    timing = items["explainability/time_ms/*: host time per tracker call"]
    rows = {r[0]: r for r in timing["rows"]}
    ms = 20.0 + 2 * np.arange(12)
    assert rows["loss_landscape"][1:] == [12, 20.0, pytest.approx(ms.mean()), pytest.approx(np.median(ms)), 42.0,
                                          pytest.approx(ms.sum() / 1000)]
    assert timing["rows"][0][0] == "loss_landscape"  # sorted by total time
    ck = next(i for i in _items(spec) if i["title"].startswith("Checkpoints"))
    assert ck["rows"][0][:2] == [50, 0.5]
    assert any(i["type"] == "json" for i in _items(spec))
    # time_ms keys make the table, not charts
    assert not any(i.get("type") == "lines" and "time_ms" in i["title"] for i in _items(spec))


def test_large_runs_are_downsampled_and_say_so(tmp_path):
    n = 9_000
    recs = [(i, {"loss/total": Scalar(1.0 / (i + 1) + (1.0 if i == 6_001 else 0.0))}) for i in range(n)]
    run = write_run(tmp_path / "big", recs)
    spec = build_spec(load_inputs([run]), Limits(max_points=1000))
    (loss,) = [i for i in _items(spec) if i["type"] == "lines"]
    y = _unpack(loss["series"][0]["y"])
    assert len(y) <= 1000 and y.max() == pytest.approx(1.0 / 6_002 + 1.0)  # the spike is kept
    assert any("9,000 points shown as" in t for t in loss["notes"]) and spec["n_reduced"] == 1


def test_two_runs_overlaid(tmp_path):
    a = write_run(tmp_path / "a", diagnostics_records(seed=0))
    b = write_run(tmp_path / "b", diagnostics_records(seed=1, scale=3.0))
    spec = build_spec(load_inputs([a, b]))
    assert [r["name"] for r in spec["runs"]] == ["a", "b"]
    loss = next(i for i in _items(spec) if i["title"] == "loss/*")
    assert sorted({s["run"] for s in loss["series"]}) == [0, 1] and len(loss["series"]) == 6
    assert any(s["label"] == "b: total" for s in loss["series"])
    heat = [i for i in _items(spec) if i["type"] == "heatmap" and i["key"] == "explainability/loss_landscape"]
    assert sorted(h["run"] for h in heat) == [0, 1]


# ---------------------------------------------------------------------------- bad input
def test_not_a_run_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotARunError, match=re.escape(str(tmp_path / "empty")) + ".*not a run directory"):
        load_run_dir(tmp_path / "empty")
    write_run(tmp_path / "group" / "r1", diagnostics_records(2))
    with pytest.raises(NotARunError, match=r"contains 1 run directory \(r1\).*jno report"):
        write_report([tmp_path / "group"])
    with pytest.raises(NotARunError, match="does not exist"):
        write_report([tmp_path / "nope"])


def test_run_without_metrics_and_corrupt_files(tmp_path):
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "config.json").write_text(json.dumps({"name": "fresh", "versions": {"jax": "x"}}))
    run = write_run(tmp_path / "run", diagnostics_records(4))
    bad = next((run / "arrays").glob("explainability__loss_landscape/*.npz"))
    bad.write_bytes(b"not a zip file")
    (run / "checkpoints.csv").write_text('epoch,path,timestamp,metadata\n10,/x,1.5,{"a": 1}\n20,/y,oops,{}\n')
    res = write_report([fresh, run, tmp_path / "missing"], tmp_path / "out.html")
    probs = "\n".join(res.problems)
    assert f"{fresh / 'metrics.csv'}: no metrics logged yet" in probs
    assert str(bad) in probs and "unreadable array file" in probs
    assert f"{tmp_path / 'missing'} does not exist" in probs
    assert f"{run / 'checkpoints.csv'}: skipped 1 malformed row(s)" in probs
    spec = _spec_of(res.path.read_text())
    assert spec["problems"] == list(res.problems)
    keys = {i.get("key") for i in _items(spec)}
    assert "explainability/cos_sim_matrix" in keys and "explainability/loss_landscape" not in keys
    (fresh / "config.json").write_text("{broken")
    data = load_run_dir(fresh)
    assert any(str(fresh / "config.json") in p and "not readable as JSON" in p for p in data.problems)


# ---------------------------------------------------------------------------- sweeps
def test_sweep_table_sorted_by_metric(tmp_path):
    spec = build_spec(load_inputs([write_sweep(tmp_path, "minimize")]), Limits(max_overlay=2))
    (sw,) = spec["sweeps"]
    rows = sw["table"]["rows"]
    cols = sw["table"]["columns"]
    assert cols == ["rank", "trial", "state", "best loss/total", "final loss/total", "act", "lr", "error"]
    # best (minimum) values: trial 1 -> 0.025, trial 2 -> 0.1, trial 0 -> 0.25; the failed trial last;
    # the best maximum is the middle value: trial 0 -> 0.5, trial 2 -> 0.2, trial 1 -> 0.05
    assert [r[1] for r in rows] == ["trial-0001", "trial-0002", "trial-0000", "trial-0003"]
    assert rows[0][3] == pytest.approx(0.025) and rows[0][4] == pytest.approx(0.04)
    assert rows[-1][2] == "failed" and rows[-1][-1] == "NaN loss" and rows[-1][3] is None
    lr = next(s for s in sw["scatters"] if s["param"] == "lr")
    assert lr["xlog"] and lr["trials"][0] == "trial-0001" and lr["x"][0] == pytest.approx(0.01)
    act = next(s for s in sw["scatters"] if s["param"] == "act")
    assert act["categorical"] and sorted(set(act["x"])) == ["relu", "tanh"]
    assert sw["overlaid"] == ["s1/trial-0001", "s1/trial-0002"] and sw["n_trials"] == 4
    assert [r["name"] for r in spec["runs"]] == sw["overlaid"]
    spec = build_spec(load_inputs([write_sweep(tmp_path, "maximize")]))
    assert [r[1] for r in spec["sweeps"][0]["table"]["rows"]][:3] == ["trial-0000", "trial-0002", "trial-0001"]


# ---------------------------------------------------------------------------- CLI and setup
def test_cli(tmp_path, capsys):
    from jno_core.cli import main

    run = write_run(tmp_path / "run", diagnostics_records(3))
    out = tmp_path / "r.html"
    assert main(["report", str(run), "-o", str(out)]) == 0
    assert out.is_file() and "wrote" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "nothing")]) == 1
    assert f"{tmp_path / 'nothing'} does not exist" in capsys.readouterr().err
    assert main(["report"]) == 2
    assert main(["report", str(run), "--max-points", "1"]) == 2
    assert "--max-points must be at least 2, received 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "report" in capsys.readouterr().out


def test_setup_report_option(tmp_path, monkeypatch):
    import jno
    from jno_core.errors import ConfigError
    from jno_core.sinkconfig import resolve_report

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JNO_REPORT", raising=False)
    assert resolve_report(None) is False
    (tmp_path / "jno.toml").write_text("report = true\n")
    assert resolve_report(None) is True
    monkeypatch.setenv("JNO_REPORT", "0")
    assert resolve_report(None) is False and resolve_report(True) is True
    monkeypatch.setenv("JNO_REPORT", "maybe")
    with pytest.raises(ConfigError, match="JNO_REPORT"):
        resolve_report(None)
    monkeypatch.delenv("JNO_REPORT")
    with pytest.raises(ConfigError, match="reads the files of the 'csv' sink"):
        jno.setup("x.py", name="nocsv", root=tmp_path / "runs", sinks="none", report=True)
    assert not (tmp_path / "runs" / "x" / "nocsv").exists()
    d = jno.setup("x.py", name="r", root=tmp_path / "runs", sinks=["csv"], report=True)
    jno.finish()
    assert d.run.report_path == Path(d) / "report.html" and d.run.report_path.is_file()
    spec = _spec_of(d.run.report_path.read_text())
    assert any("no metrics logged yet" in p for p in spec["problems"])
