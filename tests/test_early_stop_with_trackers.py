"""Early stopping decides on the per-epoch losses, so attaching trackers (which change where
chunks end and how many deferred-fire slots a chunk uses) must not move the epoch it stops at
(issue 15)."""

from __future__ import annotations

import numpy as np
import pytest

import jno
from jno_core import plugins
from jno_core.testing import small_problem


@pytest.fixture(autouse=True)
def _plugins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    jno.finish()
    plugins.reset()
    yield


def _run(trackers, interval):
    p = small_problem(chunk_size=50)
    # the monitored value is log10(loss) rounded to 0.1: it improves in steps while training
    # goes fast, then a step takes longer than the patience part-way through the solve
    es = jno.callbacks.early_stopping(patience=40, min_delta=0.0, interval=interval,
                                      metric_fn=lambda rows: np.round(np.log10(rows[:, 0]), 1))
    hist = p.crux.solve(3000, callbacks=[es, *trackers(p)])
    return es, hist, p.crux.epoch


def _trackers(every):
    def make(p):
        return [jno.trackers.gradient_norms(interval=every), jno.trackers.residual_stats(interval=every),
                jno.trackers.cos_similarity(interval=2 * every)]
    return make


@pytest.mark.parametrize("interval", [None, 10])
@pytest.mark.parametrize("every", [3, 10])
def test_early_stopping_stops_at_the_same_epoch_with_and_without_trackers(interval, every) -> None:
    es0, h0, end0 = _run(lambda p: [], interval)
    es1, h1, end1 = _run(_trackers(every), interval)
    assert es0.stopped_epoch is not None and 40 <= es0.stopped_epoch < 2900  # it did stop, early
    assert es1.stopped_epoch == es0.stopped_epoch and es1.best_epoch == es0.best_epoch
    assert es1.best_metric == es0.best_metric
    # the trajectory up to the stop is the same
    n = es0.stopped_epoch + 1
    np.testing.assert_array_equal(h1.total_loss[:n], h0.total_loss[:n])
    # where the solve ends: the end of the chunk holding the stop epoch, so with trackers at
    # multiples of the decision interval the solve ends at the very same epoch
    assert end0 > es0.stopped_epoch and end1 > es1.stopped_epoch
    if interval is not None and interval % every == 0:
        assert end1 == end0 == (es0.stopped_epoch // interval + 1) * interval
