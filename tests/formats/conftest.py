"""Fixtures shared by the format tests."""

from __future__ import annotations

import signal
from collections.abc import Iterator
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


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty load-cache folder of the test's own (``$YOLO2RETINA_CACHE_DIR``)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("YOLO2RETINA_CACHE_DIR", str(folder))
    return folder


class Blocked(BaseException):
    """Raised by :func:`no_hang`'s alarm: not an ``OSError`` (as ``TimeoutError`` is), so a
    reader's ``except OSError`` cannot turn a hang into an ordinary problem line."""


@pytest.fixture
def no_hang() -> Iterator[None]:
    """Turn a reader blocked on a FIFO into a test failure instead of a hung test run."""
    if not hasattr(signal, "SIGALRM"):
        pytest.skip("needs SIGALRM")

    def blocked(*_: object) -> None:
        raise Blocked("the reader blocked opening a FIFO")

    old = signal.signal(signal.SIGALRM, blocked)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)
