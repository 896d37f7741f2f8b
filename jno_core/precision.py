"""Full float32 matrix products by default (:func:`apply_default_precision`).

JAX's default precision for float32 matrix products lets the GPU use TensorFloat-32 on
Ampere and later chips (NVIDIA A100, H100): a 10-bit mantissa, about 3 significant digits.
A PINN's loss goes through second derivatives of the network, and with TF32 products the
spec's 1-D Poisson trained on an H100 stopped at a relative L2 error of 1.9e-2 instead of the
< 1e-2 it reaches in float32 (and diagnostics compared against hand computations differed in
the 3rd digit). So ``import jno`` sets ``jax_default_matmul_precision`` to ``"highest"``
(true float32 products), unless the user chose a precision:

* ``JAX_DEFAULT_MATMUL_PRECISION`` set, or the JAX option already set in the process: left
  alone;
* ``JNO_MATMUL_PRECISION=<value>``: that value instead (``default``, ``high``, ``highest``,
  ``tensorfloat32``, ``float32``, ...), e.g. ``JNO_MATMUL_PRECISION=default`` keeps JAX's
  faster TF32 behaviour.

On a CPU float32 products are float32 whatever the setting; nothing changes there. The
setting is process-wide (it is a JAX option): it also applies to the user's own JAX code.
"""

from __future__ import annotations

import os

import jax

__all__ = ["apply_default_precision", "DEFAULT"]

#: the precision ``import jno`` sets when the user chose none
DEFAULT = "highest"


def apply_default_precision() -> str | None:
    """Set JAX's default matmul precision as the module docstring says; returns the value
    set (None when the user's choice was kept)."""
    if os.environ.get("JAX_DEFAULT_MATMUL_PRECISION") or jax.config.jax_default_matmul_precision is not None:
        return None
    value = os.environ.get("JNO_MATMUL_PRECISION", "").strip() or DEFAULT
    if value.lower() == "default":
        return None
    try:
        jax.config.update("jax_default_matmul_precision", value)
    except ValueError as exc:
        raise ValueError(
            f"JNO_MATMUL_PRECISION={value!r} is not a JAX matmul precision ({exc}); expected one of "
            "'default', 'high', 'highest', 'bfloat16', 'tensorfloat32', 'float32', or unset it."
        ) from exc
    return value
