"""``jno.callbacks.<name>``: trackers and training-control callbacks registered by installed
plugins (checkpointing, early stopping, ...)."""

from jno_core.namespace import lazy_dir, lazy_getattr

__getattr__ = lazy_getattr(("trackers", "callbacks"), "jno.callbacks")
__dir__ = lazy_dir(("trackers", "callbacks"), [])
__all__: list[str] = []
