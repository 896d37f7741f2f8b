"""The wandb sink against real offline W&B runs, read back from the run's ``.wandb`` record file
(history rows, summary, config, artifact manifest and metadata, image pixels), plus the
option handling (user keys win, weave, offline fallback, monotone steps) on a stand-in run."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

import jno_core.run as jrun
from jno_core import plugins
from jno_core.colormap import heatmap_to_rgb
from jno_core.metrics import Array, Heatmap, Histogram, Scalar
from jno_core.replay import read_metrics, sync_main
from jno_core.testing import SinkConformance
from jno_plugin_wandb import WandbSink, artifact_name, read_offline_run
from jno_plugin_wandb._sink import DEFAULT_INIT_TIMEOUT

wandb = pytest.importorskip("wandb")
#: seconds to wait for W&B's service to write a finished run's last records
WAIT = 20.0
PIL_Image = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module", autouse=True)
def offline_wandb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every test in this module: offline, silent, and every W&B folder under a temp dir."""
    home = tmp_path_factory.mktemp("wandb-home")
    with pytest.MonkeyPatch.context() as mp:
        for var, value in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONSOLE": "off",
                           "WANDB_DISABLE_GIT": "true", "WANDB_DISABLE_CODE": "true",
                           "WANDB_DIR": str(home), "WANDB_CACHE_DIR": str(home / "cache"),
                           "WANDB_DATA_DIR": str(home / "data"), "WANDB_CONFIG_DIR": str(home / "config"),
                           "WANDB_ARTIFACT_DIR": str(home / "artifacts")}.items():
            mp.setenv(var, value)
        mp.delenv("WANDB_API_KEY", raising=False)
        mp.chdir(home)
        yield home


def read_back_offline(run_dir: Path) -> dict[str, dict[str, list]]:
    """``{key: {"steps", "values"}}`` from the offline run under ``run_dir``."""
    rec = read_offline_run(run_dir, wait=WAIT)
    out: dict[str, dict[str, list]] = {}
    for row in rec.history:
        for key, value in row.items():
            if not key.startswith("_"):
                entry = out.setdefault(key, {"steps": [], "values": []})
                entry["steps"].append(int(row["_step"]))
                entry["values"].append(value)
    return out


class TestWandbConformance(SinkConformance):
    entry_point = "wandb"
    distribution = "jno-plugin-wandb"
    sink_name = "wandb"

    def read_back(self, run_dir: Path) -> dict[str, dict[str, list]]:
        return read_back_offline(run_dir)


# ---------------------------------------------------------------------------- one shared real run
CHECKPOINT_META = {"epoch": 20, "total_loss": np.float32(0.25), "individual_losses": np.array([0.2, 0.05]),
                   "timestamp": 1717000000.0}
COS = np.array([[1.0, -0.2], [-0.2, 1.0]])
RES = np.random.default_rng(1).normal(size=300)
SPEC = np.array([4.0, 1.0, 0.25, np.nan])


@pytest.fixture(scope="module")
def shared(offline_wandb: Path) -> dict[str, Any]:
    """One run through jno.setup(sinks=["csv"], wandb={...}) and the metrics bus: scalars at
    0, 10, 20 (nan and inf included), a heatmap, histogram and array at 10, a checkpoint at 20,
    then a batch with a decreasing step (15)."""
    root = offline_wandb / "shared"
    plugins.reset()
    path = jrun.setup(str(root / "poisson.py"), name="shared run:1", root=root / "runs", sinks=["csv"],
                      wandb={"project": "jNO-test", "notes": "from the tests"})
    run = path.run
    ckpt = root / "ckpt" / "20"
    ckpt.mkdir(parents=True)
    (ckpt / "params.npz").write_bytes(b"0123456789")
    (ckpt / "meta.json").write_text("{}")
    (ckpt / "opt").mkdir()
    (ckpt / "opt" / "state.npz").write_bytes(b"abc")  # a nested file keeps its relative path
    run.bus.put(0, {"loss/total": Scalar(2.0), "loss/nan": Scalar(float("nan")), "loss/inf": Scalar(float("inf"))})
    run.bus.put(10, {"loss/total": Scalar(1.0), "explainability/cos_sim_matrix": Heatmap(COS),
                     "residuals/pde": Histogram(RES, bins=16), "ntk/eigenvalues": Array(SPEC)})
    run.bus.put(20, {"loss/total": Scalar(0.5)})
    run.bus.put_checkpoint(str(ckpt), 20, dict(CHECKPOINT_META, checkpoint_dir=str(ckpt)))
    with pytest.warns(RuntimeWarning, match="must not decrease"):  # raised on the delivery thread
        run.bus.put(15, {"late": Scalar(7.0)})
        jrun.finish()
    return {"dir": Path(path), "run": run, "rec": read_offline_run(Path(path), wait=WAIT), "ckpt": ckpt}


