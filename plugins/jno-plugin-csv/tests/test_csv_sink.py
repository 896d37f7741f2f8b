"""The csv sink: what it writes reads back exactly (scalars, nan/inf, arrays, checkpoints),
it survives a killed process, and it passes the plugin authors' conformance suite."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import types
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import jno_core.run as jrun
from jno_core import plugins
from jno_core.metrics import Array, Heatmap, Histogram, Scalar
from jno_core.replay import read_checkpoints, read_metrics
from jno_core.testing import SinkConformance
from jno_plugin_csv import CsvSink


def _run(tmp_path: Path, **options: object) -> types.SimpleNamespace:
    d = tmp_path / "run"
    d.mkdir(exist_ok=True)
    return types.SimpleNamespace(dir=d, name="run", config={}, sink_options={"csv": options} if options else {})


class TestCsvConformance(SinkConformance):
    entry_point = "csv"
    distribution = "jno-plugin-csv"
    sink_name = "csv"
    array_roundtrip = True

    def read_back(self, run_dir: Path) -> dict[str, dict[str, list]]:
        return {k: {"steps": list(v["steps"]), "values": list(v["values"])} for k, v in read_metrics(run_dir).items()}


def test_registered_as_csv_by_entry_point() -> None:
    plugins.reset()
    entry = plugins.lookup("sinks", "csv")
    assert entry.plugin == "csv" and entry.distribution == "jno-plugin-csv"


def test_scalars_round_trip_exactly_in_long_layout(tmp_path: Path) -> None:
    sink = CsvSink(_run(tmp_path))
    values = [0.1 + 0.2, 1e-300, -2.5e17, float("inf"), float("-inf"), float("nan"), 7.0]
    for step, v in enumerate(values):
        sink.log_metrics(step=step * 10, metrics={"loss/total": Scalar(v), "n": 3})
    sink.close_run()
    rows = list(csv.reader((tmp_path / "run" / "metrics.csv").read_text().splitlines()))
    assert rows[0] == ["step", "key", "value"]
    assert rows.count(["step", "key", "value"]) == 1
    assert rows[1] == ["0", "loss/total", repr(0.1 + 0.2)]
    assert ["30", "loss/total", "inf"] in rows and ["40", "loss/total", "-inf"] in rows
    assert ["50", "loss/total", "nan"] in rows
    data = read_metrics(tmp_path / "run")
    got = data["loss/total"]
    assert got["kind"] == "scalar"
    np.testing.assert_array_equal(got["steps"], np.arange(0, 70, 10))
    assert got["values"].dtype == np.float64
    np.testing.assert_array_equal(got["values"][:5], values[:5])  # bit-exact, including inf
    assert math.isnan(got["values"][5]) and got["values"][6] == 7.0
    np.testing.assert_array_equal(data["n"]["values"], np.full(7, 3.0))


def test_arrays_written_as_compressed_npz_per_key_and_step(tmp_path: Path) -> None:
    sink = CsvSink(_run(tmp_path))
    cos = np.array([[1.0, -0.25], [-0.25, 1.0]], np.float32)
    res = np.linspace(-3, 3, 101)
    spec = np.array([9.0, 4.0, 1.0, np.nan])
    sink.log_metrics(step=3, metrics={
        "explainability/cos_sim_matrix": Heatmap(cos),
        "residuals/pde": Histogram(res, bins=17),
        "ntk/eigenvalues": Array(spec),
    })
    sink.log_metrics(step=1200, metrics={"explainability/cos_sim_matrix": Heatmap(2 * cos)})
    sink.flush_metrics()
    arrays = tmp_path / "run" / "arrays"
    assert sorted(str(p.relative_to(arrays)) for p in arrays.rglob("*") if p.is_file()) == [
        "explainability__cos_sim_matrix/00000003.npz", "explainability__cos_sim_matrix/00001200.npz",
        "ntk__eigenvalues/00000003.npz", "residuals__pde/00000003.npz"]
    f = arrays / "explainability__cos_sim_matrix" / "00001200.npz"
    with np.load(f) as z:  # plain NumPy reads each file
        assert sorted(z.files) == ["steps", "values"]
        np.testing.assert_array_equal(z["steps"], [1200])
        np.testing.assert_array_equal(z["values"], [2 * cos])
        assert z["values"].dtype == np.float32
    with zipfile.ZipFile(f) as z:  # the metadata is the archive's comment
        assert json.loads(z.comment) == {"key": "explainability/cos_sim_matrix", "kind": "heatmap", "bins": None}
    with zipfile.ZipFile(arrays / "residuals__pde" / "00000003.npz") as z:
        assert json.loads(z.comment) == {"key": "residuals/pde", "kind": "histogram", "bins": 17}
        assert z.getinfo("values.npy").compress_type == zipfile.ZIP_DEFLATED
        assert z.getinfo("values.npy").compress_size < z.getinfo("values.npy").file_size
    data = read_metrics(tmp_path / "run")
    hm = data["explainability/cos_sim_matrix"]
    assert hm["kind"] == "heatmap"
    np.testing.assert_array_equal(hm["steps"], [3, 1200])
    np.testing.assert_array_equal(hm["values"], np.stack([cos, 2 * cos]))
    h = data["residuals/pde"]
    assert h["kind"] == "histogram" and list(h["bins"]) == [17]
    np.testing.assert_array_equal(h["values"][0], res)
    a = data["ntk/eigenvalues"]
    assert a["kind"] == "array" and "bins" not in a
    np.testing.assert_array_equal(a["values"][0], spec)  # nan kept (array_equal treats nan as unequal)
    sink.close_run()


def test_a_batch_writes_one_file_per_key_named_by_its_steps(tmp_path: Path) -> None:
    sink = CsvSink(_run(tmp_path))
    land = [np.full((3, 3), float(s), np.float32) for s in range(4)]
    sink.log_metrics_batch(records=[
        (200 * s, {"loss/total": Scalar(1.0 / (s + 1)), "landscape": Heatmap(land[s]),
                   "h": Histogram(np.arange(s + 1.0), bins=4 + s)})
        for s in range(4)])
    sink.log_metrics_batch(records=[(800, {"landscape": Heatmap(np.eye(2))}),  # another shape
                                    (800, {"landscape": Heatmap(np.eye(2, dtype=np.float16))})])
    sink.close_run()
    arrays = tmp_path / "run" / "arrays"
    assert sorted(str(p.relative_to(arrays)) for p in arrays.rglob("*") if p.is_file()) == [
        "h/00000000-00000600.npz", "landscape/00000000-00000600.npz", "landscape/00000800.npz"]
    with np.load(arrays / "landscape" / "00000000-00000600.npz") as z:
        np.testing.assert_array_equal(z["steps"], [0, 200, 400, 600])
        np.testing.assert_array_equal(z["values"], np.stack(land))
        assert z["values"].dtype == np.float32
    with np.load(arrays / "h" / "00000000-00000600.npz") as z:  # ragged: one member per value
        assert sorted(z.files) == ["steps", "values_0", "values_1", "values_2", "values_3"]
        np.testing.assert_array_equal(z["values_2"], [0.0, 1.0, 2.0])
    with zipfile.ZipFile(arrays / "h" / "00000000-00000600.npz") as z:
        assert json.loads(z.comment) == {"key": "h", "kind": "histogram", "bins": [4, 5, 6, 7]}
    data = read_metrics(tmp_path / "run")
    np.testing.assert_array_equal(data["landscape"]["steps"], [0, 200, 400, 600, 800, 800])
    assert [v.dtype for v in data["landscape"]["values"]][-2:] == [np.float64, np.float16]
    np.testing.assert_array_equal(data["h"]["bins"], [4, 5, 6, 7])
    assert [list(v) for v in data["h"]["values"]] == [list(np.arange(s + 1.0)) for s in range(4)]


def test_save_checkpoint_appends_rows(tmp_path: Path) -> None:
    sink = CsvSink(_run(tmp_path))
    meta = {"epoch": 500, "total_loss": np.float32(0.0023), "individual_losses": np.array([0.0019, 0.0004]),
            "checkpoint_dir": "/x/500", "timestamp": 1717000000.0}
    sink.save_checkpoint(path="/x/500", epoch=500, metadata=meta)
    sink.save_checkpoint(path="/x/1000", epoch=1000, metadata={**meta, "epoch": 1000, "checkpoint_dir": "/x/1000"})
    sink.close_run()
    rows = read_checkpoints(tmp_path / "run")
    assert [r["epoch"] for r in rows] == [500, 1000]
    assert rows[0]["path"] == "/x/500" and rows[0]["timestamp"] == 1717000000.0
    assert rows[0]["metadata"]["individual_losses"] == [0.0019, 0.0004]
    assert rows[0]["metadata"]["total_loss"] == pytest.approx(0.0023, rel=1e-6)
    assert rows[1]["metadata"]["checkpoint_dir"] == "/x/1000"
    header = (tmp_path / "run" / "checkpoints.csv").read_text().splitlines()[0]
    assert header == "epoch,path,timestamp,metadata"


def test_truncated_last_line_is_ignored_and_reopening_appends(tmp_path: Path) -> None:
    sink = CsvSink(_run(tmp_path))
    sink.log_metrics(step=0, metrics={"loss/total": Scalar(1.0)})
    sink.close_run()
    f = tmp_path / "run" / "metrics.csv"
    with f.open("a") as fh:
        fh.write("1,loss/tot")  # a killed writer's partial row
    data = read_metrics(tmp_path / "run")
    np.testing.assert_array_equal(data["loss/total"]["steps"], [0])
    assert set(data) == {"loss/total"}
    sink = CsvSink(_run(tmp_path))  # a resumed run appends to the same file
    sink.log_metrics(step=2, metrics={"loss/total": Scalar(0.5)})
    sink.close_run()
    data = read_metrics(tmp_path / "run")
    np.testing.assert_array_equal(data["loss/total"]["steps"], [0, 2])
    np.testing.assert_array_equal(data["loss/total"]["values"], [1.0, 0.5])
    assert f.read_text() == "step,key,value\n0,loss/total,1.0\n2,loss/total,0.5\n"  # partial row cut off


def test_killed_process_keeps_every_logged_row(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import os, signal, types
        from pathlib import Path
        import numpy as np
        from jno_core.metrics import Scalar, Heatmap
        from jno_plugin_csv import CsvSink
        run = types.SimpleNamespace(dir=Path({str(tmp_path / "killed")!r}), name="k", config={{}}, sink_options={{}})
        sink = CsvSink(run)
        for s in range(5):
            sink.log_metrics(step=s, metrics={{"loss/total": Scalar(1.0 / (s + 1)), "hm": Heatmap(np.full((2, 2), s))}})
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    data = read_metrics(tmp_path / "killed")
    np.testing.assert_array_equal(data["loss/total"]["steps"], np.arange(5))
    np.testing.assert_allclose(data["loss/total"]["values"], 1.0 / np.arange(1, 6))
    np.testing.assert_array_equal(data["hm"]["values"][:, 0, 0], np.arange(5))


def test_through_setup_and_the_metrics_bus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    plugins.reset()
    path = jrun.setup(str(tmp_path / "poisson.py"), name="bus", root=tmp_path / "runs", sinks=["csv"])
    run = path.run
    for step in (0, 5, 10):
        run.bus.put(step, {"loss/total": Scalar(10.0 - step), "nan": Scalar(float("nan")),
                           "hist": Histogram(np.arange(step + 1.0))})
    run.bus.flush()
    data = read_metrics(str(path))  # readable while the run is still open
    np.testing.assert_array_equal(data["loss/total"]["values"], [10.0, 5.0, 0.0])
    jrun.finish()
    data = read_metrics(str(path))
    np.testing.assert_array_equal(data["nan"]["steps"], [0, 5, 10])
    assert np.isnan(data["nan"]["values"]).all()
    assert [len(v) for v in data["hist"]["values"]] == [1, 6, 11]  # ragged: a list
    assert json.loads((Path(path) / "config.json").read_text())["sinks"] == ["csv"]


def test_errors_say_what_to_fix(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="fsync"):
        CsvSink(_run(tmp_path, fsnyc=False))
    sink = CsvSink(_run(tmp_path, fsync=False))
    sink.close_run()
    sink.close_run()  # idempotent
    with pytest.raises(RuntimeError, match="close_run"):
        sink.log_metrics(step=1, metrics={"a": Scalar(1.0)})
    with pytest.raises(FileNotFoundError, match="metrics.csv"):
        read_metrics(tmp_path / "nothing-here")


def _records() -> list[tuple[int, dict]]:
    return [
        (s, {"loss/total": Scalar(1.0 / (s + 1)), "odd,key \"q\"": Scalar(float(s)),
             "hm": Heatmap(np.arange(6.0).reshape(2, 3) * s), "h": Histogram(np.arange(s + 2.0), bins=3)})
        for s in (0, 5, 5, 10)
    ] + [(12, {"loss/total": Scalar(float("inf"))})]


def test_batch_reads_back_exactly_what_per_step_calls_write(tmp_path: Path) -> None:
    one, batch = tmp_path / "one", tmp_path / "batch"
    a = CsvSink(types.SimpleNamespace(dir=one, name="a", config={}, sink_options={}))
    for step, m in _records():
        a.log_metrics(step=step, metrics=m)
    a.close_run()
    b = CsvSink(types.SimpleNamespace(dir=batch, name="b", config={}, sink_options={}))
    recs = _records()
    b.log_metrics_batch(records=recs[:3])
    b.log_metrics_batch(records=recs[3:])
    b.close_run()
    assert (one / "metrics.csv").read_bytes() == (batch / "metrics.csv").read_bytes()
    assert sorted(str(p.relative_to(one)) for p in (one / "arrays").rglob("*.npz")) == [
        f"arrays/{k}/{n}.npz" for k in ("h", "hm") for n in ("00000000", "00000005", "00000005~2", "00000010")]
    assert sorted(str(p.relative_to(batch)) for p in (batch / "arrays").rglob("*.npz")) == [
        f"arrays/{k}/{n}.npz" for k in ("h", "hm") for n in ("00000000-00000005", "00000010")]
    data = read_metrics(batch)
    per_step = read_metrics(one)
    assert sorted(per_step) == sorted(data)
    for key, entry in per_step.items():
        assert entry["kind"] == data[key]["kind"]
        np.testing.assert_array_equal(entry["steps"], data[key]["steps"])
        for u, v in zip(entry["values"], data[key]["values"]):
            np.testing.assert_array_equal(u, v)
    np.testing.assert_array_equal(data["loss/total"]["steps"], [0, 5, 5, 10, 12])
    np.testing.assert_array_equal(data["loss/total"]["values"], [1.0, 1 / 6, 1 / 6, 1 / 11, np.inf])
    np.testing.assert_array_equal(data['odd,key "q"']["values"], [0.0, 5.0, 5.0, 10.0])
    np.testing.assert_array_equal(data["hm"]["steps"], [0, 5, 5, 10])
    np.testing.assert_array_equal(data["hm"]["values"], [np.arange(6.0).reshape(2, 3) * s for s in (0, 5, 5, 10)])
    assert [list(v) for v in data["h"]["values"]] == [list(np.arange(s + 2.0)) for s in (0, 5, 5, 10)]
    np.testing.assert_array_equal(data["h"]["bins"], [3, 3, 3, 3])


def _fsynced_names(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the name of every file or folder ``os.fsync`` is called on (without syncing)."""
    import jno_plugin_csv._sink as mod

    names: list[str] = []
    monkeypatch.setattr(mod.os, "fsync", lambda fd: names.append(Path(os.readlink(f"/proc/self/fd/{fd}")).name))
    return names


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name file descriptors")
def test_fsync_option_syncs_every_file_and_folder_of_a_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fsynced = _fsynced_names(monkeypatch)
    sink = CsvSink(_run(tmp_path, fsync=True))
    fsynced.clear()
    writes: list[str] = []
    inner = sink._metrics.write
    monkeypatch.setattr(sink._metrics, "write", lambda text: (writes.append(text), inner(text))[1])
    sink.log_metrics_batch(records=_records())  # 5 records, 2 array keys at 4 steps
    assert len(writes) == 1  # one write of metrics.csv per batch
    assert sorted(fsynced) == [f".tmp-{os.getpid()}-00000000-00000010.npz"] * 2 + ["h", "hm", "metrics.csv"]
    fsynced.clear()
    sink.log_metrics_batch(records=[(20, {"loss/total": Scalar(0.5)})] * 7)
    assert fsynced == ["metrics.csv"]
    sink.close_run()
    assert read_metrics(tmp_path / "run")["loss/total"]["steps"].tolist() == [0, 5, 5, 10, 12] + [20] * 7



