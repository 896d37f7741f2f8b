"""jno-plugin-resampling: ``jno.resampling.random``, ``jno.resampling.rad``, ``jno.resampling.r3``.

Entry point ``resampling = "jno_plugin_resampling"`` (group ``"jno"``)::

    x, t, _ = dom.variable("interior", sample=(2500, "sobol"))
    pde = u.d(t) + u * u.d(x) - nu * u.d2(x)
    rad = jno.resampling.rad(pde, domain=dom, every=1000, k=1.0, c=1.0, pool_factor=4, seed=0)
    crux.solve(20_000, callbacks=[rad])

Each resampler replaces the residual's point set on the device between chunks (same count,
dtype and sharding: nothing recompiles), logs ``resample/kept_fraction`` and
``resample/mean_residual``, is reproducible from ``seed`` and saves its state in checkpoints.
See ``docs/resampling.md``.
"""

from __future__ import annotations

from typing import Any, Callable

from jno_core.api import hookimpl

from ._methods import r3_retain_mask, r3_update, rad_probabilities, rad_select, residual_magnitude
from ._resampler import R3, RAD, RandomResampler, Resampler

__all__ = [
    "random", "rad", "r3", "Resampler", "RandomResampler", "RAD", "R3",
    "rad_probabilities", "rad_select", "r3_retain_mask", "r3_update", "residual_magnitude",
    "jno_register_resamplers",
]


def random(residual: Any, *, domain: Any, every: int = 1000, seed: int = 0) -> RandomResampler:
    """``jno.resampling.random(pde, domain=dom, every=1000, seed=0)``: fresh uniform points
    every ``every`` epochs. See :class:`RandomResampler`."""
    return RandomResampler(residual, domain=domain, every=every, seed=seed)


def rad(residual: Any, *, domain: Any, every: int = 1000, k: float = 1.0, c: float = 1.0, pool_factor: int = 4,
        seed: int = 0, replace: bool = False) -> RAD:
    """``jno.resampling.rad(pde, domain=dom, every=1000, k=1.0, c=1.0, pool_factor=4, seed=0,
    replace=False)``: RAD (Wu et al. 2023). See :class:`RAD`."""
    return RAD(residual, domain=domain, every=every, k=k, c=c, pool_factor=pool_factor, seed=seed, replace=replace)


def r3(residual: Any, *, domain: Any, every: int = 1000, seed: int = 0) -> R3:
    """``jno.resampling.r3(pde, domain=dom, every=1000, seed=0)``: R3 (Daw et al. 2023).
    See :class:`R3`."""
    return R3(residual, domain=domain, every=every, seed=seed)


@hookimpl
def jno_register_resamplers(register: Callable[..., None]) -> None:
    """Register ``random``, ``rad`` and ``r3`` (``jno.resampling.<name>``)."""
    register("random", random)
    register("rad", rad)
    register("r3", r3)