def test_init_arguments_user_keys_win(shared: dict[str, Any]) -> None:
    rec = shared["rec"]
    assert rec.run["project"] == "jNO-test"          # the user's project beats the script stem
    assert rec.run["name"] == "shared run:1"          # the jno run's name
    cfg = rec.run["config"]
    assert cfg["project"] == "poisson" and cfg["name"] == "shared run:1"  # config.json went to W&B
    assert cfg["sinks"] == ["csv", "wandb"]
    assert rec.path.is_relative_to(shared["dir"] / "wandb")  # dir=<run dir>


def test_history_rows_hold_the_scalars(shared: dict[str, Any]) -> None:
    rec = shared["rec"]
    assert [r["_step"] for r in rec.history] == [0, 10, 20]
    steps, values = rec.series("loss/total")
    assert steps == [0, 10, 20] and values == [2.0, 1.0, 0.5]
    assert np.isnan(rec.history[0]["loss/nan"]) and rec.history[0]["loss/inf"] == float("inf")
    # the batch with step 15 arrived after step 20 and was logged at step 20, not dropped
    assert rec.history[2]["late"] == 7.0


def test_history_matches_the_csv_sink(shared: dict[str, Any]) -> None:
    csv_data = read_metrics(shared["dir"])
    wb = read_back_offline(shared["dir"])
    np.testing.assert_array_equal(csv_data["loss/total"]["values"], wb["loss/total"]["values"])
    np.testing.assert_array_equal(csv_data["loss/total"]["steps"], wb["loss/total"]["steps"])


def test_summary_has_the_last_values(shared: dict[str, Any]) -> None:
    s = shared["rec"].summary
    assert s["loss/total"] == 0.5 and s["late"] == 7.0 and s["_step"] == 20
    assert np.isnan(s["loss/nan"])
    assert s["residuals/pde"]["_type"] == "histogram"


def test_heatmap_is_a_colour_mapped_image(shared: dict[str, Any]) -> None:
    rec = shared["rec"]
    img = rec.history[1]["explainability/cos_sim_matrix"]
    assert img["_type"] == "image-file" and (img["width"], img["height"]) == (64, 64)
    assert "min -0.2" in img["caption"] and "max 1" in img["caption"]
    pixels = np.asarray(PIL_Image.open(rec.files_dir / img["path"]).convert("RGB"))
    np.testing.assert_array_equal(pixels, heatmap_to_rgb(COS)[0])


def test_histograms_match_numpy(shared: dict[str, Any]) -> None:
    h = shared["rec"].history[1]["residuals/pde"]
    counts, edges = np.histogram(RES, bins=16)
    assert h["values"] == counts.tolist()
    np.testing.assert_allclose(h["bins"], edges)
    a = shared["rec"].history[1]["ntk/eigenvalues"]
    finite = SPEC[np.isfinite(SPEC)]
    counts, edges = np.histogram(finite, bins=len(SPEC))  # min(64, size) bins, nan dropped
    assert a["values"] == counts.tolist() and sum(a["values"]) == 3
    np.testing.assert_allclose(a["bins"], edges)


def test_checkpoint_artifact_manifest_and_metadata(shared: dict[str, Any]) -> None:
    (art,) = shared["rec"].artifacts
    assert art["name"] == "shared-run-1-checkpoint" and art["type"] == "checkpoint"
    assert art["files"] == {"params.npz": 10, "meta.json": 2, "opt/state.npz": 3}
    meta = art["metadata"]
    assert meta["epoch"] == 20 and meta["total_loss"] == pytest.approx(0.25)
    assert meta["individual_losses"] == [0.2, 0.05] and meta["timestamp"] == 1717000000.0
    assert meta["checkpoint_dir"] == str(shared["ckpt"])
    assert set(art["aliases"]) >= {"latest", "epoch-20"}


