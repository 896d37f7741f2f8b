"""The tensorboard sink: event files read back with tensorboard's EventAccumulator hold the
logged values (scalars incl. nan, colour-mapped heatmap pixels, histogram statistics), and
`jno sync --to tensorboard` writes them for a csv-recorded run."""

from __future__ import annotations

import io
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import jno_core.run as jrun
from jno_core import plugins
from jno_core.colormap import heatmap_to_rgb
from jno_core.metrics import Array, Heatmap, Histogram, Scalar
from jno_core.replay import sync_main
from jno_core.testing import SinkConformance
from jno_plugin_tensorboard import TensorBoardSink

ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
PIL_Image = pytest.importorskip("PIL.Image")


def load_events(logdir: Path) -> Any:
    acc = ea.EventAccumulator(str(logdir), size_guidance={ea.SCALARS: 0, ea.IMAGES: 0, ea.HISTOGRAMS: 0,
                                                          ea.COMPRESSED_HISTOGRAMS: 0, ea.TENSORS: 0})
    acc.Reload()
    return acc


def read_events(logdir: Path) -> dict[str, dict[str, list]]:
    """``{tag: {"steps", "values"}}``: scalar values, decoded RGB images, histogram protos."""
    acc = load_events(logdir)
    tags = acc.Tags()
    out: dict[str, dict[str, list]] = {}
    for tag in tags["scalars"]:
        ev = acc.Scalars(tag)
        out[tag] = {"steps": [e.step for e in ev], "values": [e.value for e in ev]}
    for tag in tags["images"]:
        ev = acc.Images(tag)
        out[tag] = {"steps": [e.step for e in ev],
                    "values": [np.asarray(PIL_Image.open(io.BytesIO(e.encoded_image_string)).convert("RGB")) for e in ev]}
    for tag in tags["histograms"]:
        ev = acc.Histograms(tag)
        out[tag] = {"steps": [e.step for e in ev], "values": [e.histogram_value for e in ev]}
    return out


def _run(tmp_path: Path, **options: Any) -> types.SimpleNamespace:
    d = tmp_path / "run"
    d.mkdir(exist_ok=True)
    return types.SimpleNamespace(dir=d, name="run", config={}, sink_options={"tensorboard": options})


class TestTensorBoardConformance(SinkConformance):
    entry_point = "tensorboard"
    distribution = "jno-plugin-tensorboard"
    sink_name = "tensorboard"

    def read_back(self, run_dir: Path) -> dict[str, dict[str, list]]:
        return read_events(run_dir / "tensorboard")


def test_values_read_back(tmp_path: Path) -> None:
    sink = TensorBoardSink(_run(tmp_path))
    cos = np.array([[1.0, -0.5], [-0.5, 1.0]])
    land = np.arange(12.0).reshape(3, 4)
    land[1, 2] = np.nan
    res = np.random.default_rng(0).normal(size=400)
    spec = np.array([5.0, 2.0, 1.0, 0.5, np.inf])
    sink.log_metrics(step=0, metrics={"loss/total": Scalar(1.25), "loss/bad": Scalar(float("nan")),
                                      "explainability/cos_sim_matrix": Heatmap(cos)})
    sink.log_metrics(step=50, metrics={"loss/total": Scalar(0.5), "landscape": Heatmap(land),
                                       "residuals/pde": Histogram(res, bins=20), "ntk/eigs": Array(spec)})
    sink.flush_metrics()
    data = read_events(tmp_path / "run" / "tensorboard")  # readable after a flush, before close
    assert data["loss/total"]["steps"] == [0, 50]
    np.testing.assert_array_equal(data["loss/total"]["values"], [1.25, 0.5])
    assert np.isnan(data["loss/bad"]["values"][0])
    sink.close_run()
    # heatmaps: exactly the colour-mapped pixels (PNG is lossless)
    img = data["explainability/cos_sim_matrix"]["values"][0]
    np.testing.assert_array_equal(img, heatmap_to_rgb(cos)[0])
    assert img.shape == (64, 64, 3)
    np.testing.assert_array_equal(img[0, 0], [0xFD, 0xE7, 0x25])   # the maximum (1.0) is yellow
    np.testing.assert_array_equal(img[0, 63], [0x44, 0x01, 0x54])  # the minimum (-0.5) is dark purple
    lim = data["landscape"]["values"][0]
    assert lim.shape == (3 * 22, 4 * 22, 3)
    np.testing.assert_array_equal(lim[1 * 22 + 5, 2 * 22 + 5], [255, 0, 255])  # nan cell is magenta
    # histograms: statistics of the values (non-finite dropped)
    h = data["residuals/pde"]["values"][0]
    assert data["residuals/pde"]["steps"] == [50]
    assert h.num == 400 and h.min == pytest.approx(res.min()) and h.max == pytest.approx(res.max())
    assert h.sum == pytest.approx(res.sum()) and h.sum_squares == pytest.approx(res @ res)
    counts, _ = np.histogram(res, bins=20)
    assert sum(h.bucket) == 400
    assert [c for c in h.bucket if c] == [float(c) for c in counts if c]
    a = data["ntk/eigs"]["values"][0]
    assert a.num == 4 and a.max == 5.0 and a.min == 0.5 and a.sum == pytest.approx(8.5)


