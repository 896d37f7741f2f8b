"""The plugin contract: discovery (fake distributions and the real example plugin),
environment variables, registration errors, callback life cycle, hook order and interval
scheduling under chunking, step monotonicity, and sink isolation."""

from __future__ import annotations

import importlib.util
import itertools
import json
import subprocess
import sys
import textwrap
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

import jno
from jno_core import plugins
from jno_core.cli import format_plugin_table, main as cli_main
from jno_core.errors import JnoPluginError, UnknownNameError
from jno_core.hookspecs import hookimpl
from jno_core.testing import RecordingSink, small_problem
from jno_core.tracker import Tracker

_ids = itertools.count()
ENV_VARS = ("JNO_LOAD_PLUGINS", "JNO_DISABLE_PLUGINS", "JNO_TRACE_PLUGINS", "JNO_STRICT")


@pytest.fixture(autouse=True)
def isolated_plugins(monkeypatch):
    """Every test sees only the fake entry points it installs (none by default)."""
    for v in ENV_VARS:
        monkeypatch.delenv(v, raising=False)
    jno.finish()
    plugins.set_strict(None)
    monkeypatch.setattr(plugins, "_entry_points", lambda: [])
    plugins.reset()
    yield
    plugins.set_strict(None)
    plugins.reset()


