"""Point samplers on the unit cube ``[0, 1)^d``, mapped onto shapes by :mod:`.shapes`.

``sample=(n, sampler)`` in :meth:`Domain.variable` names one of

* ``"grid"``: the domain's uniform grid (``mesh_size``); ``n`` smaller than the grid draws a
  seeded subset of the grid points without replacement;
* ``"uniform"``: pseudo-random, ``numpy.random.Generator.random``;
* ``"sobol"``: scrambled Sobol' sequence (``scipy.stats.qmc.Sobol``, Owen scrambling);
* ``"halton"``: scrambled Halton sequence (``scipy.stats.qmc.Halton``);
* ``"lhs"``: Latin hypercube (``scipy.stats.qmc.LatinHypercube``);
* a callable ``fn(n, d, rng) -> (n, d)`` array in ``[0, 1]^d`` (``rng`` a
  ``numpy.random.Generator``); jno maps it onto the shape.

Seeds. Every tag draws from its own stream: the generator
``numpy.random.default_rng([seed, zlib.crc32(tag.encode())])`` (see :func:`tag_rng`), which is
passed to scipy's engines as their ``seed``/``rng``. So
``dom.variable("interior", sample=(n, "sobol"))`` on a box-shaped domain with ``seed=s`` gives
exactly ``lo + (hi - lo) * Sobol(d, seed=tag_rng(s, "interior")).random(n)``.
"""

from __future__ import annotations

import inspect
import warnings
import zlib
from typing import Any, Callable

import numpy as np

__all__ = ["SAMPLERS", "tag_rng", "UnitStream", "check_sampler", "sampler_name"]

#: the named samplers (``"grid"`` is handled by the domain: it subsets the grid)
SAMPLERS = ("grid", "uniform", "sobol", "halton", "lhs")


def tag_rng(seed: int, tag: str) -> np.random.Generator:
    """The generator a tag's samples are drawn from: ``default_rng([seed, crc32(tag)])``."""
    return np.random.default_rng([int(seed), zlib.crc32(tag.encode())])


def check_sampler(sampler: Any) -> Any:
    """Validate a sampler spec (a name of :data:`SAMPLERS` or a callable)."""
    if callable(sampler):
        return sampler
    if isinstance(sampler, str) and sampler.lower() in SAMPLERS:
        return sampler.lower()
    raise ValueError(
        f"unknown sampler {sampler!r}; expected one of {', '.join(repr(s) for s in SAMPLERS)} or a "
        "callable fn(n, d, rng) returning an (n, d) array in [0, 1], e.g. sample=(4096, 'sobol')."
    )


def sampler_name(sampler: Any) -> str:
    """A printable name for ``config.json``."""
    return sampler if isinstance(sampler, str) else getattr(sampler, "__name__", type(sampler).__name__)


def _qmc_engine(cls: Any, d: int, rng: np.random.Generator) -> Any:
    # scipy >= 1.15 names the argument ``rng``; older versions ``seed``
    params = inspect.signature(cls).parameters
    key = "rng" if "rng" in params else "seed"
    return cls(d, **{key: rng})


class UnitStream:
    """A stream of points in ``[0, 1)^d`` drawn in batches (``draw(m)``); quasi-random
    engines continue their sequence across batches (used by rejection sampling)."""

    def __init__(self, sampler: Any, d: int, rng: np.random.Generator) -> None:
        from scipy.stats import qmc

        self.sampler, self.d, self.rng = sampler, int(d), rng
        self._engine = None
        if sampler == "sobol":
            self._engine = _qmc_engine(qmc.Sobol, self.d, rng)
        elif sampler == "halton":
            self._engine = _qmc_engine(qmc.Halton, self.d, rng)
        elif sampler == "lhs":
            self._engine = _qmc_engine(qmc.LatinHypercube, self.d, rng)

    def draw(self, m: int) -> np.ndarray:
        """The next ``m`` points, shape ``(m, d)`` float64."""
        if self._engine is not None:
            with warnings.catch_warnings():
                # Sobol's balance warning for m not a power of 2: the points are still valid
                warnings.simplefilter("ignore", UserWarning)
                return np.asarray(self._engine.random(m), dtype=np.float64)
        if self.sampler == "uniform":
            return self.rng.random((m, self.d))
        fn: Callable[..., Any] = self.sampler
        out = np.asarray(fn(m, self.d, self.rng), dtype=np.float64)
        if out.shape != (m, self.d):
            raise ValueError(
                f"sampler {sampler_name(fn)} returned shape {out.shape}, expected ({m}, {self.d}): a "
                "callable sampler is called as fn(n, d, rng) and returns n points of the unit cube."
            )
        if out.size and (out.min() < 0.0 or out.max() > 1.0):
            raise ValueError(
                f"sampler {sampler_name(fn)} returned values in [{out.min()}, {out.max()}], expected "
                "points of the unit cube [0, 1]^d (jno maps them onto the shape)."
            )
        return out
