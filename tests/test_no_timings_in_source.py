"""House style: timing figures live in ``benchmarks/README.md``, not in the code (issue 15).

Comments and docstrings under ``jno_core/`` and ``plugins/*/src/`` keep the *reason* for a
design choice in words; the measured figure behind it (``~2 ms``, ``~10 % of a step``,
``5x faster``) goes into ``benchmarks/README.md`` ("Measurements behind design decisions"),
with the code it justifies and the machine it was measured on. This test scans comments
(``tokenize`` COMMENT tokens) and string statements (module, class and function docstrings and
attribute docstrings: ``ast.Expr`` of a ``str`` constant) for:

* a number followed by ``ns``, ``us``, ``µs`` or ``ms`` (``~100 us``, ``0.65 ms``), except a
  period that the code sets (``every 50 ms``); an approximate number of seconds (``~0.1 s``,
  ``about 2 s``);
* a percentage of cost or speed: ``N%`` / ``N %`` followed by ``faster``, ``slower``, ``less``,
  ``more``, ``cheaper`` or ``of`` (``~10 % of a small PINN step``), or preceded by ``~`` or
  ``about`` (``costs ~1 %``);
* a speed ratio: ``Nx`` / ``N x`` / ``N times`` followed by ``faster``, ``slower``,
  ``cheaper``, ``dearer`` or ``as fast`` / ``as slow`` (also ranges ``0.82-0.94x as fast``),
  and ``twice`` / ``half`` / ``thrice as long`` / ``as fast`` / ``as slow``.

String literals that are not statements (error messages, format strings) and code are not
scanned. Exact seconds are not matched: ``compiled in 2.4 s`` in a docstring shows a message's
format, and ``JAX's default: 1 s`` a setting.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: files exempt from the scan (paths relative to the repo root): none
ALLOWED: set[str] = set()

_NUM = r"(?:~\s?)?\d+(?:[.,]\d+)?(?:\s?[-–]\s?\d+(?:\.\d+)?)?"
_PATTERNS = [
    # 10 ms, ~100 us, 4 µs (micro sign U+00B5 or Greek mu U+03BC), 25ns
    re.compile(rf"(?<![\w.]){_NUM}\s?(?:ns|us|µs|μs|ms)\b"),
    # ~0.1 s, about 2 s (an approximate figure in seconds is a measurement)
    re.compile(r"(?:~\s?|\babout\s)\d+(?:\.\d+)?\s?(?:s|sec|secs|seconds)\b", re.IGNORECASE),
    # 10 % faster / ~10 % of a step / 5% less
    re.compile(rf"(?<![\w.]){_NUM}\s?%\s*(?:faster|slower|less|more|cheaper|dearer|of)\b", re.IGNORECASE),
    # ~1 %, about 10 %
    re.compile(r"(?:~\s?|\babout\s)\d+(?:\.\d+)?\s?%", re.IGNORECASE),
    # 5x faster, ~20x cheaper, 0.82-0.94x as fast, 3 times slower
    re.compile(rf"(?<![\w.]){_NUM}\s?(?:x|×|times)\s+(?:faster|slower|cheaper|dearer|as\s+fast|as\s+slow)\b",
               re.IGNORECASE),
    # took twice as long, half as fast
    re.compile(r"\b(?:twice|half|thrice)\s+as\s+(?:long|fast|slow)\b", re.IGNORECASE),
]
#: a period the code sets, not a measurement ("poll every 50 ms")
_PERIOD = re.compile(r"\bevery\s+$", re.IGNORECASE)


def timing_figures(text: str) -> list[tuple[int, str]]:
    """Timing figures in ``text``: ``[(line offset within text (0-based), matched text)]``."""
    spans: list[list[int]] = []
    for pattern in _PATTERNS:
        for m in pattern.finditer(text):
            if not _PERIOD.search(text[max(0, m.start() - 12):m.start()]):
                spans.append([m.start(), m.end()])
    merged: list[list[int]] = []  # overlapping matches of several patterns are one figure
    for start, end in sorted(spans):
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(text.count("\n", 0, start), text[start:end]) for start, end in merged]


def _string_statement_lines(tree: ast.AST) -> set[tuple[int, int]]:
    """``(first line, last line)`` of every statement that is a lone string (docstrings)."""
    spans = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            spans.add((node.lineno, node.end_lineno or node.lineno))
    return spans


def scan_source(source: str) -> list[tuple[int, str]]:
    """Timing figures in the comments and docstrings of Python ``source``:
    ``[(1-based line number, matched text)]``, in source order."""
    spans = _string_statement_lines(ast.parse(source))
    hits: list[tuple[int, str]] = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        row = tok.start[0]
        if tok.type == tokenize.COMMENT or (
            tok.type == tokenize.STRING and any(a <= row <= b for a, b in spans)
        ):
            hits.extend((row + offset, figure) for offset, figure in timing_figures(tok.string))
    return hits


def _source_files() -> list[Path]:
    files = sorted((ROOT / "jno_core").rglob("*.py"))
    files += sorted(p for src in sorted((ROOT / "plugins").glob("*/src")) for p in src.rglob("*.py"))
    return files


# -- the scanner itself: it must find planted figures and leave the rest alone ---------------

PLANTED = '''"""Module docstring.

