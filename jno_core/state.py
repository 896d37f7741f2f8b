"""The typed train state of a solver: :class:`TrainState`."""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["TrainState"]


class TrainState(NamedTuple):
    """Everything training advances, as one pytree (a ``NamedTuple``, so ``state[0]`` and
    ``params, opt_states, scheme_states, epoch = state`` keep working).

    :param params: ``{trainable key: params pytree}`` of every network and trainable
        parameter (device arrays).
    :param opt_states: ``{trainable key: optax state}`` of every trained one.
    :param scheme_states: ``{scheme key: state}`` of every on-device weighting scheme
        (:class:`~jno_core.weighting.WeightingScheme`).
    :param epoch: the global epoch, an ``int32`` scalar array: the one place the epoch is
        counted during a solve (``Core.epoch`` is its host copy between solves and chunks).
    """

    params: dict[str, Any]
    opt_states: dict[str, Any]
    scheme_states: dict[str, Any]
    epoch: Any
