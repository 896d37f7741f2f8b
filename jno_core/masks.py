"""Parameter masks: bool pytrees selecting a subset of a network's parameters."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from .errors import MaskError

__all__ = ["check_mask", "selected_leaves", "flatten_selected", "unflatten_selected", "mask_size"]


def _is_none(x: Any) -> bool:
    return x is None


def check_mask(mask: Any, params: Any, owner: str = "parameters") -> Any:
    """Return ``mask`` aligned to ``params`` (one bool per parameter leaf, ``None`` where
    ``params`` has none). ``mask`` may be built from ``net.params`` or ``net.module``.

    Raises :class:`MaskError` naming the leaves that differ when the structures do not match.
    """
    p_leaves, p_def = jax.tree_util.tree_flatten_with_path(params, is_leaf=_is_none)
    try:
        m_leaves = p_def.flatten_up_to(mask)
    except (ValueError, TypeError) as exc:
        m_paths = {
            jax.tree_util.keystr(p)
            for p, _ in jax.tree_util.tree_flatten_with_path(mask, is_leaf=_is_none)[0]
        }
        p_paths = {jax.tree_util.keystr(p) for p, _ in p_leaves}
        only_p = sorted(p_paths - m_paths)[:8]
        only_m = sorted(m_paths - p_paths)[:8]
        raise MaskError(
            f"the mask does not match the parameters of {owner}: leaves only in the "
            f"parameters: {only_p or '-'}; leaves only in the mask: {only_m or '-'}. Build the "
            "mask from the network itself: all_false = jax.tree_util.tree_map(lambda _: False, "
            "net.params); mask = eqx.tree_at(lambda m: m.output_layer.weight, all_false, True)."
        ) from exc
    out = []
    bad = []
    for (path, leaf), m in zip(p_leaves, m_leaves):
        if leaf is None:
            out.append(None)
            continue
        if isinstance(m, (bool, np.bool_)):
            out.append(bool(m))
        elif m is None:
            out.append(False)
        else:
            bad.append(f"{jax.tree_util.keystr(path)}={type(m).__name__}")
            out.append(False)
    if bad:
        raise MaskError(
            f"mask leaves must be True/False (one per parameter array) for {owner}; received "
            f"{', '.join(bad[:8])}. Use eqx.tree_at(..., all_false, True) to select whole arrays."
        )
    if not any(v for v in out if v):
        raise MaskError(
            f"the mask selects no parameter of {owner}; select at least one array, or pass "
            "mask=None to use all parameters."
        )
    return jax.tree_util.tree_unflatten(p_def, out)


def selected_leaves(params: Any, mask: Any | None) -> list[bool]:
    """One flag per array leaf of ``params`` (in ``tree_leaves`` order)."""
    leaves = jax.tree_util.tree_leaves(params)
    if mask is None:
        return [True] * len(leaves)
    flags = [m for m in jax.tree_util.tree_leaves(mask, is_leaf=_is_none) if m is not None]
    p_all = jax.tree_util.tree_leaves(params, is_leaf=_is_none)
    m_all = jax.tree_util.tree_flatten(params, is_leaf=_is_none)[1].flatten_up_to(mask)
    return [bool(m) for p, m in zip(p_all, m_all) if p is not None]


def mask_size(params: Any, mask: Any | None) -> int:
    leaves = jax.tree_util.tree_leaves(params)
    return int(sum(l.size for l, s in zip(leaves, selected_leaves(params, mask)) if s))


def flatten_selected(params: Any, mask: Any | None) -> jax.Array:
    """Concatenate the selected leaves of ``params`` into one vector ``(P,)``."""
    import jax.numpy as jnp

    leaves = jax.tree_util.tree_leaves(params)
    sel = [l.ravel() for l, s in zip(leaves, selected_leaves(params, mask)) if s]
    return jnp.concatenate(sel) if sel else jnp.zeros((0,))


def unflatten_selected(params: Any, mask: Any | None, flat: jax.Array) -> Any:
    """Inverse of :func:`flatten_selected`: ``params`` with the selected leaves taken from
    ``flat`` and the others unchanged."""
    leaves, tdef = jax.tree_util.tree_flatten(params)
    out, i = [], 0
    for l, s in zip(leaves, selected_leaves(params, mask)):
        if s:
            out.append(flat[i : i + l.size].reshape(l.shape).astype(l.dtype))
            i += l.size
        else:
            out.append(l)
    return jax.tree_util.tree_unflatten(tdef, out)
