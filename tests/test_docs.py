"""The generated docs are current, and the docs' links point at files that exist."""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.util
import inspect
import pkgutil
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_is_current() -> None:
    """docs/cli.md equals what docs/gen_cli_reference.py generates from the argparse definitions."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "gen_cli_reference.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr


def test_every_command_is_documented() -> None:
    """Each CLI subcommand has a section in docs/cli.md with its --help text."""
    from yolo2retina.cli import COMMANDS

    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for name in COMMANDS:
        assert f"## `yolo2retina {name}`" in text and f"usage: yolo2retina {name}" in text


def test_relative_links_in_docs_resolve() -> None:
    """Every relative Markdown link in README.md and docs/ names a file that exists."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    missing = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                missing.append(f"{page.relative_to(ROOT)}: {target}")
    assert not missing


@functools.cache
def _api_generator() -> ModuleType:
    """docs/gen_api_reference.py, imported from its path (docs/ is not a package)."""
    path = ROOT / "docs" / "gen_api_reference.py"
    spec = importlib.util.spec_from_file_location("gen_api_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_api_reference_is_current() -> None:
    """docs/api.md equals what docs/gen_api_reference.py generates from the docstrings."""
    gen = _api_generator()
    expected = gen.render()
    actual = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    diff = "".join(
        list(
            difflib.unified_diff(
                actual.splitlines(keepends=True),
                expected.splitlines(keepends=True),
                "docs/api.md",
                "generated",
            )
        )[:40]
    )
    assert actual == expected, f"docs/api.md is stale: run python docs/gen_api_reference.py\n{diff}"


def test_every_public_module_is_in_the_api_reference() -> None:
    """A module with an ``__all__`` is documented, or listed as left out on purpose."""
    gen = _api_generator()
    import yolo2retina

    found = []
    for info in pkgutil.walk_packages(yolo2retina.__path__, "yolo2retina."):
        if not info.name.rsplit(".", 1)[-1].startswith("_"):
            module = importlib.import_module(info.name)
            if hasattr(module, "__all__"):
                found.append(info.name)
    missing = sorted(set(found) - set(gen.MODULES) - set(gen.NOT_DOCUMENTED))
    assert not missing, f"add to MODULES in docs/gen_api_reference.py: {missing}"


def test_every_public_name_has_a_docstring() -> None:
    """Every public class, function, method and property has its own docstring.

    Constants need a ``#:`` comment above them (Sphinx style), which becomes their text.
    """
    gen = _api_generator()
    entries = gen.public_api()
    assert len(entries) > 150  # the collection itself works
    missing = [e.qualname for e in entries if not gen.own_docstring(e).strip()]
    assert not missing, f"write a docstring (a #: comment for a constant) for: {missing}"


#: A parameter holding boxes (or box-like rows): its docstring must give the array shape.
BOX_PARAMETER = re.compile(r"box|xyxy|xywh|cxcywh|polygon|windows")
#: A shape as the docstrings write it: ``(N, 4)``, ``(N, 4) float32``, ``(n,)``, ``(N, 2K)``.
SHAPE = re.compile(r"``\([A-Za-z][\w +]*,[^`]*\)")


def test_box_array_arguments_have_documented_shapes() -> None:
    """A public callable taking an array of boxes says its shape, e.g. ``(N, 4)``."""
    gen = _api_generator()
    checked, missing = [], []
    for entry in gen.public_api():
        if entry.kind in ("class", "data", "property"):
            continue
        for p in inspect.signature(entry.function).parameters.values():
            annotation = p.annotation if isinstance(p.annotation, str) else ""
            if BOX_PARAMETER.search(p.name) and re.search(r"ArrayLike|NDArray|Tensor", annotation):
                checked.append(entry.qualname)
                if not SHAPE.search(gen.own_docstring(entry)):
                    missing.append(f"{entry.qualname}({p.name})")
    assert len(checked) > 10
    assert not missing, f"say the array shape, e.g. ``(N, 4) float32``, in: {missing}"


def _github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a page (repeats get -1, -2, ...)."""
    anchors: set[str] = set()
    counts: dict[str, int] = {}
    fenced = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        m = None if fenced else re.match(r"#{1,6} (.*)", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).replace("`", "").lower()).replace(" ", "-")
            n = counts.get(slug, 0)
            counts[slug] = n + 1
            anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def test_api_reference_links_resolve() -> None:
    """Every ``(#anchor)`` link in docs/api.md points at a heading of the page."""
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links, "the page links its names"
    assert not sorted(links - _github_anchors(text))
