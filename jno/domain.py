"""``jno.domain``: shapes (``line``, ``rect``, ``box``, ``disk``, ``poly``, differences),
point clouds (``from_array``) and their point sets."""

from jno_core.domain import (ArrayDomain, Domain, PointSet, box, difference, disk, from_array, line, poly,
                             rect)

__all__ = ["line", "rect", "box", "disk", "poly", "difference", "from_array", "Domain", "ArrayDomain",
           "PointSet"]
