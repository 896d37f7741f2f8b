"""``jno.resampling.<name>``: collocation-point resampling strategies (``random``, ``rad``,
``r3``, ...) registered by installed plugins (``jno_register_resamplers``); see
``docs/resampling.md``."""

from jno_core.namespace import lazy_dir, lazy_getattr

__getattr__ = lazy_getattr(("resamplers",), "jno.resampling")
__dir__ = lazy_dir(("resamplers",), [])
__all__: list[str] = []