class FakeDists:
    """Writes modules and ``*.dist-info`` folders (METADATA + entry_points.txt) into a temp
    directory on ``sys.path`` and points jno's entry-point scan at them."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.tag = f"{next(_ids)}_{abs(hash(str(root))) % 10**8}"
        monkeypatch.syspath_prepend(str(root))
        monkeypatch.setattr(plugins, "_entry_points", self.entry_points)
        self.modules: list[str] = []

    def entry_points(self) -> list[metadata.EntryPoint]:
        eps = [ep for d in metadata.distributions(path=[str(self.root)]) for ep in d.entry_points
               if ep.group == plugins.ENTRY_POINT_GROUP]
        return sorted(eps, key=lambda e: e.name)

    def add(self, dist: str, version: str, eps: dict[str, str]) -> dict[str, str]:
        """``eps``: entry-point name -> module source. Returns entry-point name -> module."""
        mods = {}
        lines = ["[jno]"]
        for ep_name, source in eps.items():
            mod = f"fakejno_{ep_name}_{self.tag}"
            (self.root / f"{mod}.py").write_text(textwrap.dedent(source))
            lines.append(f"{ep_name} = {mod}")
            mods[ep_name] = mod
            self.modules.append(mod)
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        return mods

    def cleanup(self) -> None:
        for m in self.modules:
            sys.modules.pop(m, None)


@pytest.fixture
def fakes(tmp_path, monkeypatch):
    f = FakeDists(tmp_path, monkeypatch)
    yield f
    f.cleanup()


def registering(kind: str, *names: str, extra: str = "") -> str:
    body = "\n".join(f"    register({n!r}, lambda **kw: ({n!r}, kw))" for n in names)
    return (
        "from jno_core.hookspecs import hookimpl\n\n"
        f"@hookimpl\ndef jno_register_{kind}(register):\n{body}\n" + textwrap.dedent(extra)
    )


ALPHA = registering("trackers", "alpha_tracker", extra="""
    @hookimpl
    def on_solve_end(ctx, history):
        pass

    @hookimpl
    def jno_register_sinks(register):
        register("alpha_sink", lambda run: None)

    class AlphaCallback:
        interval = 5

        @hookimpl
        def on_epoch(self, ctx, epoch):
            pass

    @hookimpl
    def jno_register_callbacks(register):
        register("alpha_callback", AlphaCallback)
    """)
BETA = registering("callbacks", "beta_callback")


# ---------------------------------------------------------------------------- discovery
def test_import_jno_scans_nothing():
    code = (
        "import sys, jno, jno_core.plugins as P\n"
        "mods = [m for m in sys.modules if m.startswith('jno_plugin')]\n"
        "print(P._pm is None, P._registries is None, mods)\n"
        "jno.trackers.__dir__()\n"
        "print(P._pm is not None)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["True True []", "True"]


def test_fake_distribution_names_resolve(fakes):
    fakes.add("jno-fake-alpha", "1.2.3", {"alpha": ALPHA})
    fakes.add("jno-fake-beta", "0.4.0", {"beta": BETA})
    assert jno.trackers.alpha_tracker(interval=2) == ("alpha_tracker", {"interval": 2})
    assert jno.callbacks.alpha_tracker is jno.trackers.alpha_tracker
    assert jno.callbacks.beta_callback()[0] == "beta_callback"
    assert plugins.lookup("sinks", "alpha_sink").plugin == "alpha"
    assert {"alpha_tracker", "beta_callback"} <= set(dir(jno.callbacks))
    recs = {r["name"]: r for r in plugins.describe_plugins()}
    assert recs["alpha"] == {
        "name": "alpha",
        "distribution": "jno-fake-alpha",
        "version": "1.2.3",
        "registers": {"trackers": ["alpha_tracker"], "callbacks": ["alpha_callback"], "sinks": ["alpha_sink"],
                      "weightings": [], "resamplers": []},
        "hooks": ["on_solve_end"],
        "object_hooks": {"alpha_callback": ["on_epoch"]},
    }
    assert recs["beta"]["registers"]["callbacks"] == ["beta_callback"]
    assert recs["beta"]["version"] == "0.4.0"


def test_cli_lists_fake_plugins(fakes, capsys):
    fakes.add("jno-fake-alpha", "1.2.3", {"alpha": ALPHA})
    assert cli_main(["plugins", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in data] == ["alpha"]
    assert data[0]["registers"]["sinks"] == ["alpha_sink"]
    assert cli_main(["plugins"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["NAME", "DISTRIBUTION", "VERSION", "REGISTERS", "HOOKS"]
    assert table[2].split()[:3] == ["alpha", "jno-fake-alpha", "1.2.3"]
    assert "trackers: alpha_tracker; callbacks: alpha_callback; sinks: alpha_sink" in table[2]
    assert table[2].rstrip().endswith("on_solve_end; on_epoch (objects)")
    assert "No jno plugins installed" in format_plugin_table([])


def test_unknown_name_lists_installed_and_first_party_distribution(fakes):
    fakes.add("jno-fake-alpha", "1.2.3", {"alpha": ALPHA})
    with pytest.raises(UnknownNameError) as info:
        jno.trackers.no_such_tracker
    msg = str(info.value)
    assert "jno.trackers.no_such_tracker" in msg and "alpha_tracker" in msg
    with pytest.raises(UnknownNameError, match="jno-plugin-gradients"):
        jno.trackers.gradient_norms
    with pytest.raises(UnknownNameError, match="jno-plugin-checkpoint"):
        jno.callbacks.checkpoint
    with pytest.raises(UnknownNameError, match="jno-plugin-relobralo"):
        jno.fn.adaptive.relobralo
    with pytest.raises(UnknownNameError, match=r"jno-plugin-csv.*Installed names: alpha_sink"):
        plugins.lookup("sinks", "csv")
    assert not hasattr(jno.trackers, "no_such_tracker")  # an AttributeError


BROKEN = "raise ImportError('simulated missing dependency zzz')\n"


def test_failing_import_is_skipped_with_warning(fakes):
    fakes.add("jno-fake-alpha", "1.2.3", {"alpha": ALPHA})
    fakes.add("jno-fake-broken", "0.1.0", {"broken": BROKEN})
    with pytest.warns(RuntimeWarning, match=r"'broken'.*jno-fake-broken.*zzz"):
        names = set(plugins.registry("trackers"))
    assert names == {"alpha_tracker"}


def test_failing_import_raises_in_strict_mode(fakes, monkeypatch):
    fakes.add("jno-fake-broken", "0.1.0", {"broken": BROKEN})
    monkeypatch.setenv("JNO_STRICT", "1")
    with pytest.raises(JnoPluginError, match=r"'broken'.*zzz"):
        plugins.registry("trackers")
    assert plugins._pm is None  # a later call retries


@pytest.mark.parametrize(
    ("load", "disable", "expected"),
    [(None, None, ["alpha", "beta"]), ("alpha", None, ["alpha"]), ("alpha, beta", None, ["alpha", "beta"]),
     ("", None, []), (None, "alpha", ["beta"]), ("alpha,beta", "beta", ["alpha"])],
)
def test_environment_selects_plugins(fakes, monkeypatch, load, disable, expected):
    fakes.add("jno-fake-alpha", "1.2.3", {"alpha": ALPHA})
    fakes.add("jno-fake-beta", "0.4.0", {"beta": BETA})
    if load is not None:
        monkeypatch.setenv("JNO_LOAD_PLUGINS", load)
    if disable is not None:
        monkeypatch.setenv("JNO_DISABLE_PLUGINS", disable)
    assert [r["name"] for r in plugins.describe_plugins()] == expected
    assert sorted(m for m in fakes.modules if m in sys.modules) == sorted(
        m for m in fakes.modules if any(m.startswith(f"fakejno_{e}_") for e in expected))


def test_trace_plugins_writes_hook_calls_to_stderr(fakes, monkeypatch, capsys):
    fakes.add("jno-fake-alpha", "1.2.3", {"alpha": ALPHA})
    monkeypatch.setenv("JNO_TRACE_PLUGINS", "1")
    pm = plugins.get_plugin_manager()
    pm.hook.on_solve_end(ctx=None, history="H")
    err = capsys.readouterr().err
    assert "on_solve_end" in err and "history" in err

    class Named:
        plugin_name = "traced-callback"

        @hookimpl
        def on_solve_begin(self, ctx):
            pass

    small_problem().crux.solve(2, callbacks=[Named()])
    assert "on_solve_begin -> traced-callback" in capsys.readouterr().err
    monkeypatch.setenv("JNO_TRACE_PLUGINS", "0")
    plugins.reset()
    plugins.get_plugin_manager().hook.on_solve_end(ctx=None, history="H")
    assert capsys.readouterr().err == ""


def test_two_plugins_registering_one_name_is_an_error(fakes):
    fakes.add("jno-fake-one", "1.0", {"one": registering("trackers", "shared_name")})
    fakes.add("jno-fake-two", "1.0", {"two": registering("callbacks", "shared_name")})
    with pytest.raises(JnoPluginError) as info:
        plugins.registry("trackers")
    msg = str(info.value)
    assert all(s in msg for s in ("'shared_name'", "'one'", "'two'", "jno-fake-one", "jno-fake-two"))


def test_hookimpl_with_unknown_argument_fails_at_registration(fakes):
    class Bad:
        interval = 1

        @hookimpl
        def on_epoch(self, ctx, epoch, extra_arg):
            pass

    with pytest.raises(JnoPluginError, match=r"'bad-plugin'.*extra_arg"):
        plugins.register_plugin(Bad(), name="bad-plugin")
    fakes.add("jno-fake-badargs", "1.0", {"badargs": "from jno_core.hookspecs import hookimpl\n"
                                          "@hookimpl\ndef log_metrics(step, metrics, colour):\n    pass\n"})
    plugins.reset()
    with pytest.raises(JnoPluginError, match=r"'badargs'.*colour"):
        plugins.get_plugin_manager()


def test_unknown_hook_name_fails_at_registration():
    class Typo:
        @hookimpl
        def on_epochs(self, ctx, epoch):
            pass

    with pytest.raises(JnoPluginError, match=r"'typo'.*on_epochs"):
        plugins.register_plugin(Typo(), name="typo")


@pytest.mark.parametrize("bad", [0, -3, 1.5, True])
def test_callback_interval_must_be_positive(bad):
    class Cb:
        name = "my_callback"
        interval = bad

    crux = small_problem().crux
    with pytest.raises(JnoPluginError, match=r"'my_callback'.*interval"):
        crux.solve(5, callbacks=[Cb()])


def test_tracker_interval_rejected_with_its_name():
    class T(Tracker):
        name = "my_tracker"

    with pytest.raises(ValueError, match="my_tracker"):
        T(interval=0)


def test_tracker_non_metric_value_rejected_with_its_name():
    class T(Tracker):
        name = "bad_metrics"

        def compute(self, ctx, epoch):
            return {}

        def metrics(self, value):
            return {"oops": "a string"}

    with pytest.raises(JnoPluginError, match=r"bad_metrics.*oops"):
        small_problem().crux.solve(3, callbacks=[T(interval=1)])


# ---------------------------------------------------------------------------- the solve loop
class Recorder:
    """Records the order of hook calls."""

    def __init__(self, name, interval, events):
        self.name, self.interval, self.events = name, interval, events
        self.epochs: list[int] = []

    @hookimpl
    def on_solve_begin(self, ctx):
        self.events.append((self.name, "begin", ctx.epoch, plugins.get_plugin_manager().is_registered(self)))

    @hookimpl
    def on_epoch(self, ctx, epoch):
        assert ctx.epoch == epoch
        self.epochs.append(epoch)
        self.events.append((self.name, "epoch", epoch, float(ctx.total_loss(ctx.params))))

    @hookimpl
    def on_chunk_end(self, ctx, epochs, losses):
        self.events.append((self.name, "chunk", np.asarray(epochs).copy(), np.asarray(losses).copy()))

    @hookimpl
    def on_solve_end(self, ctx, history):
        self.events.append((self.name, "end", ctx.epoch, history))


def test_hook_order_and_interval_scheduling_under_chunking():
    prob = small_problem(chunk_size=5)
    events: list = []
    r3, r7 = Recorder("r3", 3, events), Recorder("r7", 7, events)
    hist = prob.crux.solve(40, callbacks=[r3, r7], log_every=1000)
    assert r3.epochs == list(range(0, 40, 3))
    assert r7.epochs == list(range(0, 40, 7))
    # on_solve_begin once per plugin, before anything else, while registered
    assert [e[:4] for e in events[:2]] == [("r3", "begin", 0, True), ("r7", "begin", 0, True)]
    assert sum(e[1] == "begin" for e in events) == 2
    assert [e[1] for e in events[-2:]] == ["end", "end"] and all(e[3] is hist for e in events[-2:])
    # chunks of at most 5 epochs that cover [0, 40) and break at every fire epoch
    chunks = [e[2] for e in events if e[0] == "r3" and e[1] == "chunk"]
    assert np.array_equal(np.concatenate(chunks), np.arange(40))
    assert max(len(c) for c in chunks) <= 5
    starts = {int(c[0]) for c in chunks}
    assert set(range(0, 40, 3)) | set(range(0, 40, 7)) <= starts
    # each fire runs after the chunk that ends at its epoch, with that epoch's parameters:
    # the loss recomputed there equals the history's loss at the epoch
    for i, ev in enumerate(events):
        if ev[1] == "epoch":
            if ev[2] > 0:
                prev_chunks = [e for e in events[:i] if e[1] == "chunk"]
                assert prev_chunks[-1][2][-1] == ev[2] - 1
            np.testing.assert_allclose(ev[3], hist.total_loss[ev[2]], rtol=1e-5)
    # chunk losses are the history's rows
    np.testing.assert_array_equal(np.concatenate([e[3] for e in events if e[0] == "r3" and e[1] == "chunk"])[:, 0],
                                  hist.total_loss)
    # unregistered after the solve
    pm = plugins.get_plugin_manager()
    assert not pm.is_registered(r3) and not pm.is_registered(r7)


def test_second_solve_continues_global_epochs():
    prob = small_problem(chunk_size=5)
    events: list = []
    r = Recorder("r", 4, events)
    prob.crux.solve(10, callbacks=[r])
    prob.crux.solve(10, callbacks=[r])
    assert r.epochs == [0, 4, 8, 12, 16]
    assert [e[2] for e in events if e[1] == "begin"] == [0, 10]


class Raising:
    name = "raising-callback"
    interval = 2

    def __init__(self, when):
        self.when = when

    @hookimpl
    def on_solve_begin(self, ctx):
        assert plugins.get_plugin_manager().is_registered(self)
        if self.when == "begin":
            raise RuntimeError("boom at begin")

    @hookimpl
    def on_epoch(self, ctx, epoch):
        if self.when == "epoch" and epoch == 4:
            raise RuntimeError("boom at epoch 4")


def test_callbacks_unregistered_even_when_solve_raises():
    crux = small_problem(chunk_size=5).crux
    cb = Raising("epoch")
    with pytest.raises(JnoPluginError, match=r"'raising-callback'.*epoch 4.*boom"):
        crux.solve(10, callbacks=[cb])
    assert not plugins.get_plugin_manager().is_registered(cb)
    cb2 = Raising("begin")
    with pytest.raises(JnoPluginError, match=r"'raising-callback'.*on_solve_begin.*boom at begin"):
        crux.solve(10, callbacks=[cb2])
    assert not plugins.get_plugin_manager().is_registered(cb2)
    ok = Raising("never")
    hist = crux.solve(6, callbacks=[ok])  # the solver is usable again
    assert hist.n_epochs == 6


def test_log_metrics_steps_monotone_across_solves():
    crux = small_problem(chunk_size=7).crux
    sink = RecordingSink()
    h1 = crux.solve(30, callbacks=[sink], log_every=10)
    h2 = crux.solve(30, callbacks=[sink], log_every=10)
    steps = [s for s, _ in sink.records]
    assert steps == sorted(steps) and steps[0] == 0 and steps[-1] >= 50
    assert sink.steps("loss/total") == [0, 10, 20, 30, 40, 50]
    want = np.concatenate([h1.total_loss, h2.total_loss])[::10]
    got = [float(m["loss/total"].value) for _, m in sink.records if "loss/total" in m]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert sink.steps("loss/constraint_1") == [0, 10, 20, 30, 40, 50]


class BadSink:
    plugin_name = "bad-sink"

    def __init__(self):
        self.calls = 0

    @hookimpl
    def log_metrics(self, step, metrics):
        self.calls += 1
        raise OSError("disk full (simulated)")


def test_raising_sink_does_not_lose_other_sinks_metrics(capsys):
    crux = small_problem(chunk_size=7).crux
    good_before, bad, good_after = RecordingSink(), BadSink(), RecordingSink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        crux.solve(30, callbacks=[good_before, bad, good_after], log_every=5)
    reports = [w for w in caught if "bad-sink" in str(w.message)]
    assert len(reports) == 1 and "disk full" in str(reports[0].message)
    assert bad.calls == 1
    for good in (good_before, good_after):
        assert good.steps("loss/total") == [0, 5, 10, 15, 20, 25]
    capsys.readouterr()


def test_raising_sink_reraises_in_strict_mode(monkeypatch):
    monkeypatch.setenv("JNO_STRICT", "1")
    crux = small_problem(chunk_size=7).crux
    good, bad = RecordingSink(), BadSink()
    with pytest.raises(JnoPluginError, match=r"bad-sink.*disk full"):
        crux.solve(20, callbacks=[bad, good], log_every=5)
    # training stops at the next hand-over; the good sink got every logged epoch before it
    assert 0 < crux.epoch <= 20
    assert good.steps("loss/total") == list(range(0, crux.epoch, 5))
    assert not plugins.get_plugin_manager().is_registered(bad)


class FlushFails(RecordingSink):
    plugin_name = "flush-fails"

    @hookimpl
    def flush_metrics(self):
        raise OSError("cannot flush (simulated)")


def test_strict_sink_error_at_the_final_flush_still_unregisters(monkeypatch):
    # the error surfaces only in solve()'s final flush: the callbacks must still be
    # unregistered and the solver usable
    monkeypatch.setenv("JNO_STRICT", "1")
    crux = small_problem(chunk_size=7).crux
    sink, probe = FlushFails(), Raising("never")
    with pytest.raises(JnoPluginError, match=r"flush-fails.*cannot flush"):
        crux.solve(10, callbacks=[sink, probe], log_every=5)
    assert sink.steps("loss/total") == [0, 5]
    pm = plugins.get_plugin_manager()
    assert not pm.is_registered(sink) and not pm.is_registered(probe)
    monkeypatch.delenv("JNO_STRICT")
    assert crux.solve(3).n_epochs == 3


# ---------------------------------------------------------------------------- real discovery
def _example_installed() -> bool:
    return importlib.util.find_spec("jno_plugin_example") is not None


@pytest.mark.skipif(not _example_installed(), reason="pip install -e plugins/jno-plugin-example")
def test_real_example_plugin_discovered(monkeypatch):
    monkeypatch.undo()  # the real entry-point scan
    plugins.reset()
    entry = plugins.lookup("trackers", "parameter_norm")
    assert entry.distribution == "jno-plugin-example"
    assert jno.trackers.parameter_norm is entry.factory is jno.callbacks.parameter_norm
    exe = Path(sys.executable).with_name("jno")
    if not exe.exists():
        pytest.skip("the jno console script is not installed: pip install -e .")
    out = subprocess.run([str(exe), "plugins", "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    recs = {r["distribution"]: r for r in json.loads(out.stdout)}
    assert "parameter_norm" in recs["jno-plugin-example"]["registers"]["trackers"]
    assert recs["jno-plugin-example"]["version"] == metadata.version("jno-plugin-example")
