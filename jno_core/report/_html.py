"""Write the report: one HTML file holding the styles, BokehJS (read from the installed ``bokeh``
package, never fetched), the report's JSON specification and ``assets/report.js``, which draws
it. The file makes no network request.

Bokeh (BSD-3-Clause) is found with :func:`importlib.util.find_spec`, not imported: the report
needs only its JavaScript bundle (``bokeh.min.js`` + ``bokeh-api.min.js``, ~1.4 MB, their
licence banner kept), so writing a report costs no Bokeh import.
"""

from __future__ import annotations

import html
import importlib.util
import json
import math
import os
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["ReportDependencyError", "bokeh_js", "render_html", "write_html", "require_bokeh"]

ASSETS = Path(__file__).with_name("assets")
BOKEH_FILES = ("bokeh.min.js", "bokeh-api.min.js")
#: the BokehJS API the page uses (Bokeh.Plotting, Palettes.interp_palette, ndarray) is in 3.4+
MIN_BOKEH = (3, 4)


class ReportDependencyError(ImportError):
    """The ``bokeh`` package (which ships the JavaScript inlined into reports) is missing or
    too old."""


def require_bokeh() -> tuple[str, Path]:
    """``(version, folder of its JavaScript files)`` of the installed Bokeh.

    :raises ReportDependencyError: when Bokeh is missing, too old, or lacks its JavaScript.
    """
    fix = "Install it with: pip install 'jno-core[report]' (or pip install 'bokeh>=3.4')."
    spec = importlib.util.find_spec("bokeh")
    if spec is None or spec.origin is None:
        raise ReportDependencyError(f"jno report needs the 'bokeh' package, whose JavaScript it inlines; it is "
                                    f"not installed. {fix}")
    try:
        version = metadata.version("bokeh")
    except metadata.PackageNotFoundError:
        version = "0"
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if parts < MIN_BOKEH:
        raise ReportDependencyError(f"jno report needs bokeh >= {'.'.join(map(str, MIN_BOKEH))}, found {version}. {fix}")
    folder = Path(spec.origin).parent / "server" / "static" / "js"
    missing = [f for f in BOKEH_FILES if not (folder / f).is_file()]
    if missing:
        raise ReportDependencyError(f"the bokeh installation at {folder.parent.parent.parent} lacks {missing}; "
                                    f"reinstall it. {fix}")
    return version, folder


_bokeh_cache: dict[Path, str] = {}


def bokeh_js() -> tuple[str, str]:
    """``(version, JavaScript text)`` of BokehJS and its plotting API, as shipped by ``bokeh``."""
    version, folder = require_bokeh()
    text = _bokeh_cache.get(folder)
    if text is None:
        text = _bokeh_cache[folder] = "\n".join((folder / f).read_text(encoding="utf-8") for f in BOKEH_FILES)
    return version, text


def _clean(obj: Any) -> Any:
    """``obj`` with non-finite floats as ``null`` (JSON has no NaN) and NumPy scalars as Python
    numbers."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "item") and callable(obj.item):
        try:
            return _clean(obj.item())
        except (TypeError, ValueError):
            return str(obj)
    return obj


def _script_text(text: str) -> str:
    """``text`` safe inside ``<script>``: a ``</script`` in it would end the element."""
    return text.replace("</script", "<\\/script")


def render_html(spec: dict[str, Any]) -> str:
    """The report's HTML for :func:`jno_core.report._build.build_spec`'s ``spec``."""
    bokeh_version, js = bokeh_js()
    data = json.dumps(_clean(spec), separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")
    css = (ASSETS / "report.css").read_text(encoding="utf-8")
    code = (ASSETS / "report.js").read_text(encoding="utf-8")
    title = html.escape(f"jno report: {spec.get('title', '')}")
    return "".join([
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
        f"<meta name=\"generator\" content=\"jno report (BokehJS {html.escape(bokeh_version)})\">\n",
        f"<title>{title}</title>\n<style>\n{css}</style>\n",
        f"<script>\n{_script_text(js)}\n</script>\n</head>\n<body>\n",
        "<noscript><p>This report draws its charts with JavaScript (inlined in this file, no network access "
        "needed); enable JavaScript to see them.</p></noscript>\n",
        "<main id=\"report\"></main>\n",
        f"<script type=\"application/json\" id=\"jno-spec\">{data}</script>\n",
        f"<script>\n{_script_text(code)}\n</script>\n</body>\n</html>\n",
    ])


def write_html(spec: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write the report to ``path`` (atomically: a temporary file renamed over it)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.write_text(render_html(spec), encoding="utf-8")
    os.replace(tmp, out)
    return out
