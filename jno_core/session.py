"""One solve's set-up and teardown: :class:`SolveSession`, a context manager.

On entry: the metrics path (the run's bus, or a bus of the solve's own when callbacks are
sinks and no run is open), the per-solve callbacks registered with the plugin manager (last to
first, so pluggy calls them in list order), the solve recorded in ``config.json``, the
:class:`~jno_core.loop.FirePlan`, ``on_solve_begin`` (and every background compilation it
started) and the diagnostics thread. On exit, whatever happened: the diagnostics thread
closed, the parameters written back to the networks, pending metrics delivered and flushed, the
per-solve sinks detached and the callbacks unregistered.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

from . import compile_pool
from . import plugins as P
from .concurrent import DiagnosticsWorker
from .context import SolveContext
from .history import History
from .loop import FirePlan, MetricsBuffer, plan_fires

__all__ = ["SolveSession"]


class SolveSession:
    """``with SolveSession(crux, run, callbacks, start, end) as s:`` the solve's context
    (``s.ctx``), metrics buffer (``s.buffer``), plugin manager (``s.pm``) and, after
    :meth:`begin`, its :class:`~jno_core.loop.FirePlan` (``s.plan``)."""

    def __init__(self, crux: Any, run: Any, callbacks: Sequence[Any], start: int, end: int) -> None:
        self.crux, self.run, self.callbacks = crux, run, list(callbacks)
        self.pm = P.get_plugin_manager()
        self.log_sinks = [cb for cb in self.callbacks if hasattr(cb, "log_metrics") or hasattr(cb, "log_metrics_batch")]
        self.bus = run.bus if run is not None else None
        self.own_bus = None
        self.registered: list[Any] = []
        self.worker: Any = None
        self.plan: FirePlan | None = None
        self.buffer = MetricsBuffer(None)
        self.ctx = SolveContext(crux, run, start, end, self.buffer.add)

    def __enter__(self) -> "SolveSession":
        if self.log_sinks:
            from .delivery import MetricsBus

            if self.bus is None:
                self.own_bus = self.bus = MetricsBus(strict=P.strict_mode())
            for cb in self.log_sinks:
                self.bus.add_sink(cb, P.plugin_name(cb))
        self.buffer.bus = self.bus
        self.crux._solving = True
        return self

    def begin(self, description: dict[str, Any], concurrent: bool) -> float:
        """Register the callbacks, record the solve, plan the fires, run ``on_solve_begin``
        and drain its compilations; start the diagnostics thread if ``concurrent``. Returns
        the set-up time in seconds."""
        # pluggy calls the last registered implementation first: registered from last to
        # first, callbacks run in the order of the list (tryfirst/trylast still apply)
        for cb in reversed(self.callbacks):
            if not self.pm.is_registered(cb):
                P.register_plugin(cb)
                self.registered.append(cb)
        if self.run is not None:
            self.run.record_solve(description)
        self.plan = plan_fires(self.crux, self.pm, self.callbacks)
        self.ctx._from_snapshots = self.plan.postpone  # see SolveContext.fires_from_snapshots
        t0 = time.perf_counter()
        P.call_hook(self.pm, "on_solve_begin", ctx=self.ctx)
        # every background compilation started in on_solve_begin is finished (and its
        # failure raised, naming the plugin) before the first fire, whatever the hook order
        compile_pool.drain(self.ctx)
        setup = time.perf_counter() - t0
        if concurrent:
            self.worker = self.ctx._worker = self.buffer.worker = DiagnosticsWorker()
        return setup

    def end(self, hist: History) -> None:
        """Wait for the fires in flight, then ``on_solve_end``."""
        self.ctx.wait_for_diagnostics()
        P.call_hook(self.pm, "on_solve_end", ctx=self.ctx, history=hist)

    def __exit__(self, *exc: Any) -> None:
        self.crux._solving = False
        if self.worker is not None:
            self.worker.close()
            self.ctx._worker = self.buffer.worker = None
        try:
            self.crux._sync_back()
            try:
                self.buffer.emit_before(None)
            finally:
                if self.bus is not None:
                    try:
                        self.bus.flush()
                    finally:
                        for cb in self.log_sinks:
                            self.bus.remove_sink(cb)
                        if self.own_bus is not None:
                            self.own_bus.close()
        finally:
            for cb in self.registered:
                P.unregister_plugin(cb)
