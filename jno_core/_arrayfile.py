"""Moved to :mod:`jno_core.arrayfile` (public); this path keeps working for code written
against it."""

from .arrayfile import *  # noqa: F401,F403
from .arrayfile import __all__  # noqa: F401
