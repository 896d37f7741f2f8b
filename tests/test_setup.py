"""jno.setup: run directory, config.json contents, sink selection precedence."""

import json
from pathlib import Path

import jax
import pytest

import jno
from jno_core.errors import ConfigError
from jno_core.sinkconfig import resolve_sinks

from helpers_core import poisson1d


def test_setup_creates_run_dir_and_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dire = jno.setup(str(tmp_path / "my_script.py"), sinks="none", seed=7)
    try:
        assert Path(dire).parent == tmp_path / "runs" / "my_script"
        cfg = json.loads((Path(dire) / "config.json").read_text())
        assert cfg["seed"] == 7 and cfg["project"] == "my_script"
        assert cfg["versions"]["jax"] == jax.__version__
        assert cfg["devices"] and cfg["sinks"] == []
        crux, _ = poisson1d()
        crux.solve(3)
        cfg = json.loads((Path(dire) / "config.json").read_text())
        (solve,) = cfg["solves"]
        (net,) = solve["networks"].values()
        assert net["n_params"] == 16 * 1 + 16 + 16 * 16 + 16 + 16 + 1
        # optax.adam is a chain (scale_by_adam, then scale by -lr): the chain's parts and rate
        assert net["optimizer"] == "chain(scale_by_adam, lr=0.001)"
        assert solve["epochs"] == 3
        # a second setup with the same name pattern never overwrites: a new folder
        dire2 = jno.setup(str(tmp_path / "my_script.py"), sinks="none")
        assert dire2 != dire
        assert f"{dire}/checkpoints".startswith(str(tmp_path))
    finally:
        jno.finish()


def test_sink_precedence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JNO_SINKS", raising=False)
    assert resolve_sinks()[0] == ["csv"]
    (tmp_path / "pyproject.toml").write_text('[tool.jno]\nsinks = ["tensorboard"]\n')
    assert resolve_sinks()[0] == ["tensorboard"]
    (tmp_path / "jno.toml").write_text('sinks = ["csv", "tensorboard"]\n')
    assert resolve_sinks()[0] == ["csv", "tensorboard"]
    monkeypatch.setenv("JNO_SINKS", "wandb")
    assert resolve_sinks()[0] == ["wandb"]
    assert resolve_sinks(sinks=["csv"])[0] == ["csv"]
    assert resolve_sinks(sinks="none", wandb=True)[0] == []
    names, opts = resolve_sinks(sinks=["csv"], wandb={"project": "jNO", "tags": ["a"]})
    assert names == ["csv", "wandb"] and opts["wandb"] == {"project": "jNO", "tags": ["a"]}
    names, opts = resolve_sinks(sinks=["csv"], wandb=True, project="stem")
    assert opts["wandb"]["project"] == "stem"
    with pytest.raises(ConfigError, match="none"):
        resolve_sinks(sinks=["none", "csv"])


def test_repeated_solves_are_merged_in_config_json(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dire = jno.setup(str(tmp_path / "loop.py"), sinks="none")
    try:
        crux, _ = poisson1d()
        crux.solve(3)
        size_one = (Path(dire) / "config.json").stat().st_size
        for _ in range(30):  # a script that calls solve in a loop
            crux.solve(2)
        cfg = json.loads((Path(dire) / "config.json").read_text())
        (solve,) = cfg["solves"]
        assert (solve["start_epoch"], solve["epochs"], solve["calls"]) == (0, 63, 31)
        assert (Path(dire) / "config.json").stat().st_size < size_one + 20  # constant size
        # another set-up (a callback) starts a new entry, and so does going on from it
        crux.solve(4, callbacks=[_Noop()])
        crux.solve(5)
        cfg = json.loads((Path(dire) / "config.json").read_text())
        assert [(s["start_epoch"], s["epochs"], s["calls"]) for s in cfg["solves"]] == [
            (0, 63, 31), (63, 4, 1), (67, 5, 1)]
        assert cfg["solves"][1]["callbacks"] == ["noop-callback"] and cfg["solves"][2]["callbacks"] == []
    finally:
        jno.finish()


class _Noop:
    plugin_name = "noop-callback"
    interval = 2

    @jno.hookimpl
    def on_epoch(self, ctx, epoch):
        pass
