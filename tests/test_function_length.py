"""No function in the engine (``jno_core/**/*.py``) is longer than 60 lines (issue 15: "the
loop in rooms of its own ... No function over ~60 lines in the engine").

A function's length is ``end_lineno - lineno + 1`` of its ``ast`` node: from the ``def`` line
(decorators not counted) to its last line, docstring and nested functions included. Every
function and method is measured, nested ones too, and named by its qualified name
(``Class.method``, ``outer.inner``)."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENGINE = ROOT / "jno_core"
MAX_LINES = 60

# Functions still over the limit while their owner splits them (the lead's rewrite of the
# tracker contract, issue 15). Remove an entry when its split lands: the list is meant to end
# empty, and a stale entry (the function is gone or now short enough) fails the test too.
ALLOWED: dict[tuple[str, str], str] = {
}


def function_lengths(source: str) -> dict[str, int]:
    """``{qualified name: length in lines}`` of every function and method in ``source``."""
    out: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + child.name
                assert child.end_lineno is not None
                out[name] = max(out.get(name, 0), child.end_lineno - child.lineno + 1)
                visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return out


def engine_lengths() -> dict[tuple[str, str], int]:
    """``{(path relative to jno_core, qualified name): length}`` over the whole engine."""
    out: dict[tuple[str, str], int] = {}
    for path in sorted(ENGINE.rglob("*.py")):
        rel = path.relative_to(ENGINE).as_posix()
        for name, n in function_lengths(path.read_text(encoding="utf-8")).items():
            out[(rel, name)] = n
    return out


def test_function_lengths_are_measured_from_def_to_last_line() -> None:
    """The measure itself, on source whose lengths are known by construction."""
    body = "\n".join(f"    x{i} = {i}" for i in range(59))
    src = textwrap.dedent(
        "import functools\n"
        "\n"
        "@functools.cache\n"
        "def short():\n"
        "    return 1\n"
        "\n"
        "class K:\n"
        "    def method(self):\n"
        "        def inner():\n"
        "            pass\n"
        "        return inner\n"
        "\n"
        "async def long_one():\n"
    ) + body + "\n    return 0\n"
    assert function_lengths(src) == {"short": 2, "K.method": 4, "K.method.inner": 2, "long_one": 61}


def test_no_engine_function_is_over_60_lines() -> None:
    lengths = engine_lengths()
    assert len(lengths) > 500, f"found only {len(lengths)} functions under {ENGINE}: is the path right?"
    too_long = sorted((k, n) for k, n in lengths.items() if n > MAX_LINES and k not in ALLOWED)
    assert not too_long, (
        f"engine functions longer than {MAX_LINES} lines (split each into well-named functions "
        "of one job each):\n" + "\n".join(f"  jno_core/{f} {name}: {n} lines" for (f, name), n in too_long)
    )


def test_the_allow_list_has_no_stale_entries() -> None:
    lengths = engine_lengths()
    stale = sorted(f"jno_core/{f} {name} ({'gone' if (f, name) not in lengths else f'{lengths[(f, name)]} lines'})"
                   for f, name in ALLOWED if lengths.get((f, name), 0) <= MAX_LINES)
    assert not stale, f"remove these from ALLOWED in {Path(__file__).name}, now short enough: {stale}"
