"""The loop's schedule (jno_core.schedule): pure functions of integers, tested without JAX."""

import numpy as np

from jno_core.schedule import deferred_epochs, next_fire, plan_chunk, taper_epochs


def _lengths(end, cap, taper, log_every, **kw):
    args = dict(host_intervals=[], deferred_intervals=[], postpone=False, slots=8)
    args.update(kw)
    e, out = 0, []
    while e < end:
        n = plan_chunk(e, end, cap, taper=taper, log_every=log_every, **args).n
        out.append(n)
        e += n
    return out


def test_schedule_depends_on_numpy_only():
    import ast
    import jno_core.schedule as S

    tree = ast.parse(open(S.__file__).read())
    mods = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    mods |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert mods <= {"__future__", "typing", "numpy"}, mods


def test_end_of_solve_taper_halves_the_chunks_down_to_the_taper():
    assert _lengths(2000, 1000, 0, 50) == [1000, 1000]
    assert _lengths(2000, 1000, 50, 50) == [1000, 500, 250, 150, 50, 50]
    # never a rest shorter than the taper: 260 left with taper 200 is one chunk
    assert _lengths(1260, 1000, 200, 50) == [650, 350, 260]
    # lengths are multiples of log_every while more than a taper is left
    assert _lengths(1000, 1000, 32, 10) == [500, 250, 130, 60, 60]
    assert sum(_lengths(777, 300, 40, 7)) == 777
    assert taper_epochs(1000, 50) == 63 and taper_epochs(100, 50) == 50


def test_host_plugins_end_chunks_at_their_epochs():
    # a host plugin every 7 epochs: a chunk boundary at every multiple of 7
    assert _lengths(30, 1000, 0, 50, host_intervals=[7]) == [7, 7, 7, 7, 2]
    assert next_fire(0, [7, 5]) == 5 and next_fire(5, [7, 5]) == 7 and next_fire(3, []) is None


def test_deferred_fires_get_snapshot_slots_without_ending_the_chunk():
    # epochs after 0 that are multiples of 3 or 5, below 20, brute force
    want = sorted({s for s in range(1, 20) if s % 3 == 0 or s % 5 == 0})
    assert deferred_epochs(0, 20, [3, 5], 100) == want
    assert deferred_epochs(0, 20, [3, 5], 4) == want[:4]
    plan = plan_chunk(0, 100, 1000, host_intervals=[], deferred_intervals=[10],
                      postpone=False, taper=0, log_every=50, slots=8)
    # 9 deferred epochs (10..90) > 8 slots would end the chunk at the 9th; with 3*8 > 9 left
    # the plan keeps max(1, 9 // 3) = 3 slots per chunk: a host visit at the 4th fire epoch
    assert plan.snap_epochs == [10, 20, 30] and plan.n == 40
    np.testing.assert_array_equal(plan.snap_at, [10, 20, 30, -1, -1, -1, -1, -1])


def test_postponed_fires_take_a_snapshot_at_the_chunks_first_epoch():
    plan = plan_chunk(100, 1100, 1000, host_intervals=[], deferred_intervals=[50],
                      postpone=True, taper=0, log_every=50, slots=8)
    assert plan.snap_epochs[0] == 100 and all(s % 50 == 0 for s in plan.snap_epochs)
