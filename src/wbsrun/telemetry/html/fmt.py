"""HTML fragments of the report: escaped text, figures tied to their place in the result.

Every figure the page shows is a `<span class="n" data-path='["requests","total"]'>` whose
text is the value at that path of the JSON result, formatted; the browser tests read them
back and compare. All text goes through `html.escape`: error messages and names are
untrusted.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

__all__ = ["at", "cell", "esc", "figure", "number", "script_json", "table"]

Path = Sequence[str | int]
DASH = "–"


def esc(value: object) -> str:
    return escape(str(value), quote=True)


def at(result: Any, path: Path) -> Any:
    """The value at `path` of the result, None when any step is missing."""
    node = result
    for step in path:
        if isinstance(step, int) and isinstance(node, list) and -len(node) <= step < len(node):
            node = node[step]
        elif isinstance(step, str) and isinstance(node, Mapping):
            node = node.get(step)
        else:
            return None
    return node


def number(value: Any, kind: str = "num") -> str:
    """`int` 12,345 · `num` up to 3 decimals · `pct` a share as 12.34 % · `s` seconds."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return DASH
    if kind == "pct":
        return f"{value * 100:.2f} %"
    if kind == "int" or isinstance(value, int):
        text = f"{value:,.0f}" if isinstance(value, float) else f"{value:,}"
    else:
        text = f"{value:,.3f}".rstrip("0").rstrip(".")
    return f"{text} s" if kind == "s" else text


def figure(result: Any, path: Path, kind: str = "num") -> str:
    """The value at `path`, formatted, carrying its path for the tests."""
    value = at(result, path)
    text = number(value, kind)
    return f'<span class="n" data-path="{esc(json.dumps(list(path)))}">{esc(text)}</span>'


def cell(content: str, cls: str = "") -> str:
    """A table cell of ready HTML (escape text before)."""
    return f'<td class="{cls}">{content}</td>' if cls else f"<td>{content}</td>"


def table(head: Iterable[str], rows: Iterable[Iterable[str]], cls: str = "") -> str:
    """Head cells are text (escaped here); row cells are `cell()` HTML."""
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(r) + "</tr>" for r in rows)
    return f'<table class="{esc(cls)}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def script_json(value: Any) -> str:
    """JSON safe inside `<script type="application/json">`: no `<`, `>`, `&` or line
    separators survive literally, so no text can close the element."""
    text = json.dumps(value, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    for raw, code in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(raw, code)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
