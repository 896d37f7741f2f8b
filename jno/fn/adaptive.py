"""``jno.fn.adaptive.<name>``: loss-weighting schemes registered by installed plugins."""

from jno_core.namespace import lazy_dir, lazy_getattr

__getattr__ = lazy_getattr(("weightings",), "jno.fn.adaptive")
__dir__ = lazy_dir(("weightings",), [])
__all__: list[str] = []
