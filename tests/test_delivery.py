"""jno_core.delivery.MetricsBus: batched delivery (``log_metrics_batch``), the per-record
fallback, ordering with checkpoints and flushes, and failing sinks inside a batch."""

from __future__ import annotations

import threading
import warnings
from typing import Any

import numpy as np
import pytest

from jno_core.delivery import MetricsBus
from jno_core.errors import JnoPluginError
from jno_core.hookspecs import hookimpl
from jno_core.metrics import Scalar
from jno_core.testing import BatchRecordingSink, RecordingSink, small_problem


class Gate:
    """A sink whose first call blocks until :meth:`open`: everything put meanwhile queues up
    and reaches the other sinks as one batch."""

    plugin_name = "gate"

    def __init__(self) -> None:
        self.entered = threading.Event()
        self._go = threading.Event()
        self.calls: list[Any] = []

    def open(self) -> None:
        self._go.set()

    @hookimpl
    def log_metrics(self, step: int, metrics: Any) -> None:
        self.calls.append(step)
        self.entered.set()
        self._go.wait(10)


def _m(step: int) -> dict[str, Scalar]:
    return {"loss/total": Scalar(1.0 / (step + 1))}


def _queued_while_blocked(bus: MetricsBus, gate: Gate, steps: list[int], between: Any = None) -> None:
    bus.put(steps[0], _m(steps[0]))
    assert gate.entered.wait(10)
    for s in steps[1:]:
        if between is not None and s == between[0]:
            between[1]()
        bus.put(s, _m(s))
    gate.open()
    bus.flush()


def test_everything_queued_reaches_a_batch_sink_in_one_call_in_order() -> None:
    bus = MetricsBus()
    gate, batch, single = Gate(), BatchRecordingSink(), RecordingSink()
    for sink in (gate, batch, single):
        bus.add_sink(sink, sink.plugin_name)
    steps = [0, 5, 5, 10, 15, 20]
    _queued_while_blocked(bus, gate, steps)
    assert batch.batches == [1, 5]  # the first record alone, then the five queued behind it
    assert [s for s, _ in batch.records] == steps
    assert [s for s, _ in single.records] == steps  # fallback: one log_metrics call per record
    assert gate.calls == steps
    np.testing.assert_allclose([m["loss/total"].value for _, m in batch.records], [1 / (s + 1) for s in steps])
    assert bus.delivered_steps == steps
    bus.close()


def test_put_many_is_one_batch_in_order_and_merges_with_records_queued_around_it() -> None:
    bus = MetricsBus()
    batch, single = BatchRecordingSink(), RecordingSink()
    for sink in (batch, single):
        bus.add_sink(sink, sink.plugin_name)
    bus.put_many([(s, _m(s)) for s in (0, 50, 100)])
    bus.flush()
    assert batch.batches == [3]  # one queue item, one call
    bus.put_many([])  # nothing queued, nothing delivered
    gate = Gate()
    bus.add_sink(gate, gate.plugin_name)
    bus.put(150, _m(150))
    assert gate.entered.wait(10)
    bus.put_many([(s, _m(s)) for s in (200, 250)])
    bus.put(300, _m(300))
    gate.open()
    bus.flush()
    assert batch.batches == [3, 1, 3]  # the items queued behind the gate arrive together
    assert [s for s, _ in batch.records] == [0, 50, 100, 150, 200, 250, 300]
    assert [s for s, _ in single.records] == [0, 50, 100, 150, 200, 250, 300]
    np.testing.assert_allclose([m["loss/total"].value for _, m in single.records],
                               [1 / (s + 1) for s in (0, 50, 100, 150, 200, 250, 300)])
    bus.close()


