"""``jno.trackers.<name>``: diagnostics registered by installed plugins (same objects as
``jno.callbacks.<name>``)."""

from jno_core.namespace import lazy_dir, lazy_getattr

__getattr__ = lazy_getattr(("trackers",), "jno.trackers")
__dir__ = lazy_dir(("trackers",), [])
__all__: list[str] = []