def test_batch_writes_one_event_per_record_with_every_value(tmp_path: Path) -> None:
    sink = TensorBoardSink(_run(tmp_path))
    res = np.linspace(-2.0, 3.0, 41)
    sink.log_metrics_batch(records=[
        (0, {"loss/total": Scalar(1.0), "odd key!": Scalar(2.0)}),
        (50, {"loss/total": Scalar(0.5), "hm": Heatmap(np.eye(3)), "h": Histogram(res, bins=8)}),
        (50, {"explainability/x": Scalar(float("inf"))}),
    ])
    sink.log_metrics(step=100, metrics={"loss/total": Scalar(0.25)})
    sink.close_run()
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    events = [e for e in EventFileLoader(str(sink.path)).Load() if e.HasField("summary")]
    assert [e.step for e in events] == [0, 50, 50, 100]  # one event per record, in order
    assert [len(e.summary.value) for e in events] == [2, 3, 1, 1]
    data = read_events(tmp_path / "run" / "tensorboard")
    assert data["loss/total"]["steps"] == [0, 50, 100]
    np.testing.assert_array_equal(data["loss/total"]["values"], [1.0, 0.5, 0.25])
    assert data["odd_key_"]["values"] == [2.0]  # tag cleaned as tensorboardX cleans it
    assert data["explainability/x"]["values"] == [float("inf")]
    np.testing.assert_array_equal(data["hm"]["values"][0], heatmap_to_rgb(np.eye(3))[0])
    h = data["h"]["values"][0]
    counts, edges = np.histogram(res, bins=8)
    assert list(h.bucket) == [0.0] + counts.astype(float).tolist()  # one empty bucket on the left
    np.testing.assert_allclose(list(h.bucket_limit), edges)


def test_checksums_match_tensorboardx() -> None:
    from tensorboardX.record_writer import masked_crc32c

    from jno_plugin_tensorboard._sink import masked_crc32c_function

    crc = masked_crc32c_function()
    rng = np.random.default_rng(1)
    for n in (0, 1, 8, 100, 4097):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert crc(data) == masked_crc32c(data)


def test_all_nonfinite_histogram_is_skipped_with_a_warning(tmp_path: Path) -> None:
    sink = TensorBoardSink(_run(tmp_path))
    with pytest.warns(RuntimeWarning, match="no finite values"):
        sink.log_metrics(step=1, metrics={"h": Histogram([np.nan, np.inf]), "s": Scalar(2.0)})
    sink.close_run()
    data = read_events(tmp_path / "run" / "tensorboard")
    assert "h" not in data and data["s"]["values"] == [2.0]