Creating a file costs ~100 us each under load.
"""
x = 1  # a schedule call per chunk cost ~0.2 ms
MSG = "not a docstring: 5 ms"


def f():
    """Line one.

    computing them every epoch costs ~10 % of a small PINN step, and the blocked copy is
    ~5x faster; the weighted step ran 0.82-0.94x as fast; 3 times slower; 4 µs; about 17 %.
    """
    return "error: took 10 ms"  # poll every 50 ms (a period, not a measurement)
'''


def test_scanner_finds_planted_figures_with_their_lines() -> None:
    hits = scan_source(PLANTED)
    # expected by hand from PLANTED's text above (line numbers counted in the literal)
    assert hits == [
        (3, "~100 us"),
        (5, "~0.2 ms"),
        (12, "~10 % of"),
        (13, "~5x faster"),
        (13, "0.82-0.94x as fast"),
        (13, "3 times slower"),
        (13, "4 µs"),
        (13, "about 17 %"),
    ]


@pytest.mark.parametrize("text", [
    "epoch % plugin.interval == 0",            # modulo
    "shape (4K + 1,) and 2x2 blocks",          # shapes
    "a 64x64 heatmap, a k x k block",          # sizes
    "with probability 0.5 and 1e-9 there",     # probabilities, tolerances
    "compiled in 2.4 s (31 XLA programs)",     # a message's format, in seconds
    "poll every 50 ms until it ends",          # a period the code sets
    "items (ms is not a number)",
    "version 1.15 uses 8 threads",
])
def test_scanner_leaves_non_timings_alone(text: str) -> None:
    assert timing_figures(text) == []


@pytest.mark.parametrize("text, figure", [
    ("costs 30us", "30us"),
    ("2,000 ns", "2,000 ns"),
    ("spends ~ 4 μs", "~ 4 μs"),
    ("12% slower", "12% slower"),
    ("~1 % there", "~1 %"),
    ("1.5 x slower", "1.5 x slower"),
    ("20× cheaper", "20× cheaper"),
    ("level 6 took twice as long", "twice as long"),
    ("compiled half as fast", "half as fast"),
    ("~0.1 s for an exponential decay", "~0.1 s"),
    ("about 2 seconds", "about 2 seconds"),
])
def test_scanner_matches_each_form(text: str, figure: str) -> None:
    assert timing_figures(text) == [(0, figure)]


def test_strings_that_are_not_statements_are_not_scanned() -> None:
    assert scan_source('raise ValueError("took 10 ms")\nx = f"{t} ms"\n') == []


# -- the tree ------------------------------------------------------------------------------

def test_allowed_files_exist() -> None:
    missing = sorted(p for p in ALLOWED if not (ROOT / p).is_file())
    assert not missing, f"ALLOWED names files that do not exist: {missing}; remove them from the list"


def test_no_timing_figures_in_comments_or_docstrings() -> None:
    files = _source_files()
    assert len(files) > 50, f"expected the engine and plugin sources under {ROOT}, found {len(files)} files"
    found = []
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        if rel in ALLOWED:
            continue
        for line, figure in scan_source(path.read_text(encoding="utf-8")):
            found.append(f"{rel}:{line}: {figure!r}")
    assert not found, (
        "timing figures in comments/docstrings (house style: keep the reason in words and move "
        "the figure to benchmarks/README.md, 'Measurements behind design decisions'):\n"
        + "\n".join(found)
    )
