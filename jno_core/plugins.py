"""Plugin discovery and the registries filled by the registration hooks.

Plugins are distributions declaring entry points in the group ``"jno"``. Nothing is scanned
when ``jno`` is imported: the first call to :func:`get_plugin_manager` (e.g. the first
``jno.trackers.<name>`` look-up, ``jno.setup`` or ``solve``) loads them.

Environment variables:

* ``JNO_LOAD_PLUGINS=a,b`` loads only the named entry points (an empty value loads none);
* ``JNO_DISABLE_PLUGINS=a,b`` skips the named entry points;
* ``JNO_TRACE_PLUGINS=1`` prints every hook call and its result to stderr;
* ``JNO_STRICT=1`` turns plugin import failures and sink errors into exceptions.
"""

from __future__ import annotations

import inspect
import os
import sys
import types
import threading
import warnings
from importlib import metadata
from typing import Any, Callable, Iterable, Mapping, Sequence

import attrs
import pluggy

from . import hookspecs
from .errors import JnoPluginError, UnknownNameError
from .validation import callable_attrs, warn_unmarked_hooks

__all__ = [
    "ENTRY_POINT_GROUP",
    "FIRST_PARTY",
    "RegistryEntry",
    "get_plugin_manager",
    "registry",
    "lookup",
    "reset",
    "strict_mode",
    "set_strict",
    "plugin_name",
    "describe_plugins",
    "register_plugin",
    "unregister_plugin",
    "call_hook",
]

ENTRY_POINT_GROUP = "jno"
KINDS = ("trackers", "callbacks", "sinks", "weightings", "resamplers")

#: First-party names and the distribution that provides them, for "pip install" hints.
FIRST_PARTY: dict[str, dict[str, str]] = {
    "trackers": {
        "gradient_norms": "jno-plugin-gradients",
        "cos_similarity": "jno-plugin-gradients",
        "gradient_alignment": "jno-plugin-gradients",
        "residual_stats": "jno-plugin-residuals",
        "input_sensitivity": "jno-plugin-saliency",
        "ntk_spectrum": "jno-plugin-ntk",
        "hessian_spectrum": "jno-plugin-hessian",
        "loss_landscape": "jno-plugin-landscape",
        "parameter_norm": "jno-plugin-example",
    },
    "callbacks": {
        "checkpoint": "jno-plugin-checkpoint",
        "early_stopping": "jno-plugin-early-stopping",
    },
    "sinks": {
        "csv": "jno-plugin-csv",
        "tensorboard": "jno-plugin-tensorboard",
        "wandb": "jno-plugin-wandb",
    },
    "weightings": {
        "relobralo": "jno-plugin-relobralo",
        "gradient_norm_balanced": "jno-plugin-balancing",
        "ntk_balanced": "jno-plugin-balancing",
    },
    "resamplers": {
        "random": "jno-plugin-resampling",
        "rad": "jno-plugin-resampling",
        "r3": "jno-plugin-resampling",
    },
}

_STATE_LOCK = threading.RLock()
_pm: pluggy.PluginManager | None = None
_registries: dict[str, dict[str, "RegistryEntry"]] | None = None
_strict_override: bool | None = None


@attrs.frozen
class RegistryEntry:
    """One registered name: the factory, and which plugin/distribution registered it."""

    name: str
    factory: Callable[..., Any]
    plugin: str
    distribution: str | None


def strict_mode() -> bool:
    """Whether plugin failures raise (``jno.setup(strict=True)`` or ``JNO_STRICT=1``)."""
    if _strict_override is not None:
        return _strict_override
    return os.environ.get("JNO_STRICT", "").strip().lower() in {"1", "true", "yes", "on"}


def set_strict(value: bool | None) -> None:
    """Force strict mode on/off (``None`` goes back to the ``JNO_STRICT`` variable)."""
    global _strict_override
    _strict_override = value


def _env_list(name: str) -> list[str] | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    return [p.strip() for p in raw.split(",") if p.strip()]


