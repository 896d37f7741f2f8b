"""What a solver keeps between solves for its plugins: :class:`SolverCache`."""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["SolverCache"]


class SolverCache:
    """Compiled functions and helpers shared by every plugin of a solver, valid for one
    device layout (the solver makes a new cache when the layout changes).

    :ivar token: the set-up token (``SolveContext.setup_token``): the same object for every
        solve with this cache.
    :ivar compiled: ``{cache_key(name, args): executable}`` (``ctx.compile``,
        ``compile_pool.compile_async``).
    :ivar compiling: ``{cache_key: Pending}`` of compilations in progress.
    :ivar selectors: ``{id(mask): (mask, ParamSelector)}`` (the mask is kept alive so its id
        is not reused).
    :ivar gradient_fns: ``{id(selector): compiled gradient-matrix function}``.
    """

    def __init__(self) -> None:
        self.token = object()
        self.compiled: dict[Any, Any] = {}
        self.compiling: dict[Any, Any] = {}
        self.selectors: dict[int, tuple[Any, Any]] = {}
        self.gradient_fns: dict[int, Callable[..., Any]] = {}