def test_options_logdir_and_suffix(tmp_path: Path) -> None:
    sink = TensorBoardSink(_run(tmp_path, logdir="tb/custom", filename_suffix=".jno"))
    sink.log_metrics(step=2, metrics={"x": 3.0})
    # every log_metrics call ends flushed: readable before flush_metrics/close_run
    assert read_events(tmp_path / "run" / "tb" / "custom")["x"]["values"] == [3.0]
    sink.close_run()
    sink.close_run()  # idempotent
    files = list((tmp_path / "run" / "tb" / "custom").glob("events.out.tfevents.*.jno"))
    assert files == [sink.path]
    with pytest.raises(RuntimeError, match="close_run"):
        sink.log_metrics(step=3, metrics={"x": 1.0})
    with pytest.raises(TypeError, match="logdir"):
        TensorBoardSink(_run(tmp_path, flush_secs=1))


def test_two_writers_in_one_second_get_separate_files(tmp_path: Path) -> None:
    a, b = TensorBoardSink(_run(tmp_path)), TensorBoardSink(_run(tmp_path))
    a.log_metrics(step=0, metrics={"x": 1.0})
    b.log_metrics(step=1, metrics={"x": 2.0})
    a.close_run()
    b.close_run()
    assert a.path != b.path
    data = read_events(tmp_path / "run" / "tensorboard")
    assert sorted(zip(data["x"]["steps"], data["x"]["values"])) == [(0, 1.0), (1, 2.0)]


def test_missing_tensorboardx_says_pip_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(ImportError, match="pip install tensorboardX") as info:
        TensorBoardSink(_run(tmp_path))
    assert "jno-plugin-tensorboard" in str(info.value)


def test_setup_and_jno_sync_to_tensorboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    plugins.reset()
    # recorded with the default csv sink only ...
    path = jrun.setup(str(tmp_path / "poisson.py"), name="r", root=tmp_path / "runs")
    assert path.run.sink_names == ["csv"]
    for step in (0, 10, 20):
        path.run.bus.put(step, {"loss/total": Scalar(1.0 / (step + 1)), "hm": Heatmap(np.eye(2) * step)})
    jrun.finish()
    assert not (Path(path) / "tensorboard").exists()
    # ... replayed into TensorBoard afterwards
    assert sync_main([str(path), "--to", "tensorboard"]) == 0
    assert "replayed 3 steps" in capsys.readouterr().out
    data = read_events(Path(path) / "tensorboard")
    assert data["loss/total"]["steps"] == [0, 10, 20]
    np.testing.assert_allclose(data["loss/total"]["values"], [1.0, 1 / 11, 1 / 21], rtol=1e-6)
    np.testing.assert_array_equal(data["hm"]["values"][2], heatmap_to_rgb(np.eye(2) * 20)[0])
    # tensorboard=True adds the sink next to csv
    path2 = jrun.setup(str(tmp_path / "poisson.py"), name="r2", root=tmp_path / "runs", tensorboard=True)
    assert path2.run.sink_names == ["csv", "tensorboard"]
    path2.run.bus.put(4, {"loss/total": Scalar(0.25)})
    jrun.finish()
    assert read_events(Path(path2) / "tensorboard")["loss/total"]["values"] == [0.25]


def test_run_config_goes_to_the_hparams_dashboard(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    run = types.SimpleNamespace(dir=tmp_path, name="trial-0001", sink_options={"tensorboard": {}}, config={
        "user": {"lr": 0.01, "width": 32, "opt": {"name": "adam"}, "layers": [8, 8]},
        "sweep": {"id": "s1", "trial": 1, "params": {"lr": 0.01}, "metric": "val/l2_rel"}})
    sink = TensorBoardSink(run)
    sink.log_metrics(step=10, metrics={"val/l2_rel": Scalar(0.5)})
    sink.close_run()
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")
    assert set(content) == {"_hparams_/experiment", "_hparams_/session_start_info", "_hparams_/session_end_info"}
    ssi = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    hp = ssi.hparams
    assert hp["lr"].number_value == 0.01 and hp["width"].number_value == 32
    assert hp["opt.name"].string_value == "adam" and hp["layers"].string_value == "[8, 8]"
    exp = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert [m.name.tag for m in exp.metric_infos] == ["val/l2_rel", "loss/total"]
    assert read_events(tmp_path / "tensorboard")["val/l2_rel"]["values"] == [0.5]