def _entry_points() -> list[metadata.EntryPoint]:
    return sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    only = _env_list("JNO_LOAD_PLUGINS")
    disabled = set(_env_list("JNO_DISABLE_PLUGINS") or [])
    for ep in _entry_points():
        if only is not None and ep.name not in only:
            continue
        if ep.name in disabled or pm.is_blocked(ep.name) or pm.has_plugin(ep.name):
            continue
        dist = ep.dist.name if ep.dist is not None else None
        try:
            plugin = ep.load()
        except Exception as exc:  # noqa: BLE001 - any import failure
            msg = (
                f"jno plugin {ep.name!r} (distribution {dist or '?'}, entry point "
                f"{ep.value}) failed to import and was skipped: {type(exc).__name__}: {exc}. "
                f"Reinstall it, or disable it with JNO_DISABLE_PLUGINS={ep.name}."
            )
            if strict_mode():
                raise JnoPluginError(msg) from exc
            warnings.warn(msg, RuntimeWarning, stacklevel=3)
            continue
        register_plugin(plugin, name=ep.name, pm=pm, distribution=dist)


def register_plugin(
    plugin: Any,
    name: str | None = None,
    *,
    pm: pluggy.PluginManager | None = None,
    distribution: str | None = None,
) -> str:
    """Register ``plugin`` with the plugin manager, validating its hookimpls against the
    specs; an unknown hook or argument raises :class:`JnoPluginError` naming the plugin."""
    pm = pm or get_plugin_manager()
    label = name or plugin_name(plugin)
    _check_hookimpls(pm, plugin, label)
    try:
        registered = pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        raise JnoPluginError(f"jno plugin {label!r} does not match the hook contract: {exc}") from exc
    except ValueError as exc:
        raise JnoPluginError(f"jno plugin {label!r} could not be registered: {exc}") from exc
    if distribution is not None:
        _DISTRIBUTIONS[registered or label] = distribution
    return registered or label


_DISTRIBUTIONS: dict[str, str] = {}


_CHECKED_CLASSES: set[type] = set()


def _check_hookimpls(pm: pluggy.PluginManager, plugin: Any, label: str) -> None:
    """Unknown hook names and arguments fail at registration (pluggy only checks arguments
    of known hooks, and only unknown names on ``check_pending``). Instances of a class that
    passed once are not scanned again (callbacks are registered at every solve)."""
    cls = type(plugin)
    cacheable = not isinstance(plugin, (types.ModuleType, type)) and not any(
        hasattr(v, "jno_impl") for v in getattr(plugin, "__dict__", {}).values()
    )
    if cacheable and cls in _CHECKED_CLASSES:
        return
    _check_attrs(plugin, label)
    warn_unmarked_hooks(plugin, label, [n for n in dir(hookspecs.JnoSpec) if not n.startswith("_")])
    if cacheable:
        _CHECKED_CLASSES.add(cls)


def _check_attrs(plugin: Any, label: str) -> None:
    for attr, raw in callable_attrs(plugin):
        if not hasattr(raw, "jno_impl"):
            continue
        fn = getattr(plugin, attr)
        spec = getattr(hookspecs.JnoSpec, attr, None)
        if spec is None:
            known = ", ".join(n for n in dir(hookspecs.JnoSpec) if not n.startswith("_"))
            raise JnoPluginError(
                f"jno plugin {label!r} implements unknown hook {attr!r}; the hooks are: {known}."
            )
        allowed = set(inspect.signature(spec).parameters) - {"self"}
        given = set(inspect.signature(fn).parameters) - {"self"}
        extra = sorted(given - allowed)
        if extra:
            raise JnoPluginError(
                f"jno plugin {label!r}: hook {attr!r} takes argument(s) {extra} that the spec "
                f"does not provide; the spec's arguments are {sorted(allowed)}. Remove or "
                "rename them."
            )


def unregister_plugin(plugin: Any) -> None:
    """Unregister ``plugin`` if registered (no error otherwise)."""
    pm = get_plugin_manager()
    if pm.is_registered(plugin):
        pm.unregister(plugin)


def plugin_name(plugin: Any) -> str:
    """A readable name for ``plugin``: its registered name, ``name`` attribute or class."""
    if _pm is not None and _pm.is_registered(plugin):
        n = _pm.get_name(plugin)
        if n and not n.isdigit():
            return n
    for attr in ("plugin_name", "name"):
        v = getattr(plugin, attr, None)
        if isinstance(v, str):
            return v
    if isinstance(plugin, type) or hasattr(plugin, "__name__"):
        return getattr(plugin, "__name__", repr(plugin))
    return type(plugin).__name__


