"""The README stays a product page: short, every relative link resolving, and no machine-specific timing in the
code's docstrings and comments (figures belong in bench/RESULTS.md)."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")
TIMING = re.compile(r"\d[\d,.]*\s*(?:µs|ms|req/s)\b")


def _links(document: Path) -> list[str]:
    return [m.group(1) for m in LINK.finditer(document.read_text(encoding="utf-8")) if "://" not in m.group(1)]


def test_the_readme_is_short_and_its_links_resolve() -> None:
    readme = ROOT / "README.md"
    assert len(readme.read_text(encoding="utf-8").splitlines()) <= 320
    documents = [readme, *sorted((ROOT / "docs").rglob("*.md")), ROOT / "bench" / "RESULTS.md"]
    missing = [f"{d.relative_to(ROOT)} -> {link}" for d in documents for link in _links(d)
               if not (d.parent / link).exists()]  # fmt: skip
    assert missing == []
    assert {"docs/models/eclo.md", "docs/models/congestion.md", "docs/operations.md", "bench/RESULTS.md"} <= set(
        _links(readme)
    )


def _prose(path: Path) -> list[tuple[int, str]]:
    """A module's comments and docstrings, with their line numbers."""
    source = path.read_text(encoding="utf-8")
    found = [(t.start[0], t.string) for t in tokenize.generate_tokens(io.StringIO(source).readline)
             if t.type == tokenize.COMMENT]  # fmt: skip
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            docstring = ast.get_docstring(node, clean=False)
            if docstring:
                found.append((node.body[0].lineno, docstring))
    return found


def test_no_docstring_or_comment_quotes_a_timing() -> None:
    """Settings' descriptions (backend/core/config.py) may name a unit, as the issue allows."""
    settings = ROOT / "backend" / "core" / "config.py"
    quoted = [
        f"{path.relative_to(ROOT)}:{line}: {TIMING.search(text).group(0)}"  # type: ignore[union-attr]
        for path in sorted([*(ROOT / "backend").rglob("*.py"), *(ROOT / "frontend").rglob("*.py")])
        if path != settings
        for line, text in _prose(path)
        if TIMING.search(text)
    ]
    assert quoted == []
