"""jno-plugin-checkpoint and optimizer phases: a checkpoint records the optimizer each network
was training with, resuming an L-BFGS phase equals the uninterrupted run bit for bit, and a
checkpoint of another optimizer is refused with both names."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import optax
import pytest

import jno
from jno_core.errors import CheckpointError
from jno_core.testing import small_problem

LBFGS = "chain(scale_by_lbfgs, scale_by_zoom_linesearch)"
ADAM = "chain(scale_by_adam, lr=0.001)"


def _problem():
    return small_problem(hidden=8, mesh_size=0.1, chunk_size=10)


def test_resume_in_an_lbfgs_phase_equals_the_uninterrupted_run_bitwise(tmp_path: Path) -> None:
    full = _problem()
    full.crux.solve(30)
    full.net.optimizer(optax.lbfgs())
    h_full = full.crux.solve(30)

    first = _problem()
    first.crux.solve(30)
    first.net.optimizer(optax.lbfgs())
    cb = jno.callbacks.checkpoint(directory=tmp_path, save_interval_epochs=15)
    first.crux.solve(15, callbacks=[cb])
    cb.close()
    data = jno.callbacks.checkpoint(directory=tmp_path).restore()
    assert data.step == 45
    assert data.structure["optimizers"] == {first.net.name: LBFGS}

    resumed = _problem()  # a fresh solver, as in a new process: set the saved optimizer first
    resumed.net.optimizer(optax.lbfgs())
    jno.callbacks.checkpoint(directory=tmp_path).restore(crux=resumed.crux)
    assert resumed.crux.epoch == 45
    h_rest = resumed.crux.solve(15)
    np.testing.assert_array_equal(h_rest.epochs, np.arange(45, 60))
    np.testing.assert_array_equal(h_rest.losses, h_full.losses[15:])
    for a, b in zip(jax.tree_util.tree_leaves(full.crux.state), jax.tree_util.tree_leaves(resumed.crux.state),
                    strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_restoring_another_optimizers_state_names_both_and_the_fix(tmp_path: Path) -> None:
    p = _problem()
    p.net.optimizer(optax.lbfgs())
    cb = jno.callbacks.checkpoint(directory=tmp_path, save_interval_epochs=5)
    p.crux.solve(5, callbacks=[cb])
    cb.close()
    other = _problem()  # still Adam
    with pytest.raises(CheckpointError) as err:
        jno.callbacks.checkpoint(directory=tmp_path).restore(crux=other.crux)
    msg = str(err.value)
    assert LBFGS in msg and ADAM in msg and "before restoring" in msg
    assert other.crux.epoch == 0  # nothing was loaded


def test_same_optimizer_other_rate_restores_with_a_warning(tmp_path: Path) -> None:
    p = _problem()
    cb = jno.callbacks.checkpoint(directory=tmp_path, save_interval_epochs=5)
    p.crux.solve(5, callbacks=[cb])
    cb.close()
    other = _problem()
    other.net.optimizer(optax.adam(1e-2))
    with pytest.warns(RuntimeWarning, match=r"other optimizer settings.*lr=0\.001.*lr=0\.01"):
        jno.callbacks.checkpoint(directory=tmp_path).restore(crux=other.crux)
    assert other.crux.epoch == 5
    for a, b in zip(jax.tree_util.tree_leaves(p.crux.state), jax.tree_util.tree_leaves(other.crux.state),
                    strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
