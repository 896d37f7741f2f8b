"""``jno.domain``: ``line`` and ``rect`` domains."""

from jno_core.domain import Domain, PointSet, line, rect

__all__ = ["line", "rect", "Domain", "PointSet"]
