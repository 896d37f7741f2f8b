"""Running one solve over several devices with JAX's own machinery.

``crux.solve(n, devices=4)`` (or a list of devices, or a ready ``jax.sharding.Mesh`` with a
``"data"`` axis) builds a one-axis mesh ``("data",)`` and places:

* every point set whose size is divisible by the device count sharded along ``"data"``
  (``NamedSharding(mesh, P("data", None))``); XLA partitions the step and does the reductions;
* parameters, optimizer and weighting states replicated (``NamedSharding(mesh, P())``).

A point set whose size is *not* divisible by the device count is replicated instead of padded
(padding would change the mean in ``.mse``); a warning names it and the fix (a mesh size
giving a divisible count). Small sets such as the two end points of a line are cheap to
replicate. ``devices=None`` keeps today's single-device placement and costs nothing.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from .errors import ConfigError

__all__ = ["make_mesh", "place_points", "replicate", "Layout"]


class Layout:
    """Where a solve's arrays live: ``mesh`` is None for the default single device."""

    def __init__(self, mesh: Mesh | None) -> None:
        self.mesh = mesh

    @property
    def key(self) -> Any:
        if self.mesh is None:
            return None
        return tuple(d.id for d in self.mesh.devices.ravel())

    @property
    def n_devices(self) -> int:
        return 1 if self.mesh is None else int(self.mesh.devices.size)


def make_mesh(devices: int | Sequence[Any] | Mesh | None) -> Mesh | None:
    """A one-axis ``("data",)`` mesh from a device count, a device list or a mesh."""
    if devices is None:
        return None
    if isinstance(devices, Mesh):
        if "data" not in devices.axis_names:
            raise ConfigError(
                f"the mesh passed as devices= has axes {devices.axis_names}; expected a 'data' "
                "axis, e.g. Mesh(np.array(jax.devices()), ('data',))."
            )
        return devices
    available = jax.devices()
    if isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        if not 1 <= devices <= len(available):
            raise ConfigError(
                f"devices={devices} but {len(available)} device(s) are available "
                f"({available[0].platform}); pass a number between 1 and {len(available)} (on CPU, "
                "XLA_FLAGS=--xla_force_host_platform_device_count=N before importing jax "
                "simulates N devices)."
            )
        devs = available[: int(devices)]
    else:
        devs = list(devices)
        if not devs:
            raise ConfigError("devices= received an empty list; pass a device count or devices.")
    return Mesh(np.array(devs), ("data",))


def place_points(points: dict[str, jax.Array], mesh: Mesh | None) -> dict[str, jax.Array]:
    """Shard each point set along ``"data"`` (replicate sets of non-divisible size)."""
    if mesh is None:
        return points
    n = mesh.devices.size
    out = {}
    for k, v in points.items():
        if v.shape[0] % n == 0:
            out[k] = jax.device_put(v, NamedSharding(mesh, P("data", None)))
        else:
            if v.shape[0] >= 4 * n:
                warnings.warn(
                    f"point set {k!r} has {v.shape[0]} points, not divisible by {n} devices: it is "
                    "replicated on every device instead of sharded (padding would change the "
                    "loss). Choose a mesh size whose point count is a multiple of the device count "
                    "to shard it.",
                    RuntimeWarning,
                    stacklevel=3,
                )
            out[k] = jax.device_put(v, NamedSharding(mesh, P()))
    return out


def replicate(tree: Any, mesh: Mesh | None) -> Any:
    """Replicate every array of ``tree`` on the mesh (or move it back to the default device)."""
    if mesh is None:
        dev = jax.devices()[0]
        return jax.tree_util.tree_map(lambda a: jax.device_put(a, dev), tree)
    return jax.device_put(tree, NamedSharding(mesh, P()))