def test_a_checkpoint_splits_the_batch_and_keeps_its_place() -> None:
    order: list[Any] = []

    class Both(BatchRecordingSink):
        @hookimpl
        def log_metrics_batch(self, records: Any) -> None:
            order.append(("batch", [s for s, _ in records]))

        @hookimpl
        def save_checkpoint(self, path: str, epoch: int, metadata: Any) -> None:
            order.append(("ckpt", epoch))

        @hookimpl
        def flush_metrics(self) -> None:
            order.append(("flush",))

    bus = MetricsBus()
    gate, sink = Gate(), Both()
    bus.add_sink(gate, "gate")
    bus.add_sink(sink, "both")
    _queued_while_blocked(bus, gate, [0, 1, 2, 3, 4],
                          between=(3, lambda: bus.put_checkpoint("/c/2", 2, {"epoch": 2})))
    assert order == [("batch", [0]), ("batch", [1, 2]), ("ckpt", 2), ("batch", [3, 4]), ("flush",)]
    bus.close()


class RaisingBatchSink(BatchRecordingSink):
    plugin_name = "raising-batch"

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    @hookimpl
    def log_metrics_batch(self, records: Any) -> None:
        self.calls += 1
        raise OSError("disk full (simulated)")


class RaisingOnThird(RecordingSink):
    """A per-record sink that fails on its third record."""

    plugin_name = "raising-third"

    @hookimpl
    def log_metrics(self, step: int, metrics: Any) -> None:
        if len(self.records) == 2:
            raise ValueError("third record rejected (simulated)")
        super().log_metrics(step, metrics)


def test_failing_sinks_in_a_batch_are_reported_once_and_the_others_keep_everything(capsys) -> None:
    bus = MetricsBus()
    gate, bad_batch, bad_third, good = Gate(), RaisingBatchSink(), RaisingOnThird(), BatchRecordingSink()
    for sink in (gate, bad_batch, bad_third, good):
        bus.add_sink(sink, sink.plugin_name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _queued_while_blocked(bus, gate, [0, 1, 2, 3, 4])
        bus.put(5, _m(5))
        bus.flush()
    msgs = [str(w.message) for w in caught]
    assert sum("raising-batch" in m for m in msgs) == 1 and any("disk full" in m for m in msgs)
    assert sum("raising-third" in m for m in msgs) == 1 and any("third record rejected" in m for m in msgs)
    assert bad_batch.calls == 1  # skipped after its first failure
    assert [s for s, _ in bad_third.records] == [0, 1]  # nothing after the failing record
    assert [s for s, _ in good.records] == [0, 1, 2, 3, 4, 5]
    assert set(bus.failed) == {"raising-batch", "raising-third"}
    bus.close()
    capsys.readouterr()


def test_strict_mode_reraises_a_batch_sink_error_after_the_others_got_the_batch() -> None:
    bus = MetricsBus(strict=True)
    bad, good = RaisingBatchSink(), BatchRecordingSink()
    bus.add_sink(bad, "raising-batch")
    bus.add_sink(good, "good")
    bus.put(0, _m(0))
    with pytest.raises(JnoPluginError, match=r"raising-batch failed in log_metrics_batch.*disk full"):
        bus.flush()
    assert [s for s, _ in good.records] == [0]
    bus.put(1, _m(1))
    bus.flush()  # reported once: the sink is skipped from then on
    assert [s for s, _ in good.records] == [0, 1] and bad.calls == 1
    bus.close()


def test_solve_delivers_batches_in_step_order_and_flushes_before_returning() -> None:
    crux = small_problem(chunk_size=7).crux
    batch, single = BatchRecordingSink(), RecordingSink()
    h1 = crux.solve(30, callbacks=[batch, single], log_every=5)
    # solve() returned: everything was delivered
    assert batch.steps("loss/total") == single.steps("loss/total") == [0, 5, 10, 15, 20, 25]
    crux.solve(10, callbacks=[batch, single], log_every=5)
    steps = [s for s, _ in batch.records]
    assert steps == sorted(steps) == [s for s, _ in single.records]
    assert batch.steps("loss/total") == [0, 5, 10, 15, 20, 25, 30, 35]
    assert sum(batch.batches) == len(batch.records)
    got = [float(m["loss/total"].value) for _, m in batch.records if "loss/total" in m][:6]
    np.testing.assert_allclose(got, h1.total_loss[::5], rtol=1e-6)
