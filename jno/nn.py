"""``jno.nn``: ``wrap`` an equinox module as a trainable network; ``mlp``."""

from jno_core.nn import MLP, MaskedNetwork, Network, mlp, wrap

__all__ = ["wrap", "mlp", "MLP", "Network", "MaskedNetwork"]
