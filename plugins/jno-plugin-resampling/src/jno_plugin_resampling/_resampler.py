"""The resampler plugin objects: :class:`Resampler` (the shared machinery) and
:class:`RandomResampler`, :class:`RAD`, :class:`R3`.

A resampler is a host plugin with ``interval = every``: the loop cuts its device chunks at
multiples of ``every`` and calls ``on_epoch`` there, with the parameters of that epoch. One
AOT-compiled device function (compiled in ``on_solve_begin`` against the live shapes) takes
``(params, points, inputs, weights, base key, epoch)`` and returns the new points, the kept
fraction and the mean ``|r|`` of the current points; the points stay on the device and go
back through ``ctx.set_points`` (same count, dtype and sharding, so the compiled chunk is
reused). The random key of the resample at epoch ``e`` is ``fold_in(base_key, e)``: the
points depend on the seed, the epoch and the parameters only, so a resumed run draws what an
uninterrupted one draws.
"""

from __future__ import annotations

import base64
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jno_core.api import Env, Placeholder, device_sampler, evaluate, expr, hookimpl, point_set, residual_of

from . import _methods as M

__all__ = ["Resampler", "RandomResampler", "RAD", "R3"]


def _positive_int(value: Any, what: str, example: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{what} must be a positive integer, received {value!r}; e.g. {example}.")
    return int(value)


def _number(value: Any, what: str, example: str, minimum: float = 0.0) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, received {value!r}; e.g. {example}.") from None
    if not np.isfinite(v) or v < minimum:
        raise ValueError(f"{what} must be a finite number >= {minimum}, received {value!r}; e.g. {example}.")
    return v


class Resampler:
    """Base class: replaces the point set of ``residual`` every ``every`` epochs.

    :param residual: the PDE residual field (``pde``, before ``.mse``; ``pde.mse`` is accepted
        and its field used). Its variables must all come from one point set, the ``"interior"``
        (or ``"initial"``) set of ``domain``; every constraint using that set sees the new points.
    :param domain: the :class:`~jno_core.api.Domain` the residual's variables came from.
    :param every: resample at the epochs ``e > 0`` with ``e % every == 0``.
    :param seed: the random seed (same seed, same parameters: same points).

    Subclasses implement :meth:`propose` (traceable). Results: ``records``, one dict per
    resample (``epoch``, ``kept_fraction``, ``mean_residual``); metrics
    ``resample/kept_fraction`` and ``resample/mean_residual`` (mean ``|r|`` over the points in
    use before the resample) at the epoch of each resample.
    """

    name = "resampler"

    def __init__(self, residual: Any, *, domain: Any, every: int = 1000, seed: int = 0) -> None:
        if not isinstance(residual, Placeholder):
            raise TypeError(
                f"jno.resampling.{self.name} expects the PDE residual expression first (e.g. pde, the field whose "
                f".mse is a constraint), received {type(residual).__name__}."
            )
        field = residual if getattr(residual, "point_set", None) is not None else residual_of(residual)
        keys = sorted({n.point_set for n in expr.walk([field]) if isinstance(n, expr.Variable)})
        if len(keys) != 1:
            raise ValueError(
                f"jno.resampling.{self.name}: the residual must be evaluated on exactly one point set, found "
                f"{keys or 'none'}. Pass the PDE residual on the interior variables, e.g. pde = u.d2(x) + f."
            )
        self.key = keys[0]
        ps = point_set(self.key)
        if getattr(domain, "shape", None) is None or not hasattr(domain, "label"):
            raise TypeError(
                f"jno.resampling.{self.name}(domain=...) expects the shape domain the residual's variables came "
                f"from (jno.domain.line/rect/box/disk/poly or a difference), received {type(domain).__name__}."
            )
        if not self.key.startswith(f"{domain.label}:"):
            raise ValueError(
                f"jno.resampling.{self.name}: the residual's points {self.key!r} do not come from the domain passed "
                f"({domain.label}); pass domain= the domain whose variable() gave them."
            )
        if ps.tag not in ("interior", "initial"):
            raise ValueError(
                f"jno.resampling.{self.name}: the residual's points are the {ps.tag!r} set; only 'interior' (or "
                "'initial') points are resampled. Pass the PDE residual on the interior variables."
            )
        if ps.points.shape[1] != len(domain.coords):
            raise ValueError(
                f"jno.resampling.{self.name}: the point set {self.key!r} has {ps.points.shape[1]} columns, the "
                f"domain's coordinates are {domain.coords}; resample a set of plain coordinates (no normals/data)."
            )
        self.residual = field
        self.domain = domain
        self.every = _positive_int(every, "every", "every=1000")
        self.interval = self.every
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"jno.resampling.{self.name}: seed must be a non-negative integer, received {seed!r}.")
        self.seed = int(seed)
        self.n = int(ps.points.shape[0])
        self.base_key = np.asarray(jax.random.key_data(jax.random.PRNGKey(self.seed)), np.uint32)
        self.sample = device_sampler(domain, ps.tag, self._sample_count(), pool_seed=self.seed)
        #: the last epoch resampled (-1: none yet)
        self.last_epoch = -1
        self.records: list[dict[str, float]] = []
        self._fn: Any = None
        self._pending_points: np.ndarray | None = None
        self._crux: Any = None  # the solver of the latest solve (for jno_state's points)

    # ------------------------------------------------------------------ subclass API
    def _sample_count(self) -> int:
        """Uniform points per resample (``n``; RAD: the pool)."""
        return self.n

    def propose(self, key: jax.Array, points: jax.Array, abs_r: jax.Array,
                residual_at: Any) -> tuple[jax.Array, jax.Array]:
        """Traceable: ``(new points (N, C), kept fraction ())`` from the current ``points``,
        their ``|r|`` ``(N,)`` and ``residual_at(pts) -> |r| (len(pts),)``."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """The settings (part of the compile-cache name and of the saved state)."""
        return {"every": self.every, "seed": self.seed}

    # ------------------------------------------------------------------ identity
    @property
    def plugin_name(self) -> str:
        """``resampling.<name>:<point-set key>`` (the checkpoint state is saved under it)."""
        return f"resampling.{self.name}:{self.key}"

    def __repr__(self) -> str:
        return f"<jno resampler {self.name} of {self.key} every {self.every}>"

    # ------------------------------------------------------------------ device function
    def _device_fn(self, params: Any, points: dict[str, Any], inputs: Any, weights: Any, base_key: Any,
                   epoch: Any) -> tuple[jax.Array, jax.Array, jax.Array]:
        key = jax.random.fold_in(base_key, epoch)
        cur = points[self.key]

        def residual_at(pts: jax.Array) -> jax.Array:
            env = Env(params, {**points, self.key: pts}, weights, inputs)
            return M.residual_magnitude(evaluate(self.residual, env), pts.shape[0])

        abs_r = residual_at(cur)
        new, kept = self.propose(key, cur, abs_r, residual_at)
        sharding = getattr(cur, "sharding", None)
        new = new.astype(cur.dtype)
        if sharding is not None:
            new = jax.lax.with_sharding_constraint(new, sharding)
        return new, jnp.asarray(kept, jnp.float32), jnp.mean(abs_r)

    def _compile(self, ctx: Any) -> Any:
        cur = ctx.points[self.key]
        sharding = cur.sharding

        def fn(params: Any, points: Any, inputs: Any, weights: Any, base_key: Any, epoch: Any) -> Any:
            new, kept, mean = self._device_fn(params, points, inputs, weights, base_key, epoch)
            return jax.lax.with_sharding_constraint(new, sharding), kept, mean

        name = f"resampling:{self.name}:{self.key}:{sorted(self.describe().items())}"
        return ctx.compile(name, fn, ctx.params, ctx.points, ctx.inputs, ctx.weights, self.base_key, np.int32(0))

    # ------------------------------------------------------------------ hooks
    @hookimpl
    def on_solve_begin(self, ctx: Any) -> None:
        """Check the point set, compile the device function, apply points loaded from a
        checkpoint (:meth:`jno_load_state`)."""
        if self.key not in ctx.points:
            raise ValueError(
                f"jno.resampling.{self.name}: the solver has no point set {self.key!r} (its sets: "
                f"{sorted(ctx.points)}); the residual must be one of the solver's constraints' fields."
            )
        self._crux = ctx.crux
        cur = ctx.points[self.key]
        if tuple(cur.shape) != (self.n, len(self.domain.coords)):
            raise ValueError(f"jno.resampling.{self.name}: point set {self.key!r} has shape {tuple(cur.shape)}, "
                             f"expected ({self.n}, {len(self.domain.coords)}).")
        if self._pending_points is not None:
            ctx.set_points(self.key, jnp.asarray(self._pending_points, cur.dtype))
            self._pending_points = None
        self._fn = self._compile(ctx)

    @hookimpl(tryfirst=True)
    def on_epoch(self, ctx: Any, epoch: int) -> None:
        """Resample at ``epoch`` (before the other plugins due then, so trackers firing at
        ``epoch`` see the new points); skipped at epoch 0 and at an epoch already resampled
        (a solve resumed at the epoch of the last resample)."""
        if epoch == 0 or epoch <= self.last_epoch or epoch % self.every:
            return
        new, kept, mean = self._fn(ctx.params, ctx.points, ctx.inputs, ctx.weights, self.base_key,
                                   np.int32(epoch))
        ctx.set_points(self.key, new)
        self.last_epoch = int(epoch)
        rec = {"epoch": int(epoch), "kept_fraction": float(kept), "mean_residual": float(mean)}
        self.records.append(rec)
        ctx.log({"resample/kept_fraction": rec["kept_fraction"], "resample/mean_residual": rec["mean_residual"]},
                step=epoch)

    # ------------------------------------------------------------------ checkpoint state
    def jno_state(self) -> dict[str, Any]:
        """JSON state for checkpoints (``jno-plugin-checkpoint`` saves it): the settings, the
        base RNG key, the last epoch resampled and the current points (raw bytes, base64)."""
        pts = self._live_points()
        state: dict[str, Any] = {"method": self.name, "point_set": self.key, "settings": self.describe(),
                                 "key": [int(v) for v in self.base_key], "last_epoch": self.last_epoch}
        if pts is not None:
            state["points"] = {"dtype": str(pts.dtype), "shape": list(pts.shape),
                               "data": base64.b64encode(np.ascontiguousarray(pts).tobytes()).decode("ascii")}
        return state

    def jno_load_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`jno_state`: the key, the last epoch, and the points (set on the
        solver when the next solve starts)."""
        if state.get("method") != self.name or state.get("point_set") != self.key:
            raise ValueError(
                f"jno.resampling.{self.name}: the saved state is of {state.get('method')!r} on "
                f"{state.get('point_set')!r}, this resampler is {self.name!r} on {self.key!r}; restore into the "
                "same resampler on the same point set."
            )
        self.base_key = np.asarray(state["key"], np.uint32)
        self.last_epoch = int(state["last_epoch"])
        pts = state.get("points")
        if pts is not None:
            arr = np.frombuffer(base64.b64decode(pts["data"]), dtype=np.dtype(pts["dtype"])).reshape(pts["shape"])
            if arr.shape != (self.n, len(self.domain.coords)):
                raise ValueError(f"jno.resampling.{self.name}: saved points have shape {arr.shape}, this point set "
                                 f"has ({self.n}, {len(self.domain.coords)}).")
            self._pending_points = arr.copy()

    def _live_points(self) -> np.ndarray | None:
        if self._pending_points is not None:
            return self._pending_points
        return None if self._crux is None else np.asarray(self._crux.points[self.key])


