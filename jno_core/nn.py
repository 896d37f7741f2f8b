"""Networks: ``jno.nn.wrap(module)`` turns any equinox module into a trainable network whose
calls build expressions. ``jno.nn.mlp`` ships a plain MLP so no extra package is needed."""

from __future__ import annotations

import itertools
from typing import Any, Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from .expr import NetworkCall, Placeholder
from .masks import check_mask

__all__ = ["Network", "MaskedNetwork", "wrap", "mlp", "MLP", "INITS"]

_net_ids = itertools.count()


class Network:
    """A wrapped equinox module with its optimizer.

    ``net(x)`` or ``net(x, y)`` builds a :class:`~jno_core.expr.NetworkCall`: the module is
    applied at every point to the concatenated inputs (shape ``(in_features,)`` per point).
    """

    def __init__(self, module: eqx.Module, name: str | None = None) -> None:
        if not isinstance(module, eqx.Module) and not callable(module):
            raise TypeError(
                f"jno.nn.wrap expects an equinox module, received {type(module).__name__}."
            )
        self.module = module
        self.name = name or f"net{next(_net_ids)}"
        self.tx: optax.GradientTransformation | None = None
        self.tx_description: str | None = None
        self._mask: Any = None
        self._jno_trainable = self
        self._jno_mask = None

    # ------------------------------------------------------------------ API of the spec
    def optimizer(self, tx: optax.GradientTransformation, description: str | None = None) -> "Network":
        """Set the optax optimizer; returns the network (chainable)."""
        if not (hasattr(tx, "init") and hasattr(tx, "update")):
            raise TypeError(
                f"optimizer() expects an optax GradientTransformation (e.g. optax.adam(1e-3)), "
                f"received {type(tx).__name__}."
            )
        self.tx = tx
        self.tx_description = description or _describe_tx(tx)
        return self

    @property
    def params(self) -> Any:
        """The trainable arrays: the module with every non-float-array leaf set to ``None``
        (``eqx.filter(module, eqx.is_inexact_array)``); same attribute paths as the module."""
        return eqx.filter(self.module, eqx.is_inexact_array)

    @property
    def static(self) -> Any:
        return eqx.filter(self.module, eqx.is_inexact_array, inverse=True)

    def mask(self, mask: Any) -> "MaskedNetwork | Network":
        """Select a parameter subset for ``.grad(...)``: a bool pytree matching
        :attr:`params` or :attr:`module` (as built with ``tree_map`` + ``eqx.tree_at``).
        Stored on the network (the next ``.grad(net)`` reads it) and returned as a view;
        ``mask(None)`` clears it."""
        if mask is None:
            self._mask = None
            self._jno_mask = None
            return self
        checked = check_mask(mask, self.params, owner=f"network {self.name!r}")
        self._mask = checked
        self._jno_mask = checked
        return MaskedNetwork(self, checked)

    def __call__(self, *args: Any) -> Placeholder:
        return NetworkCall(self, args)

    # ------------------------------------------------------------------ helpers
    def apply(self, params: Any, inputs: jax.Array) -> jax.Array:
        """Apply the module with ``params`` to ``inputs`` of shape ``(N, in)``; returns
        ``(N,)`` for one output, else ``(N, out)``."""
        module = eqx.combine(params, self.static)
        out = jax.vmap(module)(inputs)
        if out.ndim == 2 and out.shape[-1] == 1:
            out = out[:, 0]
        return out

    def shapes(self) -> dict[str, list[int]]:
        leaves = jax.tree_util.tree_leaves_with_path(self.params)
        return {jax.tree_util.keystr(p): list(l.shape) for p, l in leaves}

    def n_params(self) -> int:
        return sum(int(l.size) for l in jax.tree_util.tree_leaves(self.params))

    def __repr__(self) -> str:
        return f"<jno network {self.name!r}: {type(self.module).__name__}, {self.n_params()} parameters>"


class MaskedNetwork:
    """A view of a network with a parameter mask, for ``expr.grad(net.mask(m))``."""

    def __init__(self, net: Network, mask: Any) -> None:
        self._jno_trainable = net
        self._jno_mask = mask
        self.name = net.name

    def __call__(self, *args: Any) -> Placeholder:
        return self._jno_trainable(*args)

    def __getattr__(self, item: str) -> Any:
        return getattr(self._jno_trainable, item)


def wrap(module: Any, name: str | None = None) -> Network:
    """``jno.nn.wrap(module)``: wrap an equinox module (e.g. ``foundax.mlp(...)``)."""
    return Network(module, name=name)


