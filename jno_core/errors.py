"""Exception types. Every message says what was expected, what was received, and the fix."""

from __future__ import annotations

__all__ = [
    "JnoError",
    "JnoPluginError",
    "UnknownNameError",
    "ShapeError",
    "MaskError",
    "NonFiniteLossError",
    "ConfigError",
    "CheckpointError",
]


class JnoError(Exception):
    """Base class of jno's errors."""


class JnoPluginError(JnoError):
    """A plugin does not follow the hook contract, failed to load, or failed at run time."""


class UnknownNameError(JnoError, AttributeError):
    """A tracker, callback, sink or weighting name that no installed plugin registers."""


class ShapeError(JnoError, ValueError):
    """Expressions combined across incompatible shapes or point sets."""


class MaskError(JnoError, ValueError):
    """A parameter mask whose pytree does not match the parameters."""


class NonFiniteLossError(JnoError, FloatingPointError):
    """Raised only in strict mode when training produced a non-finite loss."""


class ConfigError(JnoError, ValueError):
    """Invalid configuration (sinks, setup options, solve arguments)."""


class CheckpointError(JnoError, OSError):
    """A checkpoint that is missing, truncated or corrupt."""
