"""Lazy namespaces (``jno.trackers``, ``jno.callbacks``, ``jno.fn.adaptive``) filled from
the plugin registries on first attribute access."""

from __future__ import annotations

from typing import Any, Callable

from . import plugins

__all__ = ["lazy_getattr", "lazy_dir"]


def lazy_getattr(kinds: tuple[str, ...], namespace: str) -> Callable[[str], Any]:
    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        for kind in kinds:
            reg = plugins.registry(kind)
            if name in reg:
                return reg[name].factory
        return plugins.lookup(kinds[-1], name, namespace=namespace).factory

    return __getattr__


def lazy_dir(kinds: tuple[str, ...], extra: list[str]) -> Callable[[], list[str]]:
    def __dir__() -> list[str]:
        return sorted(set(extra) | set(plugins.iter_names(kinds)))

    return __dir__
