"""``jno.utils``: helpers (``jno.utils.adaptive.weights``)."""

from . import adaptive

__all__ = ["adaptive"]
