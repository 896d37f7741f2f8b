"""pluggy dispatches every broadcast hook: tryfirst/trylast order, new-style and old-style
wrappers around ``on_epoch`` and ``log_metrics``, and a failing implementation named whatever
its place in pluggy's order."""

import csv

import pytest

import jno
from jno_core import plugins
from jno_core.errors import JnoPluginError
from jno_core.hookspecs import hookimpl
from jno_core.testing import small_problem


class Begin:
    def __init__(self, name, events):
        self.name, self.events = name, events

    @hookimpl
    def on_solve_begin(self, ctx):
        self.events.append(self.name)


class First(Begin):
    @hookimpl(tryfirst=True)
    def on_solve_begin(self, ctx):
        self.events.append(self.name)


class Last(Begin):
    @hookimpl(trylast=True)
    def on_solve_begin(self, ctx):
        self.events.append(self.name)


def test_tryfirst_and_trylast_order_callbacks_as_pluggy_documents():
    events = []
    cbs = [Last("last", events), Begin("a", events), Begin("b", events), First("first", events)]
    small_problem().crux.solve(3, callbacks=cbs)
    # tryfirst runs first and trylast last, whatever their place in the list; the plain
    # callbacks run in list order
    assert events == ["first", "a", "b", "last"]


class Every:
    def __init__(self, name, interval, events):
        self.name, self.interval, self.events = name, interval, events

    @hookimpl
    def on_epoch(self, ctx, epoch):
        self.events.append((self.name, epoch))


class NewStyleWrapper:
    """No interval: wraps every on_epoch call."""

    name = "new-wrapper"

    def __init__(self, events):
        self.events = events

    @hookimpl(wrapper=True)
    def on_epoch(self, ctx, epoch):
        self.events.append(("enter", epoch))
        result = yield
        self.events.append(("exit", epoch))
        return result


class OldStyleWrapper:
    name = "old-wrapper"

    def __init__(self, events):
        self.events = events

    @hookimpl(hookwrapper=True)
    def on_epoch(self, ctx, epoch):
        self.events.append(("old-enter", epoch))
        outcome = yield
        outcome.get_result()
        self.events.append(("old-exit", epoch))


def test_wrappers_wrap_on_epoch_at_every_fire():
    events = []
    every = Every("every5", 5, events)
    small_problem(chunk_size=7).crux.solve(30, callbacks=[NewStyleWrapper(events), OldStyleWrapper(events), every])
    fired = [e for name, e in events if name == "every5"]
    assert fired == list(range(0, 30, 5))
    for e in fired:
        at = [ev for ev in events if ev[1] == e]
        # the new-style wrapper was registered last-but-one, the old-style one after it:
        # pluggy nests the later-called wrapper inside
        assert at == [("enter", e), ("old-enter", e), ("every5", e), ("old-exit", e), ("exit", e)]


class SeesEveryRecord:
    name = "record-watcher"

    def __init__(self):
        self.seen = {}

    @hookimpl(wrapper=True)
    def log_metrics(self, step, metrics):
        self.seen[step] = float(metrics["loss/total"].value) if "loss/total" in metrics else None
        return (yield)


def test_a_log_metrics_wrapper_sees_every_record_the_sinks_get(tmp_path):
    run_dir = jno.setup(__file__, name="wrapped", root=tmp_path, sinks=["csv"])
    watcher = SeesEveryRecord()
    plugins.register_plugin(watcher)
    try:
        prob = small_problem()
        prob.crux.solve(200, log_every=10)
        jno.finish()
    finally:
        plugins.unregister_plugin(watcher)
    with open(f"{run_dir}/metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    steps = sorted({int(r["step"]) for r in rows})
    assert sorted(watcher.seen) == steps
    for r in rows:
        if r.get("loss/total"):
            assert watcher.seen[int(r["step"])] == pytest.approx(float(r["loss/total"]), rel=1e-6)
    assert [s for s in steps if s % 10 == 0] == list(range(0, 200, 10))


class Boom:
    name = "boom-plugin"

    @hookimpl
    def on_solve_begin(self, ctx):
        raise RuntimeError("kaput")


def test_a_failing_implementation_is_named_whatever_its_place():
    events = []
    with pytest.raises(JnoPluginError) as info:
        small_problem().crux.solve(2, callbacks=[Begin("a", events), Boom(), Begin("b", events)])
    assert "'boom-plugin'" in str(info.value) and "on_solve_begin" in str(info.value)
    assert "kaput" in str(info.value)
    assert events == ["a"]  # pluggy stops at the failure; "b" comes after it


def test_on_epoch_failure_names_plugin_and_epoch():
    class Bad(Every):
        @hookimpl
        def on_epoch(self, ctx, epoch):
            if epoch == 6:
                raise ValueError("bad epoch")

    with pytest.raises(JnoPluginError) as info:
        small_problem().crux.solve(20, callbacks=[Every("ok", 3, []), Bad("bad3", 3, [])])
    assert "'bad3'" in str(info.value) and "at epoch 6" in str(info.value)
