"""Trainable parameters: ``jno.np.parameter(shape, key=..., name=...)``."""

from __future__ import annotations

import itertools
from typing import Any

import jax
import jax.numpy as jnp
import optax

from .expr import Placeholder

__all__ = ["TrainableParameter", "parameter"]

_ids = itertools.count()


class TrainableParameter(Placeholder):
    """A trainable array (global expression) with its own optimizer. Initialised from a
    standard normal draw with ``key`` (zeros when ``key`` is None), or from ``init``."""

    def __init__(self, shape: tuple[int, ...], key: Any = None, name: str | None = None, init: Any = None) -> None:
        super().__init__()
        self.shape = tuple(shape) if isinstance(shape, (tuple, list)) else (int(shape),)
        self.name = name or f"param{next(_ids)}"
        if init is not None:
            value = jnp.broadcast_to(jnp.asarray(init, jnp.float32), self.shape)
        elif key is not None:
            value = jax.random.normal(key, self.shape, jnp.float32)
        else:
            value = jnp.zeros(self.shape, jnp.float32)
        self.initial = value
        self.tx: optax.GradientTransformation | None = None
        self.tx_description: str | None = None
        self._jno_trainable = self
        self._jno_mask = None

    def optimizer(self, tx: optax.GradientTransformation, description: str | None = None) -> "TrainableParameter":
        from .nn import _describe_tx

        if not (hasattr(tx, "init") and hasattr(tx, "update")):
            raise TypeError(
                f"optimizer() expects an optax GradientTransformation, received {type(tx).__name__}."
            )
        self.tx = tx
        self.tx_description = description or _describe_tx(tx)
        return self

    @property
    def params(self) -> Any:
        return self.initial

    def n_params(self) -> int:
        return int(self.initial.size)

    def _key(self) -> tuple:
        return ("Parameter", id(self))

    def describe(self) -> str:
        return f"parameter {self.name}{self.shape}"


def parameter(shape: Any, key: Any = None, name: str | None = None, init: Any = None) -> TrainableParameter:
    """``jno.np.parameter(shape, key=..., name=...)``: a trainable array."""
    return TrainableParameter(shape, key=key, name=name, init=init)
