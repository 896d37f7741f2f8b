"""``from jno.utils.adaptive.weights import gradient_norm_balanced, ntk_balanced``: weighting
schemes registered by installed plugins under these names."""

from jno_core.namespace import lazy_dir, lazy_getattr

__getattr__ = lazy_getattr(("weightings",), "jno.utils.adaptive.weights")
__dir__ = lazy_dir(("weightings",), [])
__all__: list[str] = []
