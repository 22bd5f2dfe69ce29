"""Shared fixtures: real-data location and small image/label writers."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow",
        action="store_true",
        help="run the tests marked slow (minutes each); CI runs them always (CI=true)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` are opt-in locally (``--run-slow``); with ``CI=true`` they run."""
    if config.getoption("--run-slow") or os.environ.get("CI", "").lower() in ("1", "true"):
        return
    skip = pytest.mark.skip(reason="slow: opt in with --run-slow (CI=true runs it)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def _load_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The load cache (yolo2retina.formats.cache) goes to a folder of this test session, never
    to ~/.cache; subprocesses (CLI tests) inherit it. A test may point it elsewhere."""
    folder = tmp_path_factory.mktemp("load-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("YOLO2RETINA_CACHE_DIR", str(folder))
        yield folder


SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
VARROA_YAML = SHARED_DATA / "varroa-sticky-board-yolo" / "data.yaml"
BLOOD_COCO = SHARED_DATA / "blood-cells-coco"


@pytest.fixture
def varroa_yaml() -> Path:
    """The real varroa data.yaml; skips when ../shared/data is absent."""
    if not VARROA_YAML.is_file():
        pytest.skip(f"real data not found at {VARROA_YAML} (../shared/data is absent)")
    return VARROA_YAML


@pytest.fixture
def blood_coco() -> Path:
    """The real blood-cells COCO folder; skips when ../shared/data is absent."""
    if not BLOOD_COCO.is_dir():
        pytest.skip(f"real data not found at {BLOOD_COCO} (../shared/data is absent)")
    return BLOOD_COCO


def write_image(
    path: Path,
    size_wh: tuple[int, int] = (64, 48),
    *,
    orientation: int | None = None,
    color: tuple[int, int, int] = (200, 200, 200),
    mode: str = "RGB",
) -> Path:
    """Write a plain image of ``size_wh`` (stored size) with an optional EXIF orientation."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", size_wh, color).convert(mode)
    kw = {}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kw["exif"] = exif.tobytes()
    img.save(path, **kw)
    return path


def write_labels(path: Path, rows: Sequence[str] | str) -> Path:
    """Write a YOLO label file from rows (joined with \\n) or raw text."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = rows if isinstance(rows, str) else "\n".join(rows) + "\n"
    path.write_bytes(text.encode())
    return path


def make_yolo_dataset(
    root: Path,
    images: dict[str, Sequence[str] | str | None],
    *,
    split: str = "train",
    names: Sequence[str] = ("a", "b"),
    size_wh: tuple[int, int] = (64, 48),
) -> Path:
    """Ultralytics layout under ``root`` with a data.yaml; ``None`` rows = no label file."""
    for stem, rows in images.items():
        write_image(root / "images" / split / f"{stem}.jpg", size_wh)
        if rows is not None:
            write_labels(root / "labels" / split / f"{stem}.txt", rows)
    yaml_path = root / "data.yaml"
    yaml_path.write_text(
        f"path: .\ntrain: images/{split}\nval: images/{split}\nnames: {list(names)}\n"
    )
    return yaml_path


def rng_boxes(rng: np.random.Generator, n: int, w: int, h: int) -> np.ndarray:
    """``(n, 4)`` random valid XYXY boxes inside a ``w x h`` image."""
    x1 = rng.uniform(0, w - 2, n)
    y1 = rng.uniform(0, h - 2, n)
    x2 = x1 + rng.uniform(1, w - x1)
    y2 = y1 + rng.uniform(1, h - y1)
    return np.stack([x1, y1, np.minimum(x2, w), np.minimum(y2, h)], 1)
