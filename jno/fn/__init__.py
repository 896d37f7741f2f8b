"""``jno.fn``: function namespaces (``jno.fn.adaptive``: loss-weighting schemes)."""

from . import adaptive

__all__ = ["adaptive"]
