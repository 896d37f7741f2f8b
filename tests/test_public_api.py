"""Plugins use only the public plugin API (``jno_core.api``): no other engine module, no
private name, no ``crux._...`` / ``ctx._...``, no private attribute of the Tracker base class;
every plugin pins the core's minor version; every public name is documented."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import jno_core.api as api
from jno_core.tracker import Tracker

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(p for p in (ROOT / "plugins").glob("*/src/**/*.py") if ".egg-info" not in str(p))
PLUGIN_DIRS = sorted(p for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").exists())


def _tracker_private_names() -> set[str]:
    class Probe(Tracker):
        name = "probe"

    names = {k for k in vars(Probe(10)) if k.startswith("_")}
    names |= {k for k in dir(Tracker) if k.startswith("_") and not k.startswith("__")}
    return names


PRIVATE_TRACKER = _tracker_private_names()


def _ends_with(node: ast.AST, names: set[str]) -> bool:
    return (isinstance(node, ast.Name) and node.id in names) or (
        isinstance(node, ast.Attribute) and node.attr in names)


def violations(source: str) -> list[str]:
    """What ``source`` (a plugin module) uses beyond the public API, one line each."""
    tree = ast.parse(source)
    out = []
    tracker_classes = {"Tracker"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(_ends_with(b, tracker_classes) for b in node.bases):
            tracker_classes.add(node.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("jno_core") and a.name != "jno_core.api":
                    out.append(f"line {node.lineno}: import {a.name}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jno_core"):
            if node.module != "jno_core.api":
                out.append(f"line {node.lineno}: from {node.module} import ...")
            out += [f"line {node.lineno}: private name {a.name}" for a in node.names if a.name.startswith("_")]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            if _ends_with(node.value, {"crux", "ctx", "context", "solver"}):
                out.append(f"line {node.lineno}: engine internal .{node.attr}")
    for cls in ast.walk(tree):
        if isinstance(cls, ast.ClassDef) and cls.name in tracker_classes:
            for node in ast.walk(cls):
                if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                        and node.value.id == "self" and node.attr in PRIVATE_TRACKER):
                    out.append(f"line {node.lineno}: Tracker base internal self.{node.attr}")
                if isinstance(node, ast.FunctionDef) and node.name in PRIVATE_TRACKER:
                    out.append(f"line {node.lineno}: overrides Tracker base internal {node.name}")
    return out


def test_the_checker_catches_each_kind_of_violation():
    bad = '''
import jno_core.core
from jno_core._arrayfile import file_name
from jno_core.api import _secret, Tracker
def f(crux, ctx):
    crux._state = 1
    return ctx.crux._points, ctx._worker
class T(Tracker):
    def prepare(self, ctx):
        self._static_result = {}
        self._pending = None
    def _still_prepared(self, ctx):
        return True
'''
    found = "\n".join(violations(bad))
    for what in ("import jno_core.core", "from jno_core._arrayfile", "private name _secret", "._state",
                 "._points", "._worker", "self._static_result", "self._pending", "overrides Tracker base internal _still_prepared"):
        assert what in found, (what, found)
    good = "from jno_core.api import Tracker, hookimpl\nclass T(Tracker):\n    def prepare(self, ctx):\n        self.pending = ctx.params\n"
    assert violations(good) == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_plugin_sources_use_only_the_public_api(path):
    assert violations(path.read_text()) == []


@pytest.mark.parametrize("plugin", PLUGIN_DIRS, ids=lambda p: p.name)
def test_every_plugin_pins_the_core_minor_version(plugin):
    deps = re.search(r"dependencies\s*=\s*\[(.*?)\]", (plugin / "pyproject.toml").read_text(), re.S).group(1)
    assert '"jno-core>=0.2,<0.3"' in deps
    assert "jno-core>=0.2,<0.3" in (plugin / "README.md").read_text()


def test_core_version_is_in_the_pinned_range():
    from importlib.metadata import version

    major, minor = (int(x) for x in version("jno-core").split(".")[:2])
    assert (major, minor) == (0, 2)


def test_every_public_name_is_documented():
    doc = (ROOT / "docs" / "api.md").read_text()
    missing = [n for n in api.__all__ if f"`{n}`" not in doc and f"`{n}(" not in doc]
    assert missing == []


def test_documented_import_paths_keep_working():
    import jno
    from jno_core import testing
    from jno_core.tracker import Tracker as T1
    from jno_core.weighting import HostWeights, WeightingScheme

    assert T1 is api.Tracker and WeightingScheme is api.WeightingScheme and HostWeights is api.HostWeights
    assert jno.hookimpl is api.hookimpl
    assert hasattr(testing, "TrackerConformance")
    from jno_core._arrayfile import file_name

    assert file_name is api.file_name
