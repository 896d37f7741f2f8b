"""Loss-weighting schemes: pure ``init``/``update`` pairs whose state lives in the train state
on the device (optax style), and host-fed weights (read from trackers between chunks).

A :class:`WeightingScheme` takes the loss expressions it balances; its weight placeholders
(``scheme.placeholders()``) are used inside constraints. Each training step evaluates the
scheme's losses (unweighted), uses ``weights(state)`` (with gradients stopped), and after
the parameter update computes ``update(state, losses, epoch)``. Trackers, diagnostics and
``crux.eval`` never call ``update``.

A :class:`HostWeights` provider feeds an array into the step as an input between chunks, so
changing it never recompiles the step.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import expr as E

__all__ = ["WeightingScheme", "WeightPlaceholder", "HostWeights", "HostWeightPlaceholder"]

_ids = itertools.count()


class WeightingScheme:
    """Base class: subclasses implement :meth:`init`, :meth:`weights` and :meth:`update`
    as pure JAX functions (jit-able; the state's pytree structure must not change)."""

    name = "scheme"

    def __init__(self, losses: Sequence[Any]) -> None:
        self.losses = [E.as_expr(l) for l in losses]
        if not self.losses:
            raise ValueError(f"{self.name} needs at least one loss expression, received none.")
        self.key = f"{self.name}#{next(_ids)}"

    @property
    def n(self) -> int:
        return len(self.losses)

    def init(self, losses: jax.Array) -> Any:
        """State from the first losses ``(K,)``."""
        raise NotImplementedError

    def weights(self, state: Any) -> jax.Array:
        """Current weights ``(K,)``."""
        raise NotImplementedError

    def update(self, state: Any, losses: jax.Array, epoch: jax.Array) -> Any:
        """State after a training step with unweighted losses ``(K,)`` at ``epoch``."""
        raise NotImplementedError

    def placeholders(self) -> tuple["WeightPlaceholder", ...]:
        return tuple(WeightPlaceholder(self, i) for i in range(self.n))


class WeightPlaceholder(E.Placeholder):
    """The ``i``-th weight of a scheme (a global scalar); ``1`` when evaluated unweighted."""

    def __init__(self, scheme: WeightingScheme, index: int) -> None:
        super().__init__()
        self.scheme, self.index = scheme, index

    def _key(self) -> tuple:
        return ("Weight", self.scheme.key, self.index)

    def jno_evaluate(self, env: Any, evaluate: Callable[..., Any]) -> jax.Array:
        if env.unweighted or self.scheme.key not in env.weights:
            return jnp.asarray(1.0, jnp.float32)
        return jax.lax.stop_gradient(env.weights[self.scheme.key][self.index])

    def describe(self) -> str:
        return f"{self.scheme.name} weight {self.index}"


class HostWeights:
    """Weights computed on the host (e.g. from a tracker's ``.value``) and fed to the step as
    an input. Subclasses implement :meth:`current` returning a float array ``(K,)``."""

    name = "host_weights"

    def __init__(self, n: int) -> None:
        self.n = int(n)
        self.key = f"{self.name}#{next(_ids)}"

    def current(self) -> np.ndarray:
        return np.ones(self.n, np.float32)

    def placeholders(self) -> tuple["HostWeightPlaceholder", ...]:
        return tuple(HostWeightPlaceholder(self, i) for i in range(self.n))


class HostWeightPlaceholder(E.Placeholder):
    def __init__(self, provider: HostWeights, index: int) -> None:
        super().__init__()
        self.provider, self.index = provider, index

    def _key(self) -> tuple:
        return ("HostWeight", self.provider.key, self.index)

    def jno_evaluate(self, env: Any, evaluate: Callable[..., Any]) -> jax.Array:
        if env.unweighted or self.provider.key not in env.inputs:
            return jnp.asarray(1.0, jnp.float32)
        return env.inputs[self.provider.key][self.index]

    def describe(self) -> str:
        return f"{self.provider.name} weight {self.index}"
