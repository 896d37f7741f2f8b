"""``jno.np`` (also ``jno.numpy``): functions that build expressions."""

from jno_core.np import *  # noqa: F401,F403
from jno_core.np import __all__  # noqa: F401
