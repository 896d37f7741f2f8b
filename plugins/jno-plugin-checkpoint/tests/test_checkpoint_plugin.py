"""jno-plugin-checkpoint: round trip, pruning, best_fn, atomicity under kill, corruption,
resume equality, the save_checkpoint hook."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jno
from jno_core import plugins
from jno_core.errors import CheckpointError, ConfigError
from jno_core.hookspecs import hookimpl
from jno_core.testing import RecordingSink, small_problem
from jno_core.weighting import HostWeights, WeightingScheme
from jno_plugin_checkpoint import read_checkpoint

pi = jno.np.pi


@pytest.fixture(autouse=True)
def _no_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    jno.finish()
    plugins.reset()
    yield
    jno.finish()


class StateProbe:
    """Copies the train state to the host at its interval (what a checkpoint should hold)."""

    name = "state-probe"

    def __init__(self, interval: int) -> None:
        self.interval = interval
        self.states: dict[int, object] = {}

    @hookimpl
    def on_epoch(self, ctx, epoch):
        self.states[epoch] = jax.device_get(ctx.state)


def param_arrays(state, index: str = "000") -> dict[str, np.ndarray]:
    """{checkpoint path: array} of the first trainable's params, paths built with keystr."""
    params = next(iter(state[0].values()))
    return {f"['params']['{index}']" + jax.tree_util.keystr(p): np.asarray(v)
            for p, v in jax.tree_util.tree_flatten_with_path(params)[0]}


# ----------------------------------------------------------------------------- round trip
def test_round_trip_state_and_metadata(tmp_path: Path) -> None:
    p = small_problem()
    probe = StateProbe(10)
    cb = jno.callbacks.checkpoint(directory=tmp_path / "ck", save_interval_epochs=10, max_to_keep=None)
    hist = p.crux.solve(30, callbacks=[probe, cb])
    cb.close()
    assert cb.all_steps == [10, 20, 30]  # not the start epoch; the final epoch always
    assert cb.latest_step == 30
    assert sorted(os.listdir(tmp_path / "ck" / "20")) == ["metadata.json", "state.safetensors"]
    data = cb.restore(step=20)
    assert data.step == 20
    for path, want in param_arrays(probe.states[20]).items():
        np.testing.assert_array_equal(data.arrays[path], want)
    assert int(data.arrays["['epoch']"]) == 20
    assert int(data.arrays["['opt_states']['000'][0].count"]) == 20
    m = data.metadata
    assert set(m) == {"epoch", "total_loss", "individual_losses", "checkpoint_dir", "timestamp"}
    assert m["epoch"] == 20 and m["checkpoint_dir"] == str(tmp_path / "ck" / "20")
    # the losses at the saved parameters = what training recorded for that epoch
    np.testing.assert_array_equal(m["individual_losses"], hist.losses[20])
    assert m["total_loss"] == hist.total_loss[20]
    # the final save holds the parameters after the last step
    final = read_checkpoint(tmp_path / "ck" / "30")
    np.testing.assert_allclose(final.metadata["individual_losses"], [float(v) for v in p.crux.eval(p.losses)], rtol=1e-5)
    assert [s["epoch"] for s in cb.saved] == [10, 20, 30]


def test_file_is_plain_safetensors_layout(tmp_path: Path) -> None:
    """8-byte little-endian header length, JSON header with dtype/shape/data_offsets."""
    p = small_problem()
    cb = jno.callbacks.checkpoint(directory=tmp_path, save_interval_epochs=100)
    p.crux.solve(3, callbacks=[cb])
    cb.close()
    raw = (tmp_path / "3" / "state.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__")
    assert meta["format"] == "jno-checkpoint"
    w = p.net.params.output_layer.weight
    t = header["['params']['000'].output_layer.weight"]
    assert t["dtype"] == "F32" and t["shape"] == list(w.shape)
    b0, b1 = t["data_offsets"]
    got = np.frombuffer(raw[8 + n + b0 : 8 + n + b1], np.float32).reshape(w.shape)
    np.testing.assert_array_equal(got, np.asarray(p.crux.state[0][next(iter(p.crux.state[0]))].output_layer.weight))