class RandomResampler(Resampler):
    """``jno.resampling.random``: fresh uniform points every ``every`` epochs (kept fraction
    0)."""

    name = "random"

    def propose(self, key: jax.Array, points: jax.Array, abs_r: jax.Array, residual_at: Any) -> Any:
        return self.sample(key), jnp.float32(0.0)


class RAD(Resampler):
    """``jno.resampling.rad``: residual-based adaptive distribution (Wu et al. 2023, CMAME,
    Sec. 2.3): a uniform pool of ``pool_factor * N`` candidates, ``p ∝ |r|^k / mean|r|^k +
    c``, ``N`` of them drawn with ``p`` (``replace=False``: without replacement, see
    :func:`~jno_plugin_resampling._methods.rad_select`). Kept fraction 0 (all points new)."""

    name = "rad"

    def __init__(self, residual: Any, *, domain: Any, every: int = 1000, k: float = 1.0, c: float = 1.0,
                 pool_factor: int = 4, seed: int = 0, replace: bool = False) -> None:
        self.k = _number(k, "rad: k", "k=1.0")
        self.c = _number(c, "rad: c", "c=1.0")
        self.pool_factor = _positive_int(pool_factor, "rad: pool_factor", "pool_factor=4")
        self.replace = bool(replace)
        super().__init__(residual, domain=domain, every=every, seed=seed)

    def _sample_count(self) -> int:
        return self.pool_factor * self.n

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "k": self.k, "c": self.c, "pool_factor": self.pool_factor,
                "replace": self.replace}

    def propose(self, key: jax.Array, points: jax.Array, abs_r: jax.Array, residual_at: Any) -> Any:
        k_pool, k_pick = jax.random.split(key)
        pool = self.sample(k_pool).astype(points.dtype)
        idx = M.rad_select(k_pick, residual_at(pool), self.n, self.k, self.c, self.replace)
        return pool[idx], jnp.float32(0.0)


class R3(Resampler):
    """``jno.resampling.r3``: retain-resample-release (Daw et al. 2023, ICML, Alg. 1): keep
    the points with ``|r|`` above the mean ``|r|``, replace the others with uniform points
    (the kept fraction is logged)."""

    name = "r3"

    def propose(self, key: jax.Array, points: jax.Array, abs_r: jax.Array, residual_at: Any) -> Any:
        new, keep = M.r3_update(points, abs_r, self.sample(key))
        return new, jnp.mean(keep.astype(jnp.float32))
