"""``jno.utils.adaptive``: tracker-driven loss weights."""

__all__ = ["weights"]
