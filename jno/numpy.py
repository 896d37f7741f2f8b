"""``jno.numpy`` (same as ``jno.np``): functions that build expressions."""

from jno_core.np import *  # noqa: F401,F403
from jno_core.np import __all__  # noqa: F401
