"""Fixtures shared by the format tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.formats._helpers import make_annotations
from yolo2retina.annotations import Annotations


@pytest.fixture
def ann(tmp_path: Path) -> Annotations:
    """Two images, one with two boxes, one background."""
    return make_annotations(
        tmp_path / "src", [[((1, 1, 9, 9), 0, 0), ((2.5, 3, 30, 40), 1, 0)], []]
    )