def test_jno_sync_uploads_a_csv_recorded_run(offline_wandb: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plugins.reset()
    path = jrun.setup(str(offline_wandb / "sync" / "heat.py"), name="s", root=offline_wandb / "sync" / "runs")
    assert path.run.sink_names == ["csv"]
    for step in (0, 3, 6):
        path.run.bus.put(step, {"loss/total": Scalar(1.0 / (step + 1)), "hm": Heatmap(np.eye(2) * step)})
    jrun.finish()
    assert not (Path(path) / "wandb").exists()
    assert sync_main([str(path), "--to", "wandb", "-o", "project=synced"]) == 0
    assert "replayed 3 steps (2 keys" in capsys.readouterr().out
    rec = read_offline_run(Path(path), wait=WAIT)
    assert rec.run["project"] == "synced" and rec.run["name"] == "s" and rec.run["config"]["project"] == "heat"
    steps, values = rec.series("loss/total")
    assert steps == [0, 3, 6]
    np.testing.assert_allclose(values, [1.0, 0.25, 1 / 7], rtol=1e-12)
    assert [r["hm"]["_type"] for r in rec.history] == ["image-file"] * 3


# ---------------------------------------------------------------------------- a stand-in wandb run
class _FakeRun:
    def __init__(self, offline: bool = False, project: str = "jNO") -> None:
        self.offline, self.disabled, self.project = offline, False, project
        self.logged: list[tuple[int, dict[str, Any]]] = []
        self.finished = 0

    def log(self, data: dict[str, Any], step: int) -> None:
        self.logged.append((step, data))

    def finish(self) -> None:
        self.finished += 1


def _jno_run(tmp_path: Path, **options: Any) -> types.SimpleNamespace:
    return types.SimpleNamespace(dir=tmp_path, name="r", config={"project": "poisson"},
                                 sink_options={"wandb": {"project": "poisson", **options}})


@pytest.fixture
def fake_init(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def init(**kwargs: Any) -> _FakeRun:
        calls.append(kwargs)
        if kwargs.get("_fail") and len(calls) == 1:
            raise wandb.errors.CommError("network is unreachable")
        return _FakeRun(offline=kwargs.get("mode") == "offline", project=kwargs["project"])

    monkeypatch.setattr(wandb, "init", init)
    return calls


def test_init_kwargs_defaults_and_jno_options_not_forwarded(tmp_path: Path, fake_init: list) -> None:
    sink = WandbSink(_jno_run(tmp_path, project="jNO", tags=["a"], weave=False))
    (kw,) = fake_init
    assert kw["project"] == "jNO" and kw["tags"] == ["a"] and kw["name"] == "r" and kw["dir"] == str(tmp_path)
    assert kw["config"] == {"project": "poisson"}
    assert "weave" not in kw and "offline_fallback" not in kw
    assert kw["settings"].init_timeout == DEFAULT_INIT_TIMEOUT
    sink.close_run()
    sink.close_run()
    assert sink.wandb_run.finished == 1


def test_steps_never_decrease(tmp_path: Path, fake_init: list) -> None:
    sink = WandbSink(_jno_run(tmp_path))
    sink.log_metrics(step=5, metrics={"a": Scalar(1.0)})
    with pytest.warns(RuntimeWarning, match="logged at step 5"):
        sink.log_metrics(step=3, metrics={"a": Scalar(2.0)})
    sink.log_metrics(step=2, metrics={"a": Scalar(3.0)})  # counted, not warned again
    with pytest.warns(RuntimeWarning, match="no finite values"):
        sink.log_metrics(step=9, metrics={"a": Scalar(4.0), "h": Histogram([np.nan])})
    assert [(s, d["a"]) for s, d in sink.wandb_run.logged] == [(5, 1.0), (5, 2.0), (5, 3.0), (9, 4.0)]
    assert "h" not in sink.wandb_run.logged[-1][1]  # no finite values: not sent
    with pytest.warns(RuntimeWarning, match="2 batches"):
        sink.close_run()
    with pytest.raises(RuntimeError, match="close_run"):
        sink.log_metrics(step=10, metrics={"a": Scalar(0.0)})


def test_batch_logs_one_row_per_step_in_order(tmp_path: Path, fake_init: list) -> None:
    sink = WandbSink(_jno_run(tmp_path, weave=False))
    sink.log_metrics_batch(records=[
        (0, {"loss/total": Scalar(1.0)}),
        (50, {"loss/total": Scalar(0.5)}),
        (50, {"explainability/x": Scalar(7.0), "loss/total": Scalar(0.4)}),  # same step: one row
        (99, {"perf/epochs_per_s": Scalar(float("inf")), "h": Histogram(np.arange(10.0), bins=5)}),
    ])
    sink.log_metrics_batch(records=[(100, {"loss/total": Scalar(float("nan"))})])
    logged = sink.wandb_run.logged
    assert [s for s, _ in logged] == [0, 50, 99, 100]
    assert logged[1][1] == {"loss/total": 0.4, "explainability/x": 7.0}  # later keys win, as in W&B
    assert logged[2][1]["perf/epochs_per_s"] == float("inf")
    hist = logged[2][1]["h"]
    counts, edges = np.histogram(np.arange(10.0), bins=5)
    assert hist.histogram == counts.tolist() and hist.bins == edges.tolist()
    assert np.isnan(logged[3][1]["loss/total"])
    with pytest.warns(RuntimeWarning, match="logged at step 100"):
        sink.log_metrics_batch(records=[(90, {"a": Scalar(1.0)}), (120, {"a": Scalar(2.0)})])
    assert [(s, d) for s, d in logged[4:]] == [(100, {"a": 1.0}), (120, {"a": 2.0})]
    sink.close_run()


def _fake_weave(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    import importlib.machinery

    called: list[str] = []
    mod = types.ModuleType("weave")
    mod.__spec__ = importlib.machinery.ModuleSpec("weave", None)
    mod.init = called.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "weave", mod)
    return called


def test_weave_uses_the_wandb_project_never_a_fixed_entity(tmp_path: Path, fake_init: list,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    called = _fake_weave(monkeypatch)
    WandbSink(_jno_run(tmp_path, project="jNO")).close_run()
    WandbSink(_jno_run(tmp_path, project="jNO", entity="team")).close_run()
    WandbSink(_jno_run(tmp_path, project="jNO", weave=False)).close_run()
    WandbSink(_jno_run(tmp_path, project="jNO", mode="offline")).close_run()  # offline: no server for weave
    assert called == ["jNO", "team/jNO"]
    monkeypatch.delitem(sys.modules, "weave")
    monkeypatch.setattr("jno_plugin_wandb._sink._weave_installed", lambda: False)
    with pytest.warns(RuntimeWarning, match="pip install weave"):
        WandbSink(_jno_run(tmp_path, weave=True)).close_run()


def test_online_failure_falls_back_to_offline(tmp_path: Path, fake_init: list, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "online")
    with pytest.warns(RuntimeWarning, match="logging offline"):
        sink = WandbSink(_jno_run(tmp_path, _fail=True))
    assert [c.get("mode") for c in fake_init] == [None, "offline"] and sink.offline
    sink.close_run()
    fake_init.clear()
    with pytest.raises(RuntimeError, match="wandb login") as info:
        WandbSink(_jno_run(tmp_path, _fail=True, offline_fallback=False))
    assert "WANDB_MODE=offline" in str(info.value)


def test_missing_wandb_says_pip_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ImportError, match="pip install wandb") as info:
        WandbSink(_jno_run(tmp_path))
    assert "plugins/jno-plugin-wandb" in str(info.value)


def test_artifact_name_is_sanitized() -> None:
    assert artifact_name("20250101-120000-checkpoint") == "20250101-120000-checkpoint"
    assert artifact_name("my run: v1/x-checkpoint") == "my-run-v1-x-checkpoint"
    assert artifact_name("///") == "jno-checkpoint"
    assert len(artifact_name("a" * 300)) == 128


def test_sweep_trial_is_grouped_by_sweep_with_its_values_in_config(tmp_path: Path, fake_init: list) -> None:
    run = types.SimpleNamespace(dir=tmp_path, name="trial-0003", sink_options={"wandb": {}}, config={
        "project": "poisson", "user": {"lr": 0.01, "width": 32},
        "sweep": {"id": "abcd1234", "trial": 3, "params": {"lr": 0.01}, "state": "running", "error": None}})
    sink = WandbSink(run)
    (kw,) = fake_init
    assert kw["group"] == "abcd1234" and kw["name"] == "trial-0003"
    assert kw["config"]["lr"] == 0.01 and kw["config"]["width"] == 32 and kw["config"]["sweep"]["trial"] == 3
    sink.close_run()
    # a user's own group wins
    WandbSink(types.SimpleNamespace(**{**vars(run), "sink_options": {"wandb": {"group": "mine"}}})).close_run()
    assert fake_init[1]["group"] == "mine"