def test_properties_do_not_block_and_list_pending_saves(tmp_path: Path) -> None:
    p = small_problem()
    cb = jno.callbacks.checkpoint(directory=tmp_path, save_interval_epochs=100)
    gate = threading.Event()
    real = cb._write
    cb._write = lambda job: (gate.wait(30), real(job))[1]
    p.crux.solve(3, callbacks=[cb])  # the final save waits on the gate
    assert cb.all_steps == [3] and cb.latest_step == 3  # pending, listed, no deadlock
    assert not (tmp_path / "3").exists()
    gate.set()
    assert cb.restore().step == 3  # restore waits for it


def test_max_to_keep_prunes_oldest(tmp_path: Path) -> None:
    p = small_problem()
    cb = jno.callbacks.checkpoint(directory=tmp_path, save_interval_epochs=5, max_to_keep=3)
    p.crux.solve(40, callbacks=[cb])
    cb.close()
    assert cb.all_steps == [30, 35, 40]
    assert [s["epoch"] for s in cb.saved] == [5, 10, 15, 20, 25, 30, 35, 40]


def test_best_fn_keeps_best_in_addition_to_latest(tmp_path: Path) -> None:
    p = small_problem()
    cb = jno.callbacks.checkpoint(directory=tmp_path, save_interval_epochs=5, max_to_keep=3,
                                  best_fn=lambda m: abs(m["epoch"] - 15))
    p.crux.solve(40, callbacks=[cb])
    cb.close()
    # best values: 15 -> 0, 10 and 20 -> 5; newest three: 30, 35, 40
    assert cb.all_steps == [10, 15, 20, 30, 35, 40]
    assert cb.best_step == 15
    assert read_checkpoint(tmp_path / "15").metadata["best_value"] == 0.0
    mx = jno.callbacks.checkpoint(directory=tmp_path / "max", save_interval_epochs=5, max_to_keep=1,
                                  best_fn=lambda m: -abs(m["epoch"] - 15), best_mode="max")
    small_problem().crux.solve(40, callbacks=[mx])
    mx.close()
    assert mx.all_steps == [15, 40]


def test_spec_best_fn_total_loss(tmp_path: Path) -> None:
    p = small_problem(lr=1e-2)
    cb = jno.callbacks.checkpoint(directory=tmp_path, save_interval_epochs=10, max_to_keep=1,
                                  best_fn=lambda m: m["total_loss"])
    p.crux.solve(60, callbacks=[cb])
    cb.close()
    losses = {s["epoch"]: s["total_loss"] for s in cb.saved}
    best = min(losses, key=losses.get)
    assert cb.all_steps == sorted({best, 60})


# ----------------------------------------------------------------------------- resume
class EmaInverse(WeightingScheme):
    """A test scheme with evolving device state: weights ∝ 1 / EMA of the losses."""

    name = "ema_inverse"

    def init(self, losses):
        return jnp.asarray(losses, jnp.float32)

    def weights(self, state):
        inv = 1.0 / (state + 1e-8)
        return self.n * inv / inv.sum()

    def update(self, state, losses, epoch):
        return 0.9 * state + 0.1 * losses


def schedule_problem():
    """The spec's Poisson problem with an optax schedule (depends on the optimizer's step
    count) and a weighting scheme with device state."""
    domain = jno.domain.line(mesh_size=0.1)
    x, _ = domain.variable("interior")
    xb, _ = domain.variable("boundary")
    net = jno.nn.wrap(jno.nn.mlp(1, hidden_dims=8, num_layers=2, key=jax.random.PRNGKey(3)))
    net.optimizer(optax.adam(optax.exponential_decay(1e-2, 200, 0.5)))
    u, ub = net(x), net(xb)
    pde = -u.d2(x) - jno.np.sin(pi * x)
    w0, w1 = EmaInverse([pde.mse, ub.mse]).placeholders()
    return jno.core([w0 * pde.mse, w1 * ub.mse]), net


