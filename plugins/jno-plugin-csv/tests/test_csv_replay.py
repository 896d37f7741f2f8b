"""jno_core.replay: replaying a csv-recorded run through another sink, and `jno sync`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pytest

import jno_core.run as jrun
from jno_core import cli, plugins
from jno_core.hookspecs import hookimpl
from jno_core.metrics import Array, Heatmap, Histogram, Scalar
from jno_core.replay import load_run, replay, sync_main


class _Recorder:
    """A sink that keeps every call it receives."""

    instances: list["_Recorder"] = []

    def __init__(self, run: Any) -> None:
        self.run = run
        self.calls: list[tuple[str, Any]] = []
        _Recorder.instances.append(self)

    @hookimpl
    def log_metrics(self, step: int, metrics: Mapping[str, Any]) -> None:
        self.calls.append(("log", (step, dict(metrics))))

    @hookimpl
    def save_checkpoint(self, path: str, epoch: int, metadata: Mapping[str, Any]) -> None:
        self.calls.append(("ckpt", (path, epoch, dict(metadata))))

    @hookimpl
    def flush_metrics(self) -> None:
        self.calls.append(("flush", None))

    @hookimpl
    def close_run(self) -> None:
        self.calls.append(("close", None))


class _RecorderPlugin:
    @hookimpl
    def jno_register_sinks(self, register: Callable[..., None]) -> None:
        register("recorder", _Recorder)


@pytest.fixture
def recorder() -> Any:
    plugins.reset()
    plugins.register_plugin(_RecorderPlugin(), name="replay-recorder")
    _Recorder.instances.clear()
    yield _Recorder
    plugins.reset()


@pytest.fixture
def recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A run recorded with the csv sink: scalars at 0, 5, 10, arrays at 5, a checkpoint at 5."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "jno.toml").write_text('[sink_options.wandb]\nentity = "team"\n')
    plugins.reset()
    path = jrun.setup(str(tmp_path / "poisson.py"), name="rec", root=tmp_path / "runs", sinks=["csv"])
    run = path.run
    ckpt = Path(path) / "checkpoints" / "5"  # jno sync uploads only checkpoints in the run's own folder
    ckpt.mkdir(parents=True)
    (ckpt / "state.npz").write_bytes(b"x")
    run.bus.put(0, {"loss/total": Scalar(3.0), "loss/nan": Scalar(float("nan"))})
    run.bus.put(5, {"loss/total": Scalar(2.0), "hm": Heatmap(np.eye(3)), "h": Histogram([1.0, 2.0, 2.5], bins=4),
                    "spec": Array([3.0, 1.0])})
    run.bus.put_checkpoint(str(ckpt), 5, {"epoch": 5, "total_loss": 2.0})
    run.bus.put(10, {"loss/total": Scalar(1.0)})
    jrun.finish()
    return Path(path)


def test_load_run_builds_a_run_from_config_json(recorded: Path) -> None:
    run = load_run(recorded, "wandb", {"project": "jNO"})
    assert run.dir == recorded.resolve() and run.name == "rec"
    assert run.config["project"] == "poisson"
    assert run.sink_options["wandb"] == {"project": "jNO", "entity": "team"}
    assert run.bus is None and run.sinks == []


def test_replay_delivers_every_step_in_order(recorded: Path, recorder: Any) -> None:
    summary = replay(recorded, "recorder")
    assert (summary.steps, summary.keys, summary.checkpoints) == (3, 5, 1)
    (sink,) = recorder.instances
    assert sink.run.name == "rec"
    kinds = [c[0] for c in sink.calls]
    assert kinds == ["log", "log", "ckpt", "log", "flush", "close"]  # checkpoint after its epoch's metrics
    logs = [c[1] for c in sink.calls if c[0] == "log"]
    assert [s for s, _ in logs] == [0, 5, 10]
    assert logs[0][1]["loss/total"] == Scalar(3.0) and np.isnan(logs[0][1]["loss/nan"].value)
    m5 = logs[1][1]
    assert isinstance(m5["hm"], Heatmap) and np.array_equal(m5["hm"].values, np.eye(3))
    assert isinstance(m5["h"], Histogram) and m5["h"].bins == 4
    np.testing.assert_array_equal(m5["h"].values, [1.0, 2.0, 2.5])
    assert isinstance(m5["spec"], Array) and list(m5["spec"].values) == [3.0, 1.0]
    path, epoch, meta = next(c[1] for c in sink.calls if c[0] == "ckpt")
    assert epoch == 5 and meta == {"epoch": 5, "total_loss": 2.0} and Path(path).is_dir()


class _BatchRecorder(_Recorder):
    @hookimpl
    def log_metrics_batch(self, records: Any) -> None:
        self.calls.append(("batch", [(s, dict(m)) for s, m in records]))


def test_replay_hands_batches_to_a_batch_sink_split_at_checkpoints(recorded: Path, recorder: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import jno_core.replay as R

    class _Plugin:
        @hookimpl
        def jno_register_sinks(self, register: Callable[..., None]) -> None:
            register("batch_recorder", _BatchRecorder)

    plugins.register_plugin(_Plugin(), name="replay-batch-recorder")
    summary = replay(recorded, "batch_recorder")
    assert (summary.steps, summary.checkpoints) == (3, 1)
    sink = recorder.instances[-1]
    assert [c[0] for c in sink.calls] == ["batch", "ckpt", "batch", "flush", "close"]
    assert [s for s, _ in sink.calls[0][1]] == [0, 5] and [s for s, _ in sink.calls[2][1]] == [10]
    assert sink.calls[0][1][0][1]["loss/total"] == Scalar(3.0)
    np.testing.assert_array_equal(sink.calls[0][1][1][1]["hm"].values, np.eye(3))
    monkeypatch.setattr(R, "REPLAY_BATCH", 1)  # capped batch size
    replay(recorded, "batch_recorder", checkpoints=False)
    sink = recorder.instances[-1]
    assert [[s for s, _ in c[1]] for c in sink.calls if c[0] == "batch"] == [[0], [5], [10]]


def test_replay_refuses_csv_and_unknown_sinks(recorded: Path) -> None:
    with pytest.raises(ValueError, match="--to tensorboard"):
        replay(recorded, "csv")
    plugins.reset()
    with pytest.raises(AttributeError, match="not installed"):
        replay(recorded, "no_such_sink")


def test_sync_main_and_cli(recorded: Path, recorder: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert sync_main([str(recorded), "--to", "recorder", "-o", "project=jNO", "-o", "n=3"]) == 0
    out = capsys.readouterr().out
    assert "replayed 3 steps (5 keys, 1 checkpoints)" in out and "into recorder" in out
    assert recorder.instances[-1].run.sink_options["recorder"] == {"project": "jNO", "n": 3}
    assert cli.main(["sync", str(recorded), "--to", "recorder", "--no-checkpoints"]) == 0
    assert "ckpt" not in [c[0] for c in recorder.instances[-1].calls]
    assert sync_main([str(recorded / "missing"), "--to", "recorder"]) == 1
    assert "missing" in capsys.readouterr().err
    assert sync_main([str(recorded)]) == 2  # --to is required
    assert "--to" in capsys.readouterr().err


def test_replay_reads_a_run_without_config_json(recorded: Path, recorder: Any) -> None:
    (recorded / "config.json").unlink()
    replay(recorded, "recorder")
    run = recorder.instances[-1].run
    assert run.name == "rec" and run.config["project"] == "poisson"
    assert json.dumps(run.config)  # still a plain dict
