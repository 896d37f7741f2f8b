"""Filter-normalised random directions (Sec. 4 of Li, Xu, Taylor, Studer & Goldstein,
"Visualizing the Loss Landscape of Neural Nets", arXiv 1712.09913).

A direction ``d`` is drawn from ``N(0, I)`` with the shape of the parameters, then each
*filter* is rescaled to the norm of the corresponding filter of the parameters,

    d_{i,j} <- d_{i,j} / ||d_{i,j}|| * ||theta_{i,j}||,

where ``j`` runs over the filters of layer ``i``. Conventions used here:

* an array leaf with ``ndim >= 2`` has one filter per index of its first axis (an
  ``eqx.nn.Linear`` weight ``(out, in)``: one filter per output neuron, i.e. per row; a
  convolution kernel ``(out, in, *k)``: one per output channel);
* a 1-D leaf (a bias) or a scalar is normalised *as one filter* (``d <- d / ||d|| *
  ||theta||``), so every selected parameter is perturbed and a filter-normalised direction has
  norm exactly ``||theta_selected||``; with ``ignore_bias=True`` those leaves get a zero
  direction instead (the "ignore biases" option of Li et al.'s experiments);
* a filter whose parameters are all zero gets a zero direction.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jno_core.api import selected_leaves

__all__ = ["filter_normalise", "selected_arrays", "random_directions"]


def filter_normalise(d: jax.Array, w: jax.Array, ignore_bias: bool = False) -> jax.Array:
    """``d`` rescaled filter-wise to the norms of ``w`` (same shape; see the module doc)."""
    if w.ndim >= 2:
        d2 = d.reshape(w.shape[0], -1)
        w2 = w.reshape(w.shape[0], -1)
        dn = jnp.linalg.norm(d2, axis=1, keepdims=True)
        wn = jnp.linalg.norm(w2, axis=1, keepdims=True)
        return (d2 * jnp.where(dn > 0, wn / jnp.where(dn > 0, dn, 1.0), 0.0)).reshape(w.shape)
    if ignore_bias:
        return jnp.zeros_like(w)
    dn = jnp.linalg.norm(d)
    return d * jnp.where(dn > 0, jnp.linalg.norm(w) / jnp.where(dn > 0, dn, 1.0), 0.0)


def selected_arrays(params: dict[str, Any], selector: Any) -> list[jax.Array]:
    """The selected parameter arrays in the order of ``selector.flatten`` (trainable keys in
    ``selector.keys`` order, then ``tree_leaves`` order)."""
    out = []
    for k in selector.keys:
        leaves = jax.tree_util.tree_leaves(params[k])
        flags = selected_leaves(params[k], selector.masks[k])
        out.extend(l for l, s in zip(leaves, flags) if s)
    return out


def random_directions(params: dict[str, Any], selector: Any, key: jax.Array, count: int = 2,
                      ignore_bias: bool = False) -> jax.Array:
    """``count`` filter-normalised ``N(0, I)`` directions over the selected parameters, each
    flattened like ``selector.flatten(params)``: shape ``(count, P)``. Traceable; one
    ``jax.random.normal(key, (count, P))`` draw, split into the selected arrays in order."""
    arrays = selected_arrays(params, selector)
    total = sum(int(w.size) for w in arrays)
    raw = jax.random.normal(key, (count, total), arrays[0].dtype)
    parts, i = [], 0
    for w in arrays:
        block = raw[:, i:i + w.size].reshape((count,) + w.shape)
        i += w.size
        parts.append(jax.vmap(lambda d, w=w: filter_normalise(d, w, ignore_bias).ravel())(block))
    return jnp.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
