"""Release metadata agrees with itself: version, changelog and package metadata."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yolo2retina

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the CI runs 3.11
    tomllib = None

ROOT = Path(__file__).resolve().parents[1]
RELEASE = re.compile(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$", re.MULTILINE)


def test_changelog_has_unreleased_then_the_current_release() -> None:
    """``[Unreleased]`` comes first; the newest release section is ``__version__``."""
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## .*$", text, re.MULTILINE)
    assert headings[0] == "## [Unreleased]"
    releases = RELEASE.findall(text)
    assert releases, "CHANGELOG.md has no '## [X.Y.Z] - YYYY-MM-DD' release section"
    newest, _date = releases[0]
    version = yolo2retina.__version__
    if re.fullmatch(r"\d+\.\d+\.\d+", version):
        assert newest == version
    else:  # a development version is of the next release, not of one already made
        assert version.split(".dev")[0] != newest, version
    for v, _ in releases:  # every release has its link reference at the bottom
        assert re.search(rf"^\[{re.escape(v)}\]: https://", text, re.MULTILINE), v


def test_version_is_single_sourced() -> None:
    """pyproject reads the version from ``yolo2retina/_version.py``; nothing else states it."""
    if tomllib is None:  # pragma: no cover
        return
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in meta["project"] and "version" in meta["project"]["dynamic"]
    attr = meta["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "yolo2retina._version.__version__"


def test_project_urls_point_at_one_repository() -> None:
    """Homepage, docs, changelog and issues name the same GitHub repository."""
    if tomllib is None:  # pragma: no cover
        return
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    urls = meta["project"]["urls"]
    home = urls["Homepage"].rstrip("/")
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", home)
    for key in ("Documentation", "Changelog", "Issues"):
        assert urls[key].startswith(home + "/"), key
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    for link in re.findall(r"^\[[^\]]+\]: (https://github\.com/\S+)$", changelog, re.MULTILINE):
        assert link.startswith(home + "/"), link