@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name file descriptors")
def test_default_flushes_without_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fsynced = _fsynced_names(monkeypatch)
    sink = CsvSink(_run(tmp_path))
    sink.log_metrics_batch(records=_records())
    assert fsynced == []
    # flushed: another reader sees every row before close_run
    assert read_metrics(tmp_path / "run")["hm"]["steps"].tolist() == [0, 5, 5, 10]
    sink.close_run()  # close_run makes the files durable: metrics.csv, the array files, their folders
    assert sorted(fsynced) == ["00000000-00000010.npz"] * 2 + ["h", "hm", "metrics.csv"]


def test_close_run_syncs_everything_at_once_after_many_array_files(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import jno_plugin_csv._sink as mod

    fsynced: list[int] = []
    syncs: list[bool] = []
    monkeypatch.setattr(mod.os, "fsync", fsynced.append)
    monkeypatch.setattr(mod.os, "sync", lambda: syncs.append(True))
    monkeypatch.setattr(mod, "MAX_FSYNC_AT_CLOSE", 5)
    sink = CsvSink(_run(tmp_path))
    for s in range(6):
        sink.log_metrics(step=s, metrics={"a": Array([float(s)])})
    fsynced.clear()
    sink.close_run()
    assert syncs == [True] and len(fsynced) == 1  # metrics.csv by file, the six arrays by os.sync
    assert read_metrics(tmp_path / "run")["a"]["steps"].tolist() == list(range(6))


def test_killed_writers_temporary_file_is_ignored_and_removed_on_reopen(tmp_path: Path) -> None:
    sink = CsvSink(_run(tmp_path))
    sink.log_metrics(step=0, metrics={"hm": Heatmap(np.ones((2, 2)))})
    sink.log_metrics(step=1, metrics={"hm": Heatmap(2 * np.ones((2, 2)))})
    sink.close_run()
    folder = tmp_path / "run" / "arrays" / "hm"
    from jno_core.arrayfile import encode_array_file

    # a writer killed while writing step 2 leaves only its temporary file, never a partial .npz
    (folder / ".tmp-00000002.npz").write_bytes(encode_array_file("hm", [(2, "heatmap", 3 * np.ones((2, 2)), None)])[:-5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about: the temporary file is not read
        data = read_metrics(tmp_path / "run")
    np.testing.assert_array_equal(data["hm"]["steps"], [0, 1])
    sink = CsvSink(_run(tmp_path))  # a resumed run removes it and goes on
    sink.log_metrics(step=2, metrics={"hm": Heatmap(4 * np.ones((2, 2)))})
    sink.close_run()
    assert sorted(p.name for p in folder.iterdir()) == ["00000000.npz", "00000001.npz", "00000002.npz"]
    data = read_metrics(tmp_path / "run")
    np.testing.assert_array_equal(data["hm"]["steps"], [0, 1, 2])
    np.testing.assert_array_equal(data["hm"]["values"][:, 0, 0], [1.0, 2.0, 4.0])



def test_damaged_array_file_is_skipped_with_a_warning_and_its_folder_reused(tmp_path: Path) -> None:
    arrays = tmp_path / "run" / "arrays"
    (arrays / "hm").mkdir(parents=True)
    (arrays / "hm" / "00000001.npz").write_bytes(b"PK\x03\x04 damaged")
    (tmp_path / "run" / "metrics.csv").write_text("step,key,value\n0,loss/total,1.0\n")
    with pytest.warns(RuntimeWarning, match=r"00000001\.npz: unreadable array file skipped"):
        assert set(read_metrics(tmp_path / "run")) == {"loss/total"}
    sink = CsvSink(_run(tmp_path))
    sink.log_metrics(step=1, metrics={"hm": Heatmap(np.eye(2)), "h": Histogram([1.0, 2.0], bins=2)})
    sink.close_run()
    with pytest.warns(RuntimeWarning, match="unreadable"):
        data = read_metrics(tmp_path / "run")
    np.testing.assert_array_equal(data["hm"]["steps"], [1])
    np.testing.assert_array_equal(data["hm"]["values"][0], np.eye(2))
    np.testing.assert_array_equal(data["h"]["values"][0], [1.0, 2.0])
    assert sorted(p.name for p in (arrays / "hm").iterdir()) == ["00000001.npz", "00000001~2.npz"]



@pytest.mark.parametrize("hard_links", [True, False])
def test_a_file_another_writer_created_meanwhile_is_never_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   hard_links: bool) -> None:
    import jno_plugin_csv._sink as mod

    if not hard_links:  # e.g. a FAT or some network file systems: rename after a last look
        def no_link(src: object, dst: object) -> None:
            raise PermissionError(1, "Operation not permitted")

        monkeypatch.setattr(mod.os, "link", no_link)
    sink = CsvSink(_run(tmp_path))
    sink.log_metrics(step=0, metrics={"hm": Heatmap(np.eye(2))})  # the sink has scanned the folder
    folder = tmp_path / "run" / "arrays" / "hm"
    other = b"another process wrote this"
    (folder / "00000001.npz").write_bytes(other)
    sink.log_metrics(step=1, metrics={"hm": Heatmap(2 * np.eye(2))})
    sink.close_run()
    assert (folder / "00000001.npz").read_bytes() == other
    assert sorted(p.name for p in folder.iterdir()) == ["00000000.npz", "00000001.npz", "00000001~2.npz"]
    with pytest.warns(RuntimeWarning, match="unreadable"):  # the foreign file is not an archive
        data = read_metrics(tmp_path / "run")
    np.testing.assert_array_equal(data["hm"]["values"], [np.eye(2), 2 * np.eye(2)])


def test_keys_sharing_a_file_name_get_separate_files(tmp_path: Path) -> None:
    sink = CsvSink(_run(tmp_path))
    sink.log_metrics(step=0, metrics={"a/b": Array([1.0]), "a__b": Array([2.0])})
    sink.close_run()
    sink = CsvSink(_run(tmp_path))  # reopened: each key finds its own file again
    sink.log_metrics(step=1, metrics={"a__b": Array([20.0]), "a/b": Array([10.0])})
    sink.close_run()
    assert sorted(p.name for p in (tmp_path / "run" / "arrays").iterdir()) == ["a__b", "a__b~2"]
    data = read_metrics(tmp_path / "run")
    np.testing.assert_array_equal(data["a/b"]["values"][:, 0], [1.0, 10.0])
    np.testing.assert_array_equal(data["a__b"]["values"][:, 0], [2.0, 20.0])


def test_reads_array_files_written_with_plain_numpy(tmp_path: Path) -> None:
    folder = tmp_path / "run" / "arrays" / "explainability__cos_sim_matrix"
    folder.mkdir(parents=True)  # as np.savez_compressed writes it, with a step member of its own
    np.savez_compressed(folder / "00000003.npz", values=np.eye(2), kind=np.asarray("heatmap"),
                        key=np.asarray("explainability/cos_sim_matrix"), step=np.asarray(3, dtype=np.int64))
    np.savez_compressed(folder / "00000005.npz", values=3 * np.eye(2))  # only values: key from the folder, step from the name
    sink = CsvSink(_run(tmp_path))  # the same run resumed
    sink.log_metrics(step=8, metrics={"explainability/cos_sim_matrix": Heatmap(2 * np.eye(2))})
    sink.close_run()
    data = read_metrics(tmp_path / "run")
    hm = data["explainability/cos_sim_matrix"]
    np.testing.assert_array_equal(hm["steps"], [3, 5, 8])
    np.testing.assert_array_equal(hm["values"], [np.eye(2), 3 * np.eye(2), 2 * np.eye(2)])
    assert hm["kind"] == ["heatmap", "array", "heatmap"]



def test_killed_during_batches_keeps_every_delivered_batch(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import os, signal, types
        from pathlib import Path
        import numpy as np
        from jno_core.metrics import Scalar, Histogram
        from jno_plugin_csv import CsvSink
        run = types.SimpleNamespace(dir=Path({str(tmp_path / "killed")!r}), name="k", config={{}}, sink_options={{}})
        sink = CsvSink(run)
        for b in range(3):
            sink.log_metrics_batch(records=[(4 * b + i, {{"loss/total": Scalar(float(4 * b + i)),
                                                         "h": Histogram(np.arange(3.0) + 4 * b + i)}})
                                            for i in range(4)])
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    data = read_metrics(tmp_path / "killed")
    np.testing.assert_array_equal(data["loss/total"]["steps"], np.arange(12))
    np.testing.assert_array_equal(data["loss/total"]["values"], np.arange(12.0))
    np.testing.assert_array_equal(data["h"]["values"][:, 0], np.arange(12.0))


def test_file_names_round_trip_for_any_step_range() -> None:
    from jno_core.arrayfile import file_name, parse_name

    for first, last, n in [(0, 0, 1), (5, 10, 1), (5, 10, 3), (-3, -3, 1), (-3, 4, 2), (123456789, 223456789, 1)]:
        assert parse_name(file_name(first, last, n)) == (first, last, n)
    assert file_name(50, 950) == "00000050-00000950.npz" and file_name(7, 7, 2) == "00000007~2.npz"
    for other in (".tmp-12-00000001.npz", "notes.npz", "00000001.npy", "1-2-3.npz", "00000001~.npz"):
        assert parse_name(other) is None


def test_negative_and_large_steps_read_back(tmp_path: Path) -> None:
    sink = CsvSink(_run(tmp_path))
    sink.log_metrics_batch(records=[(-2, {"a": Array([1.0])}), (10**9 + 7, {"a": Array([2.0])})])
    sink.log_metrics(step=-5, metrics={"a": Array([3.0])})
    sink.close_run()
    assert sorted(p.name for p in (tmp_path / "run" / "arrays" / "a").iterdir()) == [
        "-0000002-1000000007.npz", "-0000005.npz"]
    data = read_metrics(tmp_path / "run")
    np.testing.assert_array_equal(data["a"]["steps"], [-5, -2, 10**9 + 7])
    np.testing.assert_array_equal(data["a"]["values"][:, 0], [3.0, 1.0, 2.0])
