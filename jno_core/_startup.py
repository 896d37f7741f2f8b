"""The process-wide JAX settings jno makes once, before its first computation: full float32
matmuls (:mod:`jno_core.precision`) and the persistent compilation cache
(:mod:`jno_core.compile_cache`).

``import jno`` applies them, and so does importing the solver (:mod:`jno_core.core`), for code
that uses ``jno_core`` without ``jno``. ``import jno_core`` alone does not import JAX, so the
``jno`` command (``jno --help``) starts without it."""

from __future__ import annotations

__all__ = ["configure_jax"]

_done = False


def configure_jax() -> None:
    """Apply the default matmul precision and the compilation cache (idempotent)."""
    global _done
    if _done:
        return
    from .compile_cache import configure
    from .precision import apply_default_precision

    apply_default_precision()
    configure()
    _done = True
