"""Loading a checkpoint into a solver (resume)."""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jno_core.api import CheckpointError
from jno_core.api import plugin_name

from . import _format as F

__all__ = ["load_into", "collect_plugin_state", "apply_state", "active_optimizers"]


def active_optimizers(crux: Any) -> dict[str, str]:
    """``{network name: description}`` of the optimizer each trained network's state belongs
    to (the last of ``crux.optimizer_phases``), recorded in ``structure.json``."""
    return {name: phases[-1]["optimizer"] for name, phases in crux.optimizer_phases.items() if phases}


def _check_optimizers(crux: Any, data: F.CheckpointData, paths: list[str], live: list[Any]) -> None:
    """A checkpoint saved with other optimizers than the networks' current ones: a clear error
    naming both when the optimizer states differ in structure, a warning when only the
    descriptions differ (e.g. another learning rate of the same optimizer)."""
    saved = data.structure.get("optimizers")
    if not saved:  # checkpoints written before the optimizers were recorded
        return
    now = active_optimizers(crux)
    # networks are matched by position (automatic names such as net0 depend on the process)
    saved_names = data.structure.get("trainables", [])
    differ, labels = {}, {}
    for i, (sname, t) in enumerate(zip(saved_names, crux.trainables.values())):
        if sname in saved and t.name in now and saved[sname] != now[t.name]:
            differ[t.name] = (saved[sname], now[t.name])
            labels[t.name] = f"{i:03d}"
    if not differ:
        return
    info = {d["path"]: d for d in data.structure.get("leaves", [])}
    bad = []
    for name in differ:
        prefix = f"['opt_states']['{labels[name]}']"
        mine = {p: leaf for p, leaf in zip(paths, live) if p.startswith(prefix)}
        theirs = {p for p in info if p.startswith(prefix)}
        if set(mine) != theirs or any(list(np.shape(v)) != list(info[p]["shape"]) for p, v in mine.items()):
            bad.append(name)
    listing = "; ".join(f"{n!r}: saved with {a!r}, now {b!r}" for n, (a, b) in differ.items())
    if bad:
        raise CheckpointError(
            f"checkpoint {data.path} holds the optimizer state of other optimizers than this solver's "
            f"({listing}); their states do not match. Set the optimizer the checkpoint was saved with "
            "before restoring (e.g. net.optimizer(optax.lbfgs()) for a checkpoint of an L-BFGS phase), "
            "then switch with net.optimizer(...) after restoring if you want another one."
        )
    warnings.warn(
        f"checkpoint {data.path} was saved with other optimizer settings ({listing}); the saved optimizer "
        "state has the same structure and is restored into the current optimizer.",
        RuntimeWarning, stacklevel=4)


def _restore_leaf(saved: np.ndarray, live: Any, info: dict[str, Any]) -> Any:
    if "key_impl" in info:
        return jax.random.wrap_key_data(jnp.asarray(saved), impl=info["key_impl"])
    return jnp.asarray(saved, dtype=live.dtype)



def _check_structure(data: F.CheckpointData, paths: list[str], live: list[Any]) -> None:
    """Saved leaves vs. the live solver's; raise naming every difference and the fix."""
    info = {d["path"]: d for d in data.structure.get("leaves", [])}
    missing = [p for p in paths if p not in info]
    extra = [p for p in info if p not in set(paths)]
    shapes = []
    for p, leaf in zip(paths, live):
        d = info.get(p)
        if d is None:
            continue
        if list(np.shape(leaf)) != list(d["shape"]) or str(leaf.dtype) != d["dtype"]:
            shapes.append(f"{p}: saved {tuple(d['shape'])} {d['dtype']}, solver {tuple(np.shape(leaf))} {leaf.dtype}")
    if missing or extra or shapes:
        parts = []
        if missing:
            parts.append(f"missing from the checkpoint: {missing[:6]}{' ...' if len(missing) > 6 else ''}")
        if extra:
            parts.append(f"not in this solver: {extra[:6]}{' ...' if len(extra) > 6 else ''}")
        if shapes:
            parts.append("different shape/dtype: " + "; ".join(shapes[:6]))
        raise CheckpointError(
            f"checkpoint {data.path} does not match this solver ({' | '.join(parts)}). Saved "
            f"trainables {data.structure.get('trainables')}, schemes {data.structure.get('schemes')}. "
            "Build the same networks (sizes), optimizers and weighting schemes, in the same order, "
            "before restoring."
        )


def load_into(crux: Any, data: F.CheckpointData) -> None:
    """Replace ``crux``'s whole train state (parameters, optimizer states incl. their step
    counts, weighting-scheme states, epoch) with the checkpoint's; write the parameters back
    to the networks; restore the weight providers' host state."""
    if crux.solving:
        raise CheckpointError("cannot restore into a solver while it is solving; restore before solve().")
    paths, live, treedef = F.flatten_state(crux, crux.state)
    _check_optimizers(crux, data, paths, live)
    _check_structure(data, paths, live)
    info = {d["path"]: d for d in data.structure["leaves"]}
    leaves = [_restore_leaf(data.arrays[p], leaf, info[p]) for p, leaf in zip(paths, live)]
    crux.load_state(F.state_from_canonical(crux, jax.tree_util.tree_unflatten(treedef, leaves)))
    providers = data.plugin_state.get("providers", [])
    for prov, st in zip(crux.providers.values(), providers):
        if st is not None and hasattr(prov, "jno_load_state"):
            prov.jno_load_state(st)


def collect_plugin_state(crux: Any, exclude: Any = None) -> dict[str, Any]:
    """JSON state of the solver's weight providers (in order) and of every registered plugin
    implementing ``jno_state()`` (by plugin name)."""
    from jno_core.api import get_plugin_manager

    providers = [p.jno_state() if hasattr(p, "jno_state") else None for p in crux.providers.values()]
    plugins: dict[str, Any] = {}
    for _, p in get_plugin_manager().list_name_plugin():
        if p is exclude or not callable(getattr(p, "jno_state", None)):
            continue
        plugins[plugin_name(p)] = p.jno_state()
    return {"providers": providers, "plugins": plugins}


def apply_state(plugins_: Sequence[Any], data: F.CheckpointData) -> list[str]:
    """Call ``jno_load_state`` on each of ``plugins_`` saved under its plugin name; returns the
    names restored."""
    saved = data.plugin_state.get("plugins", {})
    done = []
    for p in plugins_:
        name = plugin_name(p)
        if name in saved and hasattr(p, "jno_load_state"):
            p.jno_load_state(saved[name])
            done.append(name)
    return done