def test_resume_equals_uninterrupted_run_bitwise(tmp_path: Path) -> None:
    full, net_full = schedule_problem()
    h_full = full.solve(2000)

    first, _ = schedule_problem()
    cb = jno.callbacks.checkpoint(directory=tmp_path, save_interval_epochs=500)
    first.solve(1000, callbacks=[cb])
    cb.close()

    resumed, net_resumed = schedule_problem()  # a fresh solver, as in a new process
    data = jno.callbacks.checkpoint(directory=tmp_path).restore(crux=resumed)
    assert data.step == 1000 and resumed.epoch == 1000
    h_rest = resumed.solve(1000)
    np.testing.assert_array_equal(h_rest.epochs, np.arange(1000, 2000))
    np.testing.assert_array_equal(h_rest.losses, h_full.losses[1000:])
    for a, b in zip(jax.tree_util.tree_leaves(full.state), jax.tree_util.tree_leaves(resumed.state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # the networks hold the restored/trained values too
    x = jnp.linspace(0, 1, 5)[:, None]
    np.testing.assert_array_equal(np.asarray(jax.vmap(net_full.module)(x)), np.asarray(jax.vmap(net_resumed.module)(x)))


def test_restore_rejects_a_different_model(tmp_path: Path) -> None:
    p = small_problem(hidden=8)
    cb = jno.callbacks.checkpoint(directory=tmp_path, save_interval_epochs=100)
    p.crux.solve(2, callbacks=[cb])
    other = small_problem(hidden=6)
    with pytest.raises(CheckpointError, match=r"does not match this solver.*\(8, 1\).*\(6, 1\)"):
        cb.restore(crux=other.crux)


class Weights(HostWeights):
    name = "stateful_weights"

    def __init__(self) -> None:
        super().__init__(2)
        self.w = np.ones(2, np.float32)

    def current(self):
        return self.w

    def jno_state(self):
        return {"w": self.w.tolist()}

    def jno_load_state(self, state):
        self.w = np.asarray(state["w"], np.float32)


class Counter:
    name = "counter"
    interval = 1

    def __init__(self) -> None:
        self.n = 0

    @hookimpl
    def on_epoch(self, ctx, epoch):
        self.n += 1

    def jno_state(self):
        return {"n": self.n}

    def jno_load_state(self, state):
        self.n = state["n"]


def test_plugin_and_provider_state_round_trip(tmp_path: Path) -> None:
    p = small_problem()
    prov = Weights()
    prov.w = np.asarray([1.5, 0.5], np.float32)
    a, b = prov.placeholders()
    crux = jno.core([a * p.pde.mse, b * p.bc.mse])
    counter = Counter()
    cb = jno.callbacks.checkpoint(directory=tmp_path, save_interval_epochs=100)
    crux.solve(7, callbacks=[counter, cb])
    q = small_problem()
    prov2 = Weights()
    a2, b2 = prov2.placeholders()
    crux2 = jno.core([a2 * q.pde.mse, b2 * q.bc.mse])
    counter2 = Counter()
    cb.restore(crux=crux2, plugins=[counter2])
    np.testing.assert_array_equal(prov2.w, [1.5, 0.5])
    assert counter2.n == 7


# ----------------------------------------------------------------------------- corruption
@pytest.fixture
def saved(tmp_path: Path) -> Path:
    p = small_problem()
    cb = jno.callbacks.checkpoint(directory=tmp_path / "ck", save_interval_epochs=100)
    p.crux.solve(3, callbacks=[cb])
    cb.close()
    return tmp_path / "ck" / "3"


def test_truncated_state_file_names_the_file(saved: Path) -> None:
    f = saved / "state.safetensors"
    raw = f.read_bytes()
    f.write_bytes(raw[: len(raw) - 100])
    with pytest.raises(CheckpointError, match=f"{f}.*corrupt or truncated"):
        read_checkpoint(saved)
    f.write_bytes(raw[:5])
    with pytest.raises(CheckpointError, match=str(f)):
        read_checkpoint(saved)


def test_flipped_byte_is_detected(saved: Path) -> None:
    f = saved / "state.safetensors"
    raw = bytearray(f.read_bytes())
    raw[-7] ^= 0xFF
    f.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=f"{f}.*CRC-32"):
        read_checkpoint(saved)


def test_corrupt_metadata_names_the_file(saved: Path) -> None:
    (saved / "metadata.json").write_text('{"epoch": 3, "total_')
    with pytest.raises(CheckpointError, match=f"{saved / 'metadata.json'}.*not valid JSON"):
        read_checkpoint(saved)
    (saved / "metadata.json").unlink()
    with pytest.raises(CheckpointError, match="metadata.json is missing"):
        read_checkpoint(saved)


def test_garbage_header_names_the_file(saved: Path) -> None:
    f = saved / "state.safetensors"
    f.write_bytes(struct.pack("<Q", 10) + b"not json!!" + b"\0" * 16)
    with pytest.raises(CheckpointError, match=f"{f}.*unreadable header"):
        read_checkpoint(saved)


# ----------------------------------------------------------------------------- atomicity
WRITER = textwrap.dedent(
    """
    import io, os, sys, time
    import jno
    from jno_core.testing import small_problem
    import jno_plugin_checkpoint._format as F

    p = small_problem()
    cb = jno.callbacks.checkpoint(directory=sys.argv[1], save_interval_epochs=5, max_to_keep=None)
    p.crux.solve(10, callbacks=[cb])
    cb.close()                                   # checkpoints 5 and 10 are complete
    real = F.write_state_file

    def slow(f, arrays, metadata):               # write half of the file, then hang
        buf = io.BytesIO()
        real(buf, arrays, metadata)
        data = buf.getvalue()
        f.write(data[: len(data) // 2])
        f.flush()
        os.fsync(f.fileno())
        print("WRITING", flush=True)
        time.sleep(120)

    F.write_state_file = slow
    p.crux.solve(5, callbacks=[cb])
    cb.close()
    print("NOT KILLED", flush=True)
    """
)


def test_kill_mid_write_leaves_earlier_checkpoints_loadable(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    ck = tmp_path / "ck"
    proc = subprocess.Popen([sys.executable, str(script), str(ck)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "JNO_DISABLE_PLUGINS": os.environ.get("JNO_DISABLE_PLUGINS", "")})
    try:
        line = proc.stdout.readline()
        assert line.strip() == "WRITING", f"writer did not reach the save: {line!r} {proc.stderr.read() if proc.poll() is not None else ''}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    partial = [e for e in os.listdir(ck) if e.startswith(".tmp-15-")]
    assert partial, os.listdir(ck)  # the interrupted write is there, half-written ...
    cb = jno.callbacks.checkpoint(directory=ck)
    assert cb.all_steps == [5, 10]  # ... but not listed
    assert cb.restore().step == 10
    q = small_problem()
    cb.restore(step=5, crux=q.crux)
    assert q.crux.epoch == 5
    q.crux.solve(5, callbacks=[cb])  # the next writer removes the dead writer's temporary
    cb.close()
    assert cb.all_steps == [5, 10]
    assert not [e for e in os.listdir(ck) if e.startswith(".tmp-")]


# ----------------------------------------------------------------------------- run, hooks
class CheckpointSink(RecordingSink):
    plugin_name = "checkpoint-sink"

    def __init__(self) -> None:
        super().__init__()
        self.checkpoints: list[tuple[str, int, dict]] = []

    @hookimpl
    def save_checkpoint(self, path, epoch, metadata):
        assert (Path(path) / "metadata.json").exists()
        self.checkpoints.append((path, epoch, dict(metadata)))


def test_default_directory_and_save_checkpoint_hook(tmp_path: Path) -> None:
    dire = jno.setup("script.py", name="r", root=tmp_path / "runs", sinks="none")
    sink = CheckpointSink()
    dire.run.bus.add_sink(sink, "checkpoint-sink")  # a run sink, like the W&B sink
    cb = jno.callbacks.checkpoint(save_interval_epochs=10, max_to_keep=2)
    assert cb.directory == Path(dire) / "checkpoints"
    p = small_problem()
    p.crux.solve(25, callbacks=[cb])
    cb.close()
    dire.run.bus.flush()
    assert [e for _, e, _ in sink.checkpoints] == [10, 20, 25]
    assert sink.steps("loss/total")  # the same sink got the metrics
    path, epoch, meta = sink.checkpoints[0]
    assert path == str(Path(dire) / "checkpoints" / "10") and meta["epoch"] == 10
    assert {"total_loss", "individual_losses", "checkpoint_dir", "timestamp"} <= set(meta)
    assert cb.all_steps == [20, 25]


class SlowReadingSink(CheckpointSink):
    """A sink whose save_checkpoint reads every file of the checkpoint after a delay (as the
    W&B sink's artifact upload does), while training goes on writing and pruning."""

    plugin_name = "slow-reading-sink"

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.read_bytes: dict[int, int] = {}

    @hookimpl
    def save_checkpoint(self, path, epoch, metadata):
        import time

        time.sleep(self.delay)
        self.read_bytes[epoch] = sum(f.stat().st_size for f in Path(path).iterdir())
        super().save_checkpoint(path, epoch, metadata)


def test_checkpoint_is_not_pruned_before_the_sinks_read_it(tmp_path: Path) -> None:
    """max_to_keep=1 and a save every 10 epochs, with a sink that reads each checkpoint only
    50 ms after it is handed over: every hook still finds its files (before, pruning deleted
    them under the W&B sink's artifact upload, which then failed and was switched off for
    the rest of the run); after close() only the newest one is left."""
    dire = jno.setup("script.py", name="r", root=tmp_path / "runs", sinks="none")
    sink = SlowReadingSink(delay=0.05)
    dire.run.bus.add_sink(sink, "slow-reading-sink")
    cb = jno.callbacks.checkpoint(save_interval_epochs=10, max_to_keep=1)
    p = small_problem()
    p.crux.solve(60, callbacks=[cb])
    p.crux.solve(20, callbacks=[cb])
    cb.close()
    dire.run.bus.flush()
    assert [e for _, e, _ in sink.checkpoints] == [10, 20, 30, 40, 50, 60, 70, 80]
    assert all(n > 0 for n in sink.read_bytes.values()) and len(sink.read_bytes) == 8
    assert cb.all_steps == [80]


def test_no_directory_without_a_run_is_an_error() -> None:
    with pytest.raises(ConfigError, match="jno.setup"):
        jno.callbacks.checkpoint()


@pytest.mark.parametrize("kwargs", [{"save_interval_epochs": 0}, {"max_to_keep": -1}, {"best_fn": 3}])
def test_rejects_bad_arguments(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises((ValueError, TypeError)):
        jno.callbacks.checkpoint(directory=tmp_path, **kwargs)


def test_resume_with_relobralo_is_bitwise(tmp_path: Path) -> None:
    """ReLoBRaLo's state (weights, previous and initial losses) is in the checkpoint; its
    look-back draws depend only on the seed and the epoch."""
    pytest.importorskip("jno_plugin_relobralo")

    def problem():
        p = small_problem()
        w1, w2 = jno.fn.adaptive.relobralo([p.pde.mse, p.bc.mse], alpha=0.9, beta=0.5, tau=0.5)
        return jno.core([w1 * p.pde.mse, w2 * p.bc.mse])

    full = problem()
    h_full = full.solve(600)
    first = problem()
    cb = jno.callbacks.checkpoint(directory=tmp_path, save_interval_epochs=100)
    first.solve(300, callbacks=[cb])
    resumed = problem()
    data = cb.restore(crux=resumed)
    assert "['schemes']['000:relobralo']" in data.arrays
    np.testing.assert_array_equal(resumed.solve(300).losses, h_full.losses[300:])


def test_manual_save_outside_a_solve(tmp_path: Path) -> None:
    p = small_problem()
    cb = jno.callbacks.checkpoint(directory=tmp_path)
    cb.save(p.crux)  # before any solve: the initial state, epoch 0
    data = cb.restore(step=0)
    assert data.metadata["epoch"] == 0 and cb.all_steps == [0]
    np.testing.assert_allclose(data.metadata["individual_losses"], [float(v) for v in p.crux.eval(p.losses)], rtol=1e-5)
    for path, want in param_arrays(jax.device_get(p.crux.state)).items():
        np.testing.assert_array_equal(data.arrays[path], want)