class _PluginManager(pluggy.PluginManager):
    """pluggy's manager with hookimpl parsing cached per class and attribute name: callbacks
    are registered at every ``solve()``, and parsing (``inspect.getattr_static`` over every
    attribute) is a measurable cost per plugin per solve (see benchmarks/README.md).
    Attributes set on the instance are parsed as usual."""

    def __init__(self, project_name: str) -> None:
        super().__init__(project_name)
        self._opts_cache: dict[tuple[type, str], Any] = {}

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        if isinstance(plugin, (type, types.ModuleType)) or name in getattr(plugin, "__dict__", ()):
            return super().parse_hookimpl_opts(plugin, name)
        key = (type(plugin), name)
        try:
            opts = self._opts_cache[key]
        except KeyError:
            opts = self._opts_cache[key] = super().parse_hookimpl_opts(plugin, name)
        return None if opts is None else dict(opts)


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, created and filled from entry points on first use."""
    global _pm
    with _STATE_LOCK:
        if _pm is None:
            pm = _PluginManager(hookspecs.PROJECT_NAME)
            pm.add_hookspecs(hookspecs.JnoSpec)
            _pm = pm
            try:
                _load_entry_points(pm)
                pm.check_pending()
            except Exception:
                _pm = None
                raise
            if os.environ.get("JNO_TRACE_PLUGINS", "").strip() not in {"", "0"}:
                _enable_tracing(pm)
        return _pm


def _enable_tracing(pm: pluggy.PluginManager) -> None:
    """pluggy's tracing to stderr (each hook call and its arguments), plus one line per
    implementation called (``jno hook <name> -> <plugin>``, in pluggy's call order) from a
    pluggy hook-call monitor."""
    pm.trace.root.setwriter(lambda s: sys.stderr.write(s))
    pm.enable_tracing()

    def before(hook_name: str, impls: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        for impl in reversed(impls):
            kind = " (wrapper)" if impl.wrapper or impl.hookwrapper else ""
            sys.stderr.write(f"jno hook {hook_name} -> {plugin_name(impl.plugin)}{kind}\n")

    def after(outcome: Any, hook_name: str, impls: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        pass

    pm.add_hookcall_monitoring(before, after)


def _build_registries(pm: pluggy.PluginManager) -> dict[str, dict[str, RegistryEntry]]:
    regs: dict[str, dict[str, RegistryEntry]] = {k: {} for k in KINDS}
    hook_for = {
        "trackers": "jno_register_trackers",
        "callbacks": "jno_register_callbacks",
        "sinks": "jno_register_sinks",
        "weightings": "jno_register_weightings",
        "resamplers": "jno_register_resamplers",
    }
    for kind, hook_name in hook_for.items():
        caller = getattr(pm.hook, hook_name)
        for impl in caller.get_hookimpls():
            pname = impl.plugin_name
            dist = _DISTRIBUTIONS.get(pname)

            def register(name: str, factory: Callable[..., Any], _p=pname, _d=dist, _k=kind) -> None:
                if not isinstance(name, str) or not name.isidentifier():
                    raise JnoPluginError(
                        f"jno plugin {_p!r} registered {_k[:-1]} name {name!r}; names must be "
                        "Python identifiers (they become attributes of jno.trackers etc.)."
                    )
                if not callable(factory):
                    raise JnoPluginError(
                        f"jno plugin {_p!r} registered {_k[:-1]} {name!r} with a non-callable "
                        f"factory of type {type(factory).__name__}."
                    )
                # trackers and callbacks share the jno.callbacks namespace
                spaces = ("trackers", "callbacks") if _k in ("trackers", "callbacks") else (_k,)
                for space in spaces:
                    prev = regs[space].get(name)
                    if prev is not None and prev.plugin != _p:
                        raise JnoPluginError(
                            f"two jno plugins register the {_k[:-1]} name {name!r}: "
                            f"{prev.plugin!r} ({prev.distribution or '?'}) and {_p!r} "
                            f"({_d or '?'}). Uninstall or disable one "
                            f"(JNO_DISABLE_PLUGINS={_p})."
                        )
                regs[_k][name] = RegistryEntry(name, factory, _p, _d)

            try:
                impl.function(register=register)
            except JnoPluginError:
                raise
            except Exception as exc:  # noqa: BLE001
                msg = f"jno plugin {pname!r} failed in {hook_name}: {type(exc).__name__}: {exc}"
                if strict_mode():
                    raise JnoPluginError(msg) from exc
                warnings.warn(msg, RuntimeWarning, stacklevel=2)
    return regs


def registry(kind: str) -> dict[str, RegistryEntry]:
    """``name -> RegistryEntry`` for ``kind`` in ``trackers``, ``callbacks``, ``sinks``,
    ``weightings``, ``resamplers`` (loading plugins on first use)."""
    global _registries
    if kind not in KINDS:
        raise ValueError(f"unknown registry {kind!r}; expected one of {KINDS}")
    with _STATE_LOCK:
        pm = get_plugin_manager()
        if _registries is None:
            _registries = _build_registries(pm)
        return _registries[kind]


def lookup(kind: str, name: str, *, namespace: str | None = None) -> RegistryEntry:
    """Find ``name`` in the ``kind`` registry or raise :class:`UnknownNameError` listing the
    installed names and, for first-party names, the distribution to install."""
    reg = registry(kind)
    if kind == "callbacks" and name not in reg:
        reg = {**registry("trackers"), **reg}
    if name in reg:
        return reg[name]
    installed = sorted(reg)
    ns = namespace or f"jno.{kind}"
    hint = ""
    dist = FIRST_PARTY.get(kind, {}).get(name)
    if dist is None and kind == "callbacks":
        dist = FIRST_PARTY["trackers"].get(name)
    if dist is not None:
        hint = f" It is provided by the distribution {dist!r}: pip install -e plugins/{dist}."
    raise UnknownNameError(
        f"{ns}.{name} is not installed.{hint} Installed names: "
        f"{', '.join(installed) if installed else '(none)'}."
    )


def reset() -> None:
    """Forget the plugin manager and registries (tests; the next use rescans entry points)."""
    global _pm, _registries
    with _STATE_LOCK:
        _pm = None
        _registries = None
        _DISTRIBUTIONS.clear()


def describe_plugins() -> list[dict[str, Any]]:
    """One record per registered plugin: ``name``, ``distribution``, ``version``,
    ``registers`` (the names it registers, by kind), ``hooks`` (the hooks the plugin module
    itself implements, registration hooks left out) and ``object_hooks`` (``{registered
    name: hooks}`` implemented by the objects a factory makes, where its class is known)."""
    pm = get_plugin_manager()
    regs = {k: registry(k) for k in KINDS}
    out = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda t: t[0]):
        dist = _DISTRIBUTIONS.get(name)
        version = None
        if dist:
            try:
                version = metadata.version(dist)
            except metadata.PackageNotFoundError:
                version = None
        hooks = sorted(
            h.name for h in pm.get_hookcallers(plugin) or [] if not h.name.startswith("jno_register")
        )
        registers = {k: sorted(n for n, e in regs[k].items() if e.plugin == name) for k in KINDS}
        object_hooks = {}
        for k in KINDS:
            for n in registers[k]:
                found = _factory_hooks(regs[k][n].factory)
                if found:
                    object_hooks[n] = found
        out.append(
            {
                "name": name,
                "distribution": dist,
                "version": version,
                "registers": registers,
                "hooks": hooks,
                "object_hooks": object_hooks,
            }
        )
    return out


def _factory_hooks(factory: Callable[..., Any]) -> list[str]:
    """The hooks implemented by the objects ``factory`` makes, when that is knowable without
    calling it: ``factory`` is a class, or its return annotation names one (else ``[]``)."""
    import typing

    cls: Any = factory
    if not isinstance(factory, type):
        try:
            cls = typing.get_type_hints(factory).get("return")
        except Exception:  # noqa: BLE001 - unresolvable annotations: unknown
            return []
    if not isinstance(cls, type):
        return []
    spec_names = {n for n in vars(hookspecs.JnoSpec) if not n.startswith("_")}
    return sorted(n for n in spec_names if hasattr(getattr(cls, n, None), "jno_impl"))


def iter_names(kinds: Iterable[str]) -> list[str]:
    names: set[str] = set()
    for k in kinds:
        names.update(registry(k))
    return sorted(names)


def call_hook(pm: pluggy.PluginManager, hook_name: str, *, where: str = "", **kwargs: Any) -> list[Any]:
    """``pm.hook.<hook_name>(**kwargs)``: every implementation in pluggy's order (``tryfirst``,
    ``trylast`` and wrappers as pluggy documents); an exception is re-raised as
    :class:`JnoPluginError` naming the plugin and the hook (see :mod:`jno_core.dispatch`).
    ``JNO_TRACE_PLUGINS=1`` prints each call to stderr (pluggy's tracing)."""
    from .dispatch import call

    return call(getattr(pm.hook, hook_name), hook_name, where=where, **kwargs)