def _describe_tx(tx: Any) -> str:
    from .optim import describe_optimizer

    return describe_optimizer(tx, None)


class MLP(eqx.Module):
    """A fully connected network ``in -> hidden x num_layers -> out`` with attribute names
    ``hidden_layers`` and ``output_layer`` (so output-layer masks read as in the spec)."""

    hidden_layers: list
    output_layer: eqx.nn.Linear
    activation: Callable = eqx.field(static=True)

    def __init__(
        self,
        in_features: int,
        output_dim: int = 1,
        hidden_dims: int | Sequence[int] = 64,
        num_layers: int = 2,
        activation: Callable = jnp.tanh,
        *,
        key: jax.Array,
        init: str | None = None,
    ) -> None:
        dims = [hidden_dims] * num_layers if isinstance(hidden_dims, int) else list(hidden_dims)
        keys = jax.random.split(key, len(dims) + 1)
        sizes = [in_features] + dims
        init_fn = _initializer(init)
        layers = [eqx.nn.Linear(a, b, key=k) for a, b, k in zip(sizes[:-1], sizes[1:], keys[:-1])]
        out = eqx.nn.Linear(sizes[-1], output_dim, key=keys[-1])
        if init_fn is not None:
            wkeys = jax.random.split(jax.random.fold_in(key, 1), len(layers) + 1)
            layers = [_reinit(l, init_fn, k) for l, k in zip(layers, wkeys[:-1])]
            out = _reinit(out, init_fn, wkeys[-1])
        self.hidden_layers = layers
        self.output_layer = out
        self.activation = activation

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.hidden_layers:
            x = self.activation(layer(x))
        return self.output_layer(x)


#: ``init=`` names of :func:`mlp` -> ``jax.nn.initializers`` factories (weights of shape
#: ``(out, in)``: fan-in axis 1, fan-out axis 0); biases start at zero
INITS: dict[str, Callable[[], Any]] = {
    "glorot_normal": lambda: jax.nn.initializers.glorot_normal(in_axis=1, out_axis=0),
    "glorot_uniform": lambda: jax.nn.initializers.glorot_uniform(in_axis=1, out_axis=0),
    "xavier_normal": lambda: jax.nn.initializers.glorot_normal(in_axis=1, out_axis=0),
    "xavier_uniform": lambda: jax.nn.initializers.glorot_uniform(in_axis=1, out_axis=0),
    "he_normal": lambda: jax.nn.initializers.he_normal(in_axis=1, out_axis=0),
    "he_uniform": lambda: jax.nn.initializers.he_uniform(in_axis=1, out_axis=0),
}


def _initializer(init: str | None) -> Any:
    if init is None or init == "default":
        return None
    if not isinstance(init, str) or init.lower() not in INITS:
        raise ValueError(
            f"unknown init {init!r}; expected None (equinox's default: uniform +-1/sqrt(fan_in), "
            f"weights and biases) or one of {', '.join(repr(k) for k in INITS)}."
        )
    return INITS[init.lower()]()


def _reinit(layer: eqx.nn.Linear, init_fn: Any, key: jax.Array) -> eqx.nn.Linear:
    w = init_fn(key, layer.weight.shape, layer.weight.dtype)
    layer = eqx.tree_at(lambda l: l.weight, layer, w)
    if layer.bias is not None:
        layer = eqx.tree_at(lambda l: l.bias, layer, jnp.zeros_like(layer.bias))
    return layer


def mlp(
    in_features: int,
    output_dim: int = 1,
    hidden_dims: int | Sequence[int] = 64,
    num_layers: int = 2,
    activation: Callable = jnp.tanh,
    *,
    key: jax.Array | None = None,
    init: str | None = None,
) -> MLP:
    """``jno.nn.mlp(...)``: a tanh MLP taking ``(in_features,)`` to ``(output_dim,)``.

    :param init: weight initialisation: ``None`` (equinox's default, unchanged), or
        ``"glorot_normal"`` / ``"glorot_uniform"`` (Xavier; Glorot & Bengio 2010, Eq. 16),
        ``"xavier_normal"`` / ``"xavier_uniform"`` (aliases), ``"he_normal"`` / ``"he_uniform"``
        (He et al. 2015, Sec. 2.2), with zero biases.
    """
    return MLP(
        in_features,
        output_dim,
        hidden_dims,
        num_layers,
        activation,
        key=jax.random.PRNGKey(0) if key is None else key,
        init=init,
    )
